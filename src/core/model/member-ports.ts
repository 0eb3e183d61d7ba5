// The member-account port (launch templates, Auto Scaling groups and SSM parameters of a member account), beside
// the core's plain types so src/ports.ts stays within its size; src/ports.ts re-exports it.

type Tags = Record<string, string>;

export interface LaunchTemplate {
  launchTemplateId: string;
  launchTemplateName: string;
  defaultVersionNumber: number;
  latestVersionNumber: number;
  tags: Tags;
}
export interface LaunchTemplateVersion {
  versionNumber: number;
  imageId?: string;
  /** InstanceType of the version's launch data, when it sets one. */
  instanceType?: string;
  versionDescription?: string;
  /** True on the template's default version (DescribeLaunchTemplateVersions reports it per version). */
  defaultVersion?: boolean;
}
export interface AutoScalingGroup {
  name: string;
  launchTemplateId?: string;
  /** The version the group launches: `$Default`, `$Latest` or a number (as a string), as Auto Scaling stores it. */
  launchTemplateVersion?: string;
  tags: Tags;
}
/** What one member account lets its subscriber do, in one region. */
export interface MemberAccount {
  readonly accountId: string;
  readonly region: string;
  listLaunchTemplates(tagKey: string, tagValue: string): Promise<LaunchTemplate[]>;
  getLaunchTemplateVersion(launchTemplateId: string, version: number): Promise<LaunchTemplateVersion>;
  /** Every version of the template, oldest first (DescribeLaunchTemplateVersions, all pages). */
  listLaunchTemplateVersions(launchTemplateId: string): Promise<LaunchTemplateVersion[]>;
  /** Idempotent on clientToken: a retry returns the version created the first time. */
  createLaunchTemplateVersion(
    launchTemplateId: string,
    input: { sourceVersion: number; imageId: string; versionDescription: string; clientToken: string },
  ): Promise<LaunchTemplateVersion>;
  setDefaultVersion(launchTemplateId: string, version: number): Promise<void>;
  putParameter(name: string, value: string): Promise<void>;
  /** Groups carrying the tag; every group of the account and region when no tag is given. */
  listAutoScalingGroups(tagKey?: string, tagValue?: string): Promise<AutoScalingGroup[]>;
  instanceRefreshInProgress(asgName: string): Promise<boolean>;
  startInstanceRefresh(asgName: string): Promise<{ instanceRefreshId: string }>;
  /** CreateOrUpdateTags on the group (not propagated to its instances). */
  tagAutoScalingGroup(asgName: string, tags: Tags): Promise<void>;
  /**
   * DescribeInstanceRefreshes for one refresh; undefined when the group does not know it. Optional: without
   * it the subscriber reports "started" and the Auto Scaling event reports the end.
   */
  describeInstanceRefresh?(
    asgName: string,
    instanceRefreshId: string,
  ): Promise<InstanceRefreshStatus | undefined>;
  /** The images the group's running instances were launched from (the adoption view); optional. */
  runningImages?(asgName: string): Promise<string[]>;
  /** Images of the account's pending, running and stopped instances in the region; absent where not visible. */
  instanceImageIds?(): Promise<string[]>;
}
/** Auto Scaling's instance refresh statuses. */
export type InstanceRefreshStatus =
  | 'Pending'
  | 'InProgress'
  | 'Successful'
  | 'Failed'
  | 'Cancelling'
  | 'Cancelled'
  | 'RollbackInProgress'
  | 'RollbackFailed'
  | 'RollbackSuccessful'
  | 'Baking';
export interface MemberAccounts {
  forAccount(accountId: string, region: string): MemberAccount;
}
