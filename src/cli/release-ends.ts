// The end of each release, said once, for `stemcell dev` (and the gauntlet's stack, which must say the same):
// the table when every account in scope answered, or the failed regions with their reasons. Polled, because
// accounts report after the last region is announced, and because a release may end after a restart. Only the
// releases whose end could already be told when this run started are not told again: one still in flight when
// a previous run was killed (its accounts still answering, even if its record says complete) is told now.
import type { StemcellConfig } from '#config/schema.ts';
import { regionReports, reportTable } from '#demo/report.ts';
import type { Release, ReleaseStore } from '#ports';

export interface ReleaseEnd {
  release: Release;
  outcome: 'complete' | 'failed';
  line: string;
}

/** An account that never answers (its member stack not deployed): this long after completion, told anyway. */
const ANSWER_WAIT_MS = 60_000;

/** Returns the poll: each call reports (through `say`) the releases that ended since the last one. */
export async function releaseEndReporter(
  releases: Pick<ReleaseStore, 'list'>,
  config: StemcellConfig,
  say: (end: ReleaseEnd) => void,
): Promise<() => Promise<void>> {
  const startedAt = Date.now();
  const told = new Set(
    (await releases.list()).filter((r) => releaseEnd(config, r, startedAt)).map((r) => r.releaseId),
  );
  return async () => {
    for (const release of await releases.list()) {
      if (told.has(release.releaseId)) continue;
      const end = releaseEnd(config, release, Date.now());
      if (!end) continue;
      told.add(release.releaseId);
      say(end);
    }
  };
}

/** What to say about the release's end at `now`, or nothing while it has not ended as far as a user can tell. */
export function releaseEnd(config: StemcellConfig, release: Release, now: number): ReleaseEnd | undefined {
  const regions = Object.entries(release.regions);
  const failed = regions.filter(([, r]) => r.state === 'failed');
  if (failed.length > 0 && regions.every(([, r]) => r.state === 'failed' || r.state === 'announced')) {
    const where = failed.map(([region, r]) => `${region}: ${r.reason ?? 'no reason recorded'}`).join('; ');
    return { release, outcome: 'failed', line: `release ${release.releaseId} failed in ${where}` };
  }
  if (!release.completedAt) return undefined;
  const rows = regionReports(config, release);
  const waited = now - Date.parse(release.completedAt) > ANSWER_WAIT_MS;
  if (!waited && rows.some((r) => r.accountsUpdated < r.accountsInScope)) return undefined;
  return {
    release,
    outcome: 'complete',
    line: `release ${release.releaseId} complete:\n${reportTable(rows)}`,
  };
}
