// The demo's safety story, after the two ordinary revisions: revision 3 of web-base makes one canary account's
// instance refresh fail, so its rollout halts in the canary wave ("Release Halted") and no account of the rest
// moves; then `stemcell rollback web-base --to <revision 2>` takes every account back to revision 2's images
// under a new, higher sequence. Everything reported here is read back from the stores and the member accounts.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StemcellConfig } from '#config/schema.ts';
import { objectKey } from '#core/model/naming.ts';
import { rollback } from '#core/rollout/rollback.ts';
import { rolloutSummary } from '#core/rollout/rollout.ts';
import type { LocalStack } from '#local/stack.ts';
import type { HaltRecord, Release } from '#ports';
import { type RegionReport, regionReports } from './report.ts';
import { buildSampleTarball, type SampleBoot } from './sample-rootfs.ts';

export const FAILING_STREAM = 'web-base';
/** The canary account and region whose instance refresh fails on revision 3. */
export const FAILING_ACCOUNT = '100000000005';
export const FAILING_REGION = 'us-east-1';

/** A region row of `--json`'s releases[], with its release's rollout. */
export interface ReleaseRow extends RegionReport {
  releaseId: string;
  waves: { name: string; state: string; accounts: string[] }[];
  halted: HaltRecord | null;
  rollbackOf?: string;
}

export interface SafetyStory {
  halted?: { releaseId: string; revision: string; wave: string; reason: string };
  /**
   * Regions of the halted revision whose image booted but was never announced: the halt came first, and a halted
   * release announces nowhere else. Which regions these are depends on which boot check finishes first.
   */
  heldByHalt: string[];
  /** Accounts of later waves that got revision 3 anyway (must be none). */
  movedPastHalt: string[];
  rollback?: {
    releaseId: string;
    revision: string;
    sequence: number;
    to: string;
    reused: number;
    rebuilt: number;
  };
}

export async function haltThenRollBack(
  stack: LocalStack,
  dataDir: string,
  log: (line: string) => void,
  /** The stream's kernel and init: revision 3 boots and passes the boot gate, and only then halts in its canary. */
  boot?: SampleBoot,
): Promise<SafetyStory> {
  const config = stack.config;
  const stream = FAILING_STREAM;
  const streamConfig = config.streams[stream];
  if (!streamConfig) throw new Error(`demo: no stream ${stream}`);
  stack.members.forAccount(FAILING_ACCOUNT, FAILING_REGION).failNextInstanceRefresh(`${stream}-asg`);
  const tarball = await buildSampleTarball(
    join(dataDir, 'work'),
    join(dataDir, 'tarballs', `${stream}-3.tar.zst`),
    { stream, revision: 3, withKernel: streamConfig.bootMode !== 'none', ...(boot ? { boot } : {}) },
  );
  const body = await readFile(tarball);
  const revision = '2026.11.23';
  await stack.publish(objectKey(stream, revision), body, {
    sha256: createHash('sha256').update(body).digest('hex'),
  });
  await stack.settle();
  const story: SafetyStory = { movedPastHalt: [], heldByHalt: [] };
  const release = (await stack.releases.list(stream)).find((r) => r.revision === revision);
  const rollout = release && (await stack.rollouts.get(release.releaseId));
  if (release && rollout?.halted) {
    story.halted = { releaseId: release.releaseId, revision, ...rollout.halted };
    log(`${stream} ${revision}: halted in wave ${rollout.halted.wave}: ${rollout.halted.reason}`);
    const later = rollout.waves.slice(rollout.waves.findIndex((w) => w.state === 'halted') + 1);
    story.movedPastHalt = later
      .flatMap((w) => w.accounts)
      .filter((a) => Object.values(release.accounts).some((r) => r.accountId === a));
    story.heldByHalt = Object.entries(release.regions)
      .filter(([, r]) => r.state === 'available' && (streamConfig.bootMode === 'none' || r.bootCheck?.passed))
      .map(([region]) => region)
      .sort();
    for (const region of story.heldByHalt)
      log(`${stream} ${revision} ${region}: booted, held back by the halt (not announced there)`);
  } else log(`${stream} ${revision}: did NOT halt (rollout ${rollout?.state ?? 'missing'})`);

  const to = '2026.11.22';
  const result = await rollback(
    {
      ...stack.announceDeps(),
      rollouts: stack.rollouts,
      buildQueue: (region) => stack.region(region).buildQueue,
    },
    stream,
    to,
  );
  await stack.settle();
  story.rollback = {
    releaseId: result.release.releaseId,
    revision: result.release.revision,
    sequence: result.release.sequence,
    to,
    reused: result.reused.length,
    rebuilt: result.rebuilt.length,
  };
  log(
    `${stream}: rolled back to ${to} as ${result.release.revision} (sequence ${result.release.sequence}; ` +
      `${result.reused.length} region(s) reused, ${result.rebuilt.length} rebuilt)`,
  );
  return story;
}

/** Every release's region rows, oldest first, with waves, halt and rollback marker. */
export async function releaseRows(stack: LocalStack, config: StemcellConfig): Promise<ReleaseRow[]> {
  const releases: Release[] = (await stack.releases.list()).sort(
    (a, b) => a.stream.localeCompare(b.stream) || a.sequence - b.sequence,
  );
  const rows: ReleaseRow[] = [];
  for (const release of releases) {
    const record = await stack.rollouts.get(release.releaseId);
    const summary = rolloutSummary(record);
    for (const row of regionReports(config, release))
      rows.push({
        ...row,
        releaseId: release.releaseId,
        waves: (summary?.waves ?? []).map((w) => ({ name: w.name, state: w.state, accounts: w.accounts })),
        halted: record?.halted ?? null,
        ...(record?.rollbackOf ? { rollbackOf: record.rollbackOf } : {}),
      });
  }
  return rows;
}
