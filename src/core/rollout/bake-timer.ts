// A wave's bake time elapsed (the EventBridge Scheduler one-time schedule on AWS): the rollout moves to its next
// wave, or finishes, and a finished rollout may complete the release.
import type { AnnounceDeps } from '../deps.ts';
import { completeIfAllAnnounced } from '../release/image-ready.ts';
import { onBakeElapsed, type RolloutDeps, type TimerResult } from './rollout.ts';

/** The bake timer of a wave fired. */
export async function onRolloutTimer(
  deps: AnnounceDeps & Pick<RolloutDeps, 'rollouts' | 'timer'>,
  input: Parameters<typeof onBakeElapsed>[1],
): Promise<TimerResult & { releaseComplete: boolean }> {
  const result = await onBakeElapsed(deps, input);
  const releaseComplete =
    result.outcome === 'rollout-complete' && (await completeIfAllAnnounced(deps, input.releaseId));
  return { ...result, releaseComplete };
}
