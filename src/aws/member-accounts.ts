// MemberAccounts on EC2 launch templates, Auto Scaling and SSM. The subscriber runs inside each member
// account (infra/member.yml), so its own clients serve; a caller elsewhere gets clients for a role assumed
// in the member account (AwsClients with memberRoleName).
import {
  type AutoScalingClient,
  CreateOrUpdateTagsCommand,
  DescribeInstanceRefreshesCommand,
  paginateDescribeAutoScalingGroups,
  paginateDescribeInstanceRefreshes,
  StartInstanceRefreshCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateVersionCommand,
  DescribeLaunchTemplateVersionsCommand,
  type EC2Client,
  ModifyLaunchTemplateCommand,
  paginateDescribeInstances,
  paginateDescribeLaunchTemplates,
  paginateDescribeLaunchTemplateVersions,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type {
  AutoScalingGroup,
  InstanceRefreshStatus,
  LaunchTemplate,
  LaunchTemplateVersion,
  MemberAccount,
  MemberAccounts,
  Tags,
} from '#ports';
import type { AwsClients } from './clients.ts';
import { isError, realSleep, retrying, type Sleep, THROTTLING } from './retry.ts';
import { fromTagList, tagFilter } from './tags.ts';

/** How long a write of an aws:ec2:image parameter may take to show (SSM validates it asynchronously). */
export const PARAMETER_CONFIRM_MS = 30_000;
const PARAMETER_POLL_MS = 1_000;

/** Refreshes in these states block starting another one. */
const ACTIVE_REFRESH = new Set(['Pending', 'InProgress', 'Cancelling', 'RollbackInProgress', 'Baking']);

export interface MemberClients {
  ec2: EC2Client;
  autoScaling: AutoScalingClient;
  ssm: SSMClient;
}

export class AwsMemberAccount implements MemberAccount {
  readonly accountId: string;
  readonly region: string;
  readonly #ec2: EC2Client;
  readonly #asg: AutoScalingClient;
  readonly #ssm: SSMClient;
  readonly #sleep: Sleep | undefined;

  constructor(accountId: string, region: string, clients: MemberClients, sleep?: Sleep) {
    this.accountId = accountId;
    this.region = region;
    this.#ec2 = clients.ec2;
    this.#asg = clients.autoScaling;
    this.#ssm = clients.ssm;
    this.#sleep = sleep;
  }

  async listLaunchTemplates(tagKey: string, tagValue: string): Promise<LaunchTemplate[]> {
    const templates: LaunchTemplate[] = [];
    const pages = paginateDescribeLaunchTemplates(
      { client: this.#ec2 },
      { Filters: [tagFilter(tagKey, tagValue)] },
    );
    for await (const page of pages) {
      for (const lt of page.LaunchTemplates ?? []) {
        if (!lt.LaunchTemplateId) continue;
        templates.push({
          launchTemplateId: lt.LaunchTemplateId,
          launchTemplateName: lt.LaunchTemplateName ?? lt.LaunchTemplateId,
          defaultVersionNumber: lt.DefaultVersionNumber ?? 1,
          latestVersionNumber: lt.LatestVersionNumber ?? 1,
          tags: fromTagList(lt.Tags),
        });
      }
    }
    return templates;
  }

  async getLaunchTemplateVersion(launchTemplateId: string, version: number): Promise<LaunchTemplateVersion> {
    const out = await this.#ec2.send(
      new DescribeLaunchTemplateVersionsCommand({
        LaunchTemplateId: launchTemplateId,
        Versions: [String(version)],
      }),
    );
    const v = out.LaunchTemplateVersions?.[0];
    if (!v) throw new Error(`launch template ${launchTemplateId} has no version ${version}`);
    return this.#toVersion(v);
  }

  async listLaunchTemplateVersions(launchTemplateId: string): Promise<LaunchTemplateVersion[]> {
    const versions: LaunchTemplateVersion[] = [];
    const pages = paginateDescribeLaunchTemplateVersions(
      { client: this.#ec2 },
      { LaunchTemplateId: launchTemplateId },
    );
    for await (const page of pages) {
      for (const v of page.LaunchTemplateVersions ?? []) versions.push(this.#toVersion(v));
    }
    return versions.sort((a, b) => a.versionNumber - b.versionNumber);
  }

  async createLaunchTemplateVersion(
    launchTemplateId: string,
    input: { sourceVersion: number; imageId: string; versionDescription: string; clientToken: string },
  ): Promise<LaunchTemplateVersion> {
    const out = await retrying(
      () =>
        this.#ec2.send(
          new CreateLaunchTemplateVersionCommand({
            LaunchTemplateId: launchTemplateId,
            SourceVersion: String(input.sourceVersion),
            VersionDescription: input.versionDescription,
            LaunchTemplateData: { ImageId: input.imageId },
            // EC2 returns the version made the first time for a repeated token.
            ClientToken: input.clientToken,
          }),
        ),
      { on: THROTTLING, ...(this.#sleep ? { sleep: this.#sleep } : {}) },
    );
    const v = out.LaunchTemplateVersion;
    if (!v?.VersionNumber)
      throw new Error(`CreateLaunchTemplateVersion on ${launchTemplateId} returned no version`);
    return this.#toVersion(v);
  }

  async setDefaultVersion(launchTemplateId: string, version: number): Promise<void> {
    await this.#ec2.send(
      new ModifyLaunchTemplateCommand({
        LaunchTemplateId: launchTemplateId,
        DefaultVersion: String(version),
      }),
    );
  }

  /**
   * A String parameter of data type aws:ec2:image, so SSM itself checks that the value is an AMI id. SSM does
   * that check asynchronously, with the caller's own ec2:DescribeImages: PutParameter succeeds even when the
   * check later fails and the parameter is never written. So the write is confirmed by reading it back, and
   * a write that never shows is an error (nothing reports a parameter that does not exist).
   */
  async putParameter(name: string, value: string): Promise<void> {
    const out = await this.#ssm.send(
      new PutParameterCommand({
        Name: name,
        Value: value,
        Type: 'String',
        DataType: 'aws:ec2:image',
        Overwrite: true,
      }),
    );
    const version = out.Version ?? 1;
    const sleep = this.#sleep ?? realSleep;
    let seen = 'not found';
    for (let waited = 0; ; waited += PARAMETER_POLL_MS) {
      try {
        const got = await this.#ssm.send(new GetParameterCommand({ Name: name }));
        const p = got.Parameter;
        if (p?.Value === value && (p.Version ?? 0) >= version) return;
        seen = `version ${p?.Version} = ${p?.Value}`;
      } catch (err) {
        if (!isError(err, 'ParameterNotFound', 'ParameterVersionNotFound')) throw err;
      }
      if (waited >= PARAMETER_CONFIRM_MS) break;
      await sleep(PARAMETER_POLL_MS);
    }
    throw new Error(
      `SSM parameter ${name} in ${this.region} was not written with ${value} (still ${seen} after ` +
        `${PARAMETER_CONFIRM_MS / 1000} s): SSM validates aws:ec2:image values with the caller's ` +
        'ec2:DescribeImages and drops the write when the image is not visible to it',
    );
  }

  async listAutoScalingGroups(tagKey?: string, tagValue?: string): Promise<AutoScalingGroup[]> {
    const groups: AutoScalingGroup[] = [];
    const pages = paginateDescribeAutoScalingGroups(
      { client: this.#asg },
      tagKey === undefined ? {} : { Filters: [{ Name: `tag:${tagKey}`, Values: [tagValue ?? ''] }] },
    );
    for await (const page of pages) {
      for (const g of page.AutoScalingGroups ?? []) {
        if (!g.AutoScalingGroupName) continue;
        const group: AutoScalingGroup = { name: g.AutoScalingGroupName, tags: fromTagList(g.Tags) };
        const spec = g.LaunchTemplate ?? g.MixedInstancesPolicy?.LaunchTemplate?.LaunchTemplateSpecification;
        if (spec?.LaunchTemplateId) {
          group.launchTemplateId = spec.LaunchTemplateId;
          // Auto Scaling reports the version as given at creation; absent means $Default.
          group.launchTemplateVersion = spec.Version ?? '$Default';
        }
        groups.push(group);
      }
    }
    return groups;
  }

  async instanceRefreshInProgress(asgName: string): Promise<boolean> {
    const pages = paginateDescribeInstanceRefreshes({ client: this.#asg }, { AutoScalingGroupName: asgName });
    for await (const page of pages) {
      if (page.InstanceRefreshes?.some((r) => r.Status && ACTIVE_REFRESH.has(r.Status))) return true;
    }
    return false;
  }

  async startInstanceRefresh(asgName: string): Promise<{ instanceRefreshId: string }> {
    const out = await this.#asg.send(
      new StartInstanceRefreshCommand({
        AutoScalingGroupName: asgName,
        Strategy: 'Rolling',
        // Instances already on the new launch template version are left alone.
        Preferences: { MinHealthyPercentage: 90, SkipMatching: true },
      }),
    );
    if (!out.InstanceRefreshId) throw new Error(`StartInstanceRefresh on ${asgName} returned no id`);
    return { instanceRefreshId: out.InstanceRefreshId };
  }

  async tagAutoScalingGroup(asgName: string, tags: Tags): Promise<void> {
    await this.#asg.send(
      new CreateOrUpdateTagsCommand({
        Tags: Object.entries(tags).map(([Key, Value]) => ({
          ResourceId: asgName,
          ResourceType: 'auto-scaling-group',
          Key,
          Value,
          // Bookkeeping of stemcell's, not a tag for the group's instances.
          PropagateAtLaunch: false,
        })),
      }),
    );
  }

  /** The images the group's instances were launched from: their launch template versions' ImageIds. */
  async runningImages(asgName: string): Promise<string[]> {
    const versions = new Map<string, Set<string>>();
    const pages = paginateDescribeAutoScalingGroups(
      { client: this.#asg },
      { AutoScalingGroupNames: [asgName] },
    );
    for await (const page of pages) {
      for (const instance of page.AutoScalingGroups?.flatMap((g) => g.Instances ?? []) ?? []) {
        const lt = instance.LaunchTemplate;
        if (!lt?.LaunchTemplateId || !lt.Version) continue;
        versions.set(lt.LaunchTemplateId, (versions.get(lt.LaunchTemplateId) ?? new Set()).add(lt.Version));
      }
    }
    const images = new Set<string>();
    for (const [launchTemplateId, numbers] of versions) {
      const out = await this.#ec2.send(
        new DescribeLaunchTemplateVersionsCommand({
          LaunchTemplateId: launchTemplateId,
          Versions: [...numbers],
        }),
      );
      for (const v of out.LaunchTemplateVersions ?? [])
        if (v.LaunchTemplateData?.ImageId) images.add(v.LaunchTemplateData.ImageId);
    }
    return [...images].sort();
  }

  async describeInstanceRefresh(
    asgName: string,
    instanceRefreshId: string,
  ): Promise<InstanceRefreshStatus | undefined> {
    const out = await this.#asg.send(
      new DescribeInstanceRefreshesCommand({
        AutoScalingGroupName: asgName,
        InstanceRefreshIds: [instanceRefreshId],
      }),
    );
    return out.InstanceRefreshes?.[0]?.Status as InstanceRefreshStatus | undefined;
  }

  /** DescribeInstances: the images of pending, running, stopping and stopped instances. */
  async instanceImageIds(): Promise<string[]> {
    const ids = new Set<string>();
    const pages = paginateDescribeInstances(
      { client: this.#ec2 },
      { Filters: [{ Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] }] },
    );
    for await (const page of pages) {
      for (const reservation of page.Reservations ?? [])
        for (const instance of reservation.Instances ?? []) if (instance.ImageId) ids.add(instance.ImageId);
    }
    return [...ids].sort();
  }

  #toVersion(v: {
    VersionNumber?: number | undefined;
    VersionDescription?: string | undefined;
    LaunchTemplateData?: { ImageId?: string | undefined; InstanceType?: string | undefined } | undefined;
    DefaultVersion?: boolean | undefined;
  }): LaunchTemplateVersion {
    const version: LaunchTemplateVersion = { versionNumber: v.VersionNumber ?? 0 };
    if (v.DefaultVersion !== undefined) version.defaultVersion = v.DefaultVersion;
    if (v.LaunchTemplateData?.ImageId) version.imageId = v.LaunchTemplateData.ImageId;
    if (v.LaunchTemplateData?.InstanceType) version.instanceType = v.LaunchTemplateData.InstanceType;
    if (v.VersionDescription) version.versionDescription = v.VersionDescription;
    return version;
  }
}

export class AwsMemberAccounts implements MemberAccounts {
  readonly #clientsFor: (accountId: string, region: string) => MemberClients;
  readonly #accounts = new Map<string, AwsMemberAccount>();
  readonly #sleep: Sleep | undefined;

  /** clients: an AwsClients (assumes the member role where the account is not its own) or a factory. */
  constructor(options: {
    clients: AwsClients | ((accountId: string, region: string) => MemberClients);
    sleep?: Sleep;
  }) {
    const c = options.clients;
    this.#clientsFor =
      typeof c === 'function'
        ? c
        : (accountId, region) => ({
            ec2: c.ec2(region, accountId),
            autoScaling: c.autoScaling(region, accountId),
            ssm: c.ssm(region, accountId),
          });
    this.#sleep = options.sleep;
  }

  forAccount(accountId: string, region: string): MemberAccount {
    const key = `${accountId}/${region}`;
    let account = this.#accounts.get(key);
    if (!account) {
      account = new AwsMemberAccount(accountId, region, this.#clientsFor(accountId, region), this.#sleep);
      this.#accounts.set(key, account);
    }
    return account;
  }
}
