// subscriber, second report: how an instance refresh it started ended. When it moves a launch template, the
// subscriber starts the refresh of each opted-in group and reports "started" (on AWS a refresh takes minutes;
// the describe at report time rarely sees its end). Auto Scaling then sends "EC2 Auto Scaling Instance Refresh
// Succeeded/Failed/Cancelled/Rollback …" to the member account's bus; a rule puts it on the subscriber's queue,
// and this reports the end to the central bus as another "Launch Template Updated" for the same release, with
// `refresh` set. Announce keeps the worst refresh outcome per account and region, and a failed, cancelled or
// rolled-back one halts a rolling release (src/core/rollout/rollout.ts). The end event names only the group and the
// refresh id: the group's stemcell:instance-refresh tag, written when the refresh started, ties it to the
// launch template version (whose description names the release) and the revision.
import { INSTANCE_REFRESH_END, type InstanceRefreshEndedEnvelope } from '#events/aws.ts';
import type { LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { SubscriberDeps } from '../deps.ts';
import { emit } from '../model/emit.ts';
import { parseInstanceRefreshTag, releaseFromVersionDescription, TAG } from '../model/naming.ts';

export type RefreshReport =
  | { outcome: 'reported'; releaseId: string; instanceRefresh: LaunchTemplateUpdated['instanceRefresh'] }
  | { outcome: 'ignored'; reason: string };

export async function reportInstanceRefresh(
  deps: SubscriberDeps,
  event: InstanceRefreshEndedEnvelope,
): Promise<RefreshReport> {
  const { AutoScalingGroupName: group, InstanceRefreshId: instanceRefreshId } = event.detail;
  const region = event.region;
  const ignore = (reason: string): RefreshReport => {
    deps.logger.info('instance refresh end ignored', {
      autoScalingGroupName: group,
      instanceRefreshId,
      region,
      reason,
    });
    return { outcome: 'ignored', reason };
  };
  if (event.account !== deps.accountId) return ignore(`an event of account ${event.account}`);
  const member = deps.members.forAccount(deps.accountId, region);
  const found = (await member.listAutoScalingGroups(TAG.refresh, 'true')).find((g) => g.name === group);
  const tag = parseInstanceRefreshTag(found?.tags[TAG.instanceRefresh]);
  if (!found || !tag) return ignore('stemcell started no instance refresh on this group');
  if (tag.instanceRefreshId !== instanceRefreshId)
    return ignore(`not the refresh stemcell started last (${tag.instanceRefreshId})`);
  const version = await member.getLaunchTemplateVersion(tag.launchTemplateId, tag.versionNumber);
  const release = releaseFromVersionDescription(version.versionDescription);
  if (!release || !version.imageId)
    return ignore(
      `launch template ${tag.launchTemplateId} version ${tag.versionNumber} holds no stemcell release`,
    );
  const template = (await member.listLaunchTemplates(TAG.stream, release.stream)).find(
    (t) => t.launchTemplateId === tag.launchTemplateId,
  );
  const instanceRefresh = INSTANCE_REFRESH_END[event['detail-type']];
  await emit(
    deps.events,
    'Launch Template Updated',
    {
      version: 1,
      stream: release.stream,
      revision: tag.revision,
      sequence: release.sequence,
      releaseId: release.releaseId,
      accountId: deps.accountId,
      region,
      imageId: version.imageId,
      launchTemplateId: tag.launchTemplateId,
      // A template no longer tagged for the stream still names the refresh's version; its id stands in.
      launchTemplateName: template?.launchTemplateName ?? tag.launchTemplateId,
      versionNumber: tag.versionNumber,
      outcome: 'updated',
      instanceRefresh,
      refresh: { autoScalingGroupName: group, instanceRefreshId },
      updatedAt: deps.clock.now().toISOString(),
    },
    deps.centralBus,
  );
  deps.logger.info('instance refresh end reported', {
    releaseId: release.releaseId,
    autoScalingGroupName: group,
    region,
    instanceRefresh,
  });
  return { outcome: 'reported', releaseId: release.releaseId, instanceRefresh };
}
