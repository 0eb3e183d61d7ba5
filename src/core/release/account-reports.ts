// A member account reported on a launch template ("Launch Template Updated", sent back by its subscriber):
// the release's record of that account keeps the best outcome and the templates it refused to move (it could
// not launch the image), and the rollout hears of it (a wave's health).
import { INSTANCE_REFRESH_SEVERITY, type LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { AccountRecord, LaunchRefusalRecord } from '#ports';
import type { AnnounceDeps, Logger } from '../deps.ts';
import { type MaybeRolloutDeps, onLaunchTemplateReport } from '../rollout/rollout.ts';

const OUTCOME_RANK: Record<AccountRecord['outcome'], number> = {
  'nothing-to-move': -1,
  refused: -1,
  'skipped-older': 0,
  'already-current': 1,
  updated: 2,
};

/**
 * A member account reported one launch template. The account's record for the region keeps the best outcome
 * seen, the worst instance-refresh outcome, the templates it refused to move (with why; a later report that
 * moved one clears it), and counts reports; EventBridge delivers at least once, so the count is an upper bound.
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
  const refused = refusalsAfter(existing?.refused ?? [], detail);
  const record: AccountRecord = {
    accountId: detail.accountId,
    region: detail.region,
    outcome,
    // A refresh's end (`refresh` set) is a second report of a template already counted, or about to be; an
    // account with nothing to move reported no template.
    launchTemplates:
      (existing?.launchTemplates ?? 0) + (detail.refresh || detail.outcome === 'nothing-to-move' ? 0 : 1),
    updatedAt,
    ...(instanceRefresh ? { instanceRefresh } : {}),
    ...(refused.length > 0 ? { refused } : {}),
  };
  await deps.releases.recordAccount(release.releaseId, record);
  // Without a rollout store and timer (a stream with no waves) the rollout hears nothing: it checks that itself.
  await onLaunchTemplateReport(deps as MaybeRolloutDeps, detail);
  return record;
}

/** The account's refused templates once this report is in: a refusal replaces the template's, a move clears it. */
function refusalsAfter(refused: LaunchRefusalRecord[], detail: LaunchTemplateUpdated): LaunchRefusalRecord[] {
  const at = new Date(detail.updatedAt).toISOString();
  const same = refused.find((r) => r.launchTemplateId === detail.launchTemplateId);
  // Reports may arrive out of order: an older one changes nothing about a newer refusal.
  if (same && same.at > at) return refused;
  const others = refused.filter((r) => r.launchTemplateId !== detail.launchTemplateId);
  // The schema requires the template with every outcome but nothing-to-move, a refusal among them.
  const { launchTemplateId, launchTemplateName } = detail;
  if (detail.outcome === 'refused' && detail.refusal && launchTemplateId && launchTemplateName)
    return [
      ...others,
      {
        launchTemplateId,
        launchTemplateName,
        check: detail.refusal.check,
        reason: detail.refusal.reason,
        at,
      },
    ];
  return detail.outcome === 'updated' || detail.outcome === 'already-current' ? others : refused;
}
