// The demo's verdict: not "the launch templates moved" but "every account told can launch what it was told
// about". Every launch template tagged for a stream, in every account of the organization and every region of
// the stream, goes through the launch model as its Auto Scaling group would launch it (image state, launch
// permission, the customer key through the account's grant, instance type). Beside it, how many accounts in
// scope have all their templates on the newest image.
import type { StemcellConfig } from '#config/schema.ts';
import { checkLaunches, type LaunchReport, type LaunchTarget } from '#core/images/launch.ts';
import type { LocalStack } from '#local/stack.ts';
import { accountsInScope } from './config.ts';
import { checkLaunchTemplates } from './report.ts';

export interface Verdict {
  launch: LaunchReport;
  /** Accounts in some stream's scope whose tagged launch templates all default to the newest image. */
  accountsUpdated: number;
  accountsInScope: number;
}

export async function launchVerdict(
  stack: LocalStack,
  config: StemcellConfig = stack.config,
): Promise<Verdict> {
  const accounts = (await stack.organization.listAccounts()).map((a) => a.id);
  const targets: LaunchTarget[] = Object.entries(config.streams).flatMap(([stream, s]) =>
    accounts.flatMap((accountId) => s.regions.map((region) => ({ accountId, region, stream }))),
  );
  const launch = await checkLaunches({ members: stack.members, launch: stack.launch }, targets);
  const inScope = new Set(Object.keys(config.streams).flatMap((stream) => accountsInScope(config, stream)));
  const checks = checkLaunchTemplates(config, await stack.releases.list(), stack.members);
  const behind = new Set(checks.filter((c) => !c.ok).map((c) => c.account));
  return {
    launch,
    accountsUpdated: [...inScope].filter((a) => !behind.has(a)).length,
    accountsInScope: inScope.size,
  };
}

/** Launchable means all of them, and at least one: a verdict over nothing proves nothing. */
export function allLaunchable(verdict: Verdict): boolean {
  return verdict.launch.checked > 0 && verdict.launch.launchable === verdict.launch.checked;
}

export function verdictLines(verdict: Verdict): string[] {
  const { launch } = verdict;
  return [
    `${launch.launchable}/${launch.checked} launchable (${verdict.accountsUpdated}/${verdict.accountsInScope} accounts updated)`,
    ...launch.failures.map(
      (f) =>
        `  NOT LAUNCHABLE: ${f.account} ${f.region} ${f.launchTemplate} ${f.imageId ?? '-'}: ${f.reason}`,
    ),
  ];
}
