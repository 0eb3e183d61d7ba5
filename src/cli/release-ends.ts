// The end of each release, said once, for `stemcell dev` (and the gauntlet's stack, which must say the same):
// the table when every account in scope answered, or the failed regions with their reasons. Polled, because
// accounts report after the last region is announced, and because a release may end after a restart. Only the
// releases that had already ended before this run are not told again: one in flight when a previous run was
// killed is reported when it ends now.
import type { StemcellConfig } from '#config/schema.ts';
import { regionReports, releaseEnded, reportTable } from '#demo/report.ts';
import type { Release, ReleaseStore } from '#ports';

export interface ReleaseEnd {
  release: Release;
  outcome: 'complete' | 'failed';
  line: string;
}

/** Returns the poll: each call reports (through `say`) the releases that ended since the last one. */
export async function releaseEndReporter(
  releases: Pick<ReleaseStore, 'list'>,
  config: StemcellConfig,
  say: (end: ReleaseEnd) => void,
): Promise<() => Promise<void>> {
  const told = new Set((await releases.list()).filter(releaseEnded).map((r) => r.releaseId));
  return async () => {
    for (const release of await releases.list()) {
      if (told.has(release.releaseId)) continue;
      const regions = Object.entries(release.regions);
      const failed = regions.filter(([, r]) => r.state === 'failed');
      if (failed.length > 0 && regions.every(([, r]) => r.state === 'failed' || r.state === 'announced')) {
        told.add(release.releaseId);
        const where = failed
          .map(([region, r]) => `${region}: ${r.reason ?? 'no reason recorded'}`)
          .join('; ');
        say({ release, outcome: 'failed', line: `release ${release.releaseId} failed in ${where}` });
        continue;
      }
      if (!release.completedAt) continue;
      const rows = regionReports(config, release);
      // An account that never answers (its member stack not deployed): a minute after completion, print anyway.
      const waited = Date.now() - Date.parse(release.completedAt) > 60_000;
      if (!waited && rows.some((r) => r.accountsUpdated < r.accountsInScope)) continue;
      told.add(release.releaseId);
      say({
        release,
        outcome: 'complete',
        line: `release ${release.releaseId} complete:\n${reportTable(rows)}`,
      });
    }
  };
}
