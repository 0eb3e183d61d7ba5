// A member account reported on a launch template ("Launch Template Updated", sent back by its subscriber):
// the release's record of that account keeps the best outcome, and the rollout hears of it (a wave's health).
import { INSTANCE_REFRESH_SEVERITY, type LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { AccountRecord } from '#ports';
import type { AnnounceDeps, Logger } from '../deps.ts';
import { type MaybeRolloutDeps, onLaunchTemplateReport } from '../rollout/rollout.ts';

const OUTCOME_RANK: Record<AccountRecord['outcome'], number> = {
  'skipped-older': 0,
  'already-current': 1,
  updated: 2,
};

/**
 * A member account reported one launch template. The account's record for the region keeps the best outcome
 * seen, the worst instance-refresh outcome, and counts reports; EventBridge delivers at least once, so the
 * count is an upper bound.
 */
export async function recordLaunchTemplateUpdate(
  deps: { releases: AnnounceDeps['releases']; logger: Logger } & Partial<MaybeRolloutDeps>,
  detail: LaunchTemplateUpdated,
): Promise<AccountRecord | undefined> {
  const release = await deps.releases.get(detail.releaseId);
  if (!release) {
    deps.logger.warn('launch template update for an unknown release', {
      releaseId: detail.releaseId,
      accountId: detail.accountId,
    });
    return undefined;
  }
  const existing = release.accounts[`${detail.accountId}/${detail.region}`];
  const outcome =
    existing && OUTCOME_RANK[existing.outcome] > OUTCOME_RANK[detail.outcome]
      ? existing.outcome
      : detail.outcome;
  const refreshRank = (r: string | undefined) =>
    INSTANCE_REFRESH_SEVERITY.indexOf(r as (typeof INSTANCE_REFRESH_SEVERITY)[number]);
  const instanceRefresh =
    refreshRank(existing?.instanceRefresh) > refreshRank(detail.instanceRefresh)
      ? existing?.instanceRefresh
      : detail.instanceRefresh;
  const reported = new Date(detail.updatedAt).toISOString();
  const updatedAt = existing && existing.updatedAt > reported ? existing.updatedAt : reported;
  const record: AccountRecord = {
    accountId: detail.accountId,
    region: detail.region,
    outcome,
    // A refresh's end (`refresh` set) is a second report of a template already counted, or about to be.
    launchTemplates: (existing?.launchTemplates ?? 0) + (detail.refresh ? 0 : 1),
    updatedAt,
    ...(instanceRefresh ? { instanceRefresh } : {}),
  };
  await deps.releases.recordAccount(release.releaseId, record);
  if (deps.rollouts && deps.timer) await onLaunchTemplateReport(deps as MaybeRolloutDeps, detail);
  return record;
}
