// The launch verdict: a release is done when every account told about it can launch its image, not when its
// launch templates were moved. For every launch template tagged for a stream, in every account and region
// given, ask the launch model whether that account could launch the default version's image with the version's
// instance type, as the Auto Scaling group using the template would (or the account itself when none does).
import type { LaunchModel, MemberAccounts } from '#ports';
import { TAG } from '../model/naming.ts';

export interface LaunchTarget {
  accountId: string;
  region: string;
  stream: string;
}

export interface LaunchFailure {
  account: string;
  region: string;
  launchTemplate: string;
  imageId: string | null;
  reason: string;
}

export interface LaunchReport {
  checked: number;
  launchable: number;
  failures: LaunchFailure[];
}

export async function checkLaunches(
  deps: { members: MemberAccounts; launch: LaunchModel },
  targets: LaunchTarget[],
): Promise<LaunchReport> {
  const report: LaunchReport = { checked: 0, launchable: 0, failures: [] };
  for (const { accountId, region, stream } of targets) {
    const member = deps.members.forAccount(accountId, region);
    const templates = await member.listLaunchTemplates(TAG.stream, stream);
    if (templates.length === 0) continue;
    const groups = await member.listAutoScalingGroups();
    for (const template of templates) {
      report.checked++;
      const version = await member.getLaunchTemplateVersion(
        template.launchTemplateId,
        template.defaultVersionNumber,
      );
      const fail = (reason: string) =>
        report.failures.push({
          account: accountId,
          region,
          launchTemplate: template.launchTemplateName,
          imageId: version.imageId ?? null,
          reason,
        });
      if (!version.imageId) {
        fail(`version ${version.versionNumber} names no image`);
        continue;
      }
      if (!version.instanceType) {
        fail(`version ${version.versionNumber} names no instance type`);
        continue;
      }
      const via = groups.some((g) => g.launchTemplateId === template.launchTemplateId)
        ? 'auto-scaling'
        : 'account';
      const verdict = await deps.launch.check({
        accountId,
        region,
        imageId: version.imageId,
        instanceType: version.instanceType,
        via,
      });
      if (verdict.launchable) report.launchable++;
      else fail(verdict.reason);
    }
  }
  return report;
}
