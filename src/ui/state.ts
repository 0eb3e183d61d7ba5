// What the status page shows, as one JSON document: the releases (newest first) with their rollout, and per
// release a matrix regions × waves × accounts whose cells hold a state and its time; plus the adoption view.
// Pure functions over the stores, so the page, `status --json` and the tests read the same thing.
import { type AdoptionDeps, type AdoptionRow, adoptionView } from '#core/members/adoption.ts';
import { FAILED_REFRESH, type RolloutSummary, rolloutSummary } from '#core/rollout/rollout.ts';
import type { Release, ReleaseStore, RolloutRecord, RolloutStore, StreamPin } from '#ports';

export type CellState =
  | 'pending'
  | 'announced'
  | 'updated'
  | 'already-current'
  | 'skipped-older'
  | 'failed'
  | 'halted'
  | 'aborted';

export interface Cell {
  accountId: string;
  state: CellState;
  at?: string;
  instanceRefresh?: string;
}

export interface WaveColumn {
  name: string;
  state: string;
  bakeUntil?: string;
  /** Per region, the wave's cells. */
  regions: Record<string, Cell[]>;
}

export interface ReleaseView {
  releaseId: string;
  stream: string;
  revision: string;
  sequence: number;
  createdAt: string;
  completedAt?: string;
  rollout?: RolloutSummary['state'];
  rollbackOf?: string;
  halted: RolloutSummary['halted'];
  regions: Record<
    string,
    { state: string; imageId?: string; updatedAt: string; reason?: string; bootLog?: string }
  >;
  waves: WaveColumn[];
}

export interface PageState {
  generatedAt: string;
  releases: ReleaseView[];
  pins: StreamPin[];
  adoption: AdoptionRow[];
}

/** One cell: the account's report for the region if any, else whether its wave was sent the region. */
export function cellFor(
  release: Release,
  rollout: RolloutRecord | undefined,
  wave: number,
  region: string,
  accountId: string,
): Cell {
  const report = release.accounts[`${accountId}/${region}`];
  if (report) {
    const failed = report.instanceRefresh !== undefined && FAILED_REFRESH.has(report.instanceRefresh);
    return {
      accountId,
      state: failed ? 'failed' : report.outcome,
      at: report.updatedAt,
      ...(report.instanceRefresh ? { instanceRefresh: report.instanceRefresh } : {}),
    };
  }
  const w = rollout?.waves[wave];
  const sentAt = w
    ? w.announcedAt[region]
    : release.regions[region]?.state === 'announced'
      ? release.regions[region]?.updatedAt
      : undefined;
  if (sentAt) return { accountId, state: 'announced', at: sentAt };
  if (w && (w.state === 'halted' || w.state === 'aborted'))
    return { accountId, state: w.state, ...(w.finishedAt ? { at: w.finishedAt } : {}) };
  if (rollout && (rollout.state === 'halted' || rollout.state === 'aborted'))
    return { accountId, state: rollout.state === 'halted' ? 'halted' : 'aborted' };
  return { accountId, state: 'pending' };
}

/** The release's waves; without rollout, one wave "all" of the accounts in scope (or that reported). */
export function releaseView(
  release: Release,
  rollout: RolloutRecord | undefined,
  scope: string[],
): ReleaseView {
  const regions = Object.keys(release.regions).sort();
  const reported = Object.values(release.accounts).map((a) => a.accountId);
  const waves =
    rollout && rollout.waves.length > 0
      ? rollout.waves.map((w) => ({
          name: w.name,
          state: w.state,
          accounts: w.accounts,
          bakeUntil: w.bakeUntil,
        }))
      : [
          {
            name: 'all',
            state: release.completedAt ? 'complete' : 'rolling',
            accounts: [...new Set([...scope, ...reported])].sort(),
            bakeUntil: undefined,
          },
        ];
  const summary = rolloutSummary(rollout);
  return {
    releaseId: release.releaseId,
    stream: release.stream,
    revision: release.revision,
    sequence: release.sequence,
    createdAt: release.createdAt,
    ...(release.completedAt ? { completedAt: release.completedAt } : {}),
    ...(summary && rollout?.waves.length ? { rollout: summary.state } : {}),
    ...(rollout?.rollbackOf ? { rollbackOf: rollout.rollbackOf } : {}),
    halted: summary?.halted ?? null,
    regions: Object.fromEntries(
      regions.map((r) => {
        const record = release.regions[r] as Release['regions'][string] & { bootLog?: string };
        return [
          r,
          {
            state: record.state,
            updatedAt: record.updatedAt,
            ...(record.imageId ? { imageId: record.imageId } : {}),
            ...(record.reason ? { reason: record.reason } : {}),
            ...(record.bootLog ? { bootLog: record.bootLog } : {}),
          },
        ];
      }),
    ),
    waves: waves.map((w, i) => ({
      name: w.name,
      state: w.state,
      ...(w.bakeUntil ? { bakeUntil: w.bakeUntil } : {}),
      regions: Object.fromEntries(
        regions.map((r) => [r, w.accounts.map((a) => cellFor(release, rollout, i, r, a))]),
      ),
    })),
  };
}

export interface PageDeps extends AdoptionDeps {
  releases: ReleaseStore;
  rollouts: RolloutStore;
}

export async function pageState(
  deps: PageDeps,
  options: { limit?: number; now?: Date } = {},
): Promise<PageState> {
  const releases = (await deps.releases.list())
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.sequence - a.sequence)
    .slice(0, options.limit ?? 20);
  const scopes = new Map<string, string[]>();
  const scopeOf = async (stream: string) => {
    let found = scopes.get(stream);
    if (!found) {
      const scope = deps.config.streams[stream]?.subscribers.scope ?? 'organization';
      const accounts =
        scope === 'organization'
          ? await deps.organization.listAccounts()
          : (await Promise.all(scope.ous.map((ou) => deps.organization.listAccountsInOu(ou)))).flat();
      found = [...new Set(accounts.map((a) => a.id))].sort();
      scopes.set(stream, found);
    }
    return found;
  };
  const views: ReleaseView[] = [];
  for (const release of releases) {
    views.push(
      releaseView(release, await deps.rollouts.get(release.releaseId), await scopeOf(release.stream)),
    );
  }
  const pins: StreamPin[] = [];
  for (const stream of Object.keys(deps.config.streams).sort()) {
    const pin = await deps.rollouts.getPin(stream);
    if (pin) pins.push(pin);
  }
  return {
    generatedAt: (options.now ?? new Date()).toISOString(),
    releases: views,
    pins,
    adoption: await adoptionView(deps),
  };
}
