// What a release did, per region: the facts `stemcell demo` prints and checks, read from the release store and
// the member accounts, never from the demo's own bookkeeping.
import type { StemcellConfig } from '#config/schema.ts';
import type { LocalMemberAccounts } from '#local/member-accounts.ts';
import type { Release } from '#ports';
import { accountsInScope } from './config.ts';

export interface RegionReport {
  stream: string;
  revision: string;
  sequence: number;
  region: string;
  state: string;
  /** Why the region failed (its "Build Failed" reason), when it did. */
  reason?: string;
  imageId?: string;
  snapshotDeltaBytes?: number;
  writtenBytes?: number;
  applySeconds?: number;
  /** Upload seen → last account's launch templates updated. */
  secondsToLastAccount?: number;
  /** secondsToLastAccount minus the apply: what the flow adds around writing the tarball. */
  secondsBeyondApply?: number;
  accountsUpdated: number;
  accountsInScope: number;
  /** The boot gate's verdict on this image (absent for streams that do not boot). */
  bootCheck?: { mode: string; passed: boolean; seconds?: number; marker: string; consoleLog?: string };
}

export function regionReports(config: StemcellConfig, release: Release): RegionReport[] {
  const scope = accountsInScope(config, release.stream);
  return Object.entries(release.regions).map(([region, record]) => {
    const accounts = Object.values(release.accounts).filter(
      (a) => a.region === region && scope.includes(a.accountId),
    );
    const last = accounts.reduce((max, a) => Math.max(max, Date.parse(a.updatedAt)), 0);
    return {
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      region,
      state: record.state,
      ...(record.state === 'failed' && record.reason ? { reason: record.reason } : {}),
      ...(record.imageId ? { imageId: record.imageId } : {}),
      ...(record.deltaBytes === undefined ? {} : { snapshotDeltaBytes: record.deltaBytes }),
      ...(record.writtenBytes === undefined ? {} : { writtenBytes: record.writtenBytes }),
      ...(record.applyMs === undefined ? {} : { applySeconds: record.applyMs / 1000 }),
      ...(last > 0 ? { secondsToLastAccount: (last - Date.parse(release.uploadedAt)) / 1000 } : {}),
      ...(last > 0 && record.applyMs !== undefined
        ? { secondsBeyondApply: (last - Date.parse(release.uploadedAt) - record.applyMs) / 1000 }
        : {}),
      accountsUpdated: new Set(accounts.map((a) => a.accountId)).size,
      accountsInScope: scope.length,
      ...(record.bootCheck
        ? {
            bootCheck: {
              mode: record.bootCheck.mode,
              passed: record.bootCheck.passed === true,
              ...(record.bootCheck.seconds === undefined ? {} : { seconds: record.bootCheck.seconds }),
              marker: record.bootCheck.marker,
              ...(record.bootCheck.consoleLog ? { consoleLog: record.bootCheck.consoleLog } : {}),
            },
          }
        : {}),
    };
  });
}

export interface TemplateCheck {
  account: string;
  region: string;
  stream: string;
  launchTemplate: string;
  defaultImageId?: string;
  expectedImageId?: string;
  ok: boolean;
}

/** Every tagged launch template of the config must default to the newest image of its stream and region. */
export function checkLaunchTemplates(
  config: StemcellConfig,
  releases: Release[],
  members: LocalMemberAccounts,
): TemplateCheck[] {
  const newest = new Map<string, string | undefined>();
  for (const stream of Object.keys(config.streams)) {
    const latest = releases.filter((r) => r.stream === stream).sort((a, b) => b.sequence - a.sequence)[0];
    for (const region of config.streams[stream]?.regions ?? []) {
      newest.set(`${stream}/${region}`, latest?.regions[region]?.imageId);
    }
  }
  return (config.local?.launchTemplates ?? []).map((lt) => {
    const account = members.forAccount(lt.account, lt.region);
    const template = account.launchTemplateByName(lt.name);
    const defaultImageId = template ? account.defaultImageId(template.launchTemplateId) : undefined;
    const expectedImageId = newest.get(`${lt.stream}/${lt.region}`);
    return {
      account: lt.account,
      region: lt.region,
      stream: lt.stream,
      launchTemplate: lt.name,
      ...(defaultImageId ? { defaultImageId } : {}),
      ...(expectedImageId ? { expectedImageId } : {}),
      ok: expectedImageId !== undefined && defaultImageId === expectedImageId,
    };
  });
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function bootCell(b: RegionReport['bootCheck']): string {
  if (!b) return '-';
  if (!b.passed) return 'FAILED';
  return `${b.seconds?.toFixed(1) ?? '?'} ${b.mode}`;
}

export function reportTable(rows: RegionReport[]): string {
  const header = [
    'stream',
    'rev',
    'seq',
    'region',
    'state',
    'image',
    'snapshot delta',
    'apply s',
    'upload→last account s',
    'boot s',
    'accounts',
  ];
  const body = rows.map((r) => [
    r.stream,
    r.revision,
    String(r.sequence),
    r.region,
    r.state,
    r.imageId ?? '-',
    formatBytes(r.snapshotDeltaBytes),
    r.applySeconds === undefined ? '-' : r.applySeconds.toFixed(2),
    r.secondsToLastAccount === undefined ? '-' : r.secondsToLastAccount.toFixed(2),
    bootCell(r.bootCheck),
    `${r.accountsUpdated}/${r.accountsInScope}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
