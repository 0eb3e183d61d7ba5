// `stemcell release abort`: ends a release that has not completed, whatever it is waiting for — a wave's bake,
// a halt, a build, a boot check, or a rollback cut short by a crash. No wave or account hears of it afterwards
// (its rollout record, waves or rollback marker, is aborted), and every region not announced yet ends failed
// with the operator's reason ("Build Failed"), so the release ends as failed with its reason, once. It refuses
// only a release that really is over: completed, or already ended.
import type { RolloutRecord } from '#ports';
import { recordBuildFailure } from '../release/build-failure.ts';
import { type RolloutDeps, RolloutStateError, releaseByRevision, updateRollout } from './rollout.ts';

export interface AbortResult {
  releaseId: string;
  /** Why, as recorded on each region it failed: "aborted: <reason>". */
  reason: string;
  /** The rollout record after the abort (waves, or a rollback's marker); absent for a release without one. */
  rollout?: RolloutRecord;
  /** Regions this abort ended (failed with the reason). */
  failed: string[];
}

export const DEFAULT_ABORT_REASON = 'by the operator';

export async function abortRelease(
  deps: Pick<RolloutDeps, 'releases' | 'rollouts' | 'events' | 'clock' | 'config' | 'logger'>,
  stream: string,
  revision: string,
  reason: string = DEFAULT_ABORT_REASON,
): Promise<AbortResult> {
  const release = await releaseByRevision(deps.releases, stream, revision);
  const name = `release ${stream}/${revision}`;
  if (release.completedAt)
    throw new RolloutStateError(`${name} is complete (${release.completedAt}): nothing to abort`);
  const regions = Object.entries(release.regions);
  const open = regions.filter(([, r]) => r.state !== 'announced' && r.state !== 'failed');
  const existing = await deps.rollouts.get(release.releaseId);
  // A rollout whose every wave has every region is done, only not yet marked: nothing is left to stop. (A
  // rollback's marker says `complete` from its first write, so it never counts here.)
  if (existing?.state === 'complete' && !existing.rollbackOf && open.length === 0)
    throw new RolloutStateError(`${name} is complete: every wave has every region, nothing to abort`);
  const rolloutOpen = existing !== undefined && existing.state !== 'aborted';
  if (!rolloutOpen && open.length === 0) {
    const failed = regions.filter(([, r]) => r.state === 'failed').map(([region]) => region);
    throw new RolloutStateError(
      existing?.state === 'aborted'
        ? `${name} is already aborted: nothing to abort`
        : `${name} has already ended (failed in ${failed.join(', ') || 'no region'}): nothing to abort`,
    );
  }
  const why = `aborted: ${reason}`;
  const at = deps.clock.now().toISOString();
  // First the rollout: from here on no wave, retry or reconciler delivers it anywhere.
  const rollout = rolloutOpen
    ? await updateRollout(deps as RolloutDeps, release.releaseId, (r) => {
        if (r.state === 'aborted') return false;
        for (const w of r.waves) {
          if (w.state === 'pending' || w.state === 'announcing' || w.state === 'baking') {
            w.state = 'aborted';
            w.finishedAt = at;
          }
        }
        r.state = 'aborted';
        return true;
      })
    : existing;
  // Then every region still on its way ends, with the reason, and "Build Failed" says so.
  const failed: string[] = [];
  for (const [region, record] of open) {
    const { published } = await recordBuildFailure(deps, {
      releaseId: release.releaseId,
      region,
      reason: why,
      attempts: record.attempts ?? 0,
    });
    if (published) failed.push(region);
  }
  deps.logger.warn('release aborted', { releaseId: release.releaseId, reason, failed });
  return { releaseId: release.releaseId, reason: why, ...(rollout ? { rollout } : {}), failed };
}
