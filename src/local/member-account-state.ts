// The records a local member account keeps on disk (one JSON file per account and region), and the plain
// conversions from them to the port's shapes. member-accounts.ts holds the behaviour.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type {
  AutoScalingGroup,
  InstanceRefreshStatus,
  LaunchTemplate,
  LaunchTemplateVersion,
  Tags,
} from '#ports';

export const ACTIVE_REFRESH: InstanceRefreshStatus[] = [
  'Pending',
  'InProgress',
  'Cancelling',
  'RollbackInProgress',
  'Baking',
];

export interface LocalLaunchTemplateVersion extends LaunchTemplateVersion {
  createdAt: string;
}
export interface InstanceRefresh {
  instanceRefreshId: string;
  status: InstanceRefreshStatus;
  startTime: string;
}

export interface VersionRecord extends LocalLaunchTemplateVersion {}
export interface TemplateRecord {
  launchTemplateId: string;
  launchTemplateName: string;
  tags: Tags;
  defaultVersionNumber: number;
  versions: VersionRecord[];
}
export interface RefreshRecord {
  instanceRefreshId: string;
  /** status as set; an active one turns Successful at completesAt (epoch ms) unless that is null */
  status: InstanceRefreshStatus;
  startTime: string;
  completesAt: number | null;
  /** What the refresh ends as at completesAt (default Successful): failNextInstanceRefresh() sets it. */
  endsAs?: InstanceRefreshStatus;
  /** The image the refresh moves the instances to. */
  imageId?: string;
  /** Its end event: still to put on the account's bus once it ends, or put there. */
  endEvent?: 'pending' | 'sent';
}

/** The detail-type Auto Scaling sends when a refresh reaches each end state. */
export const END_EVENT: Partial<Record<InstanceRefreshStatus, string>> = {
  Successful: 'EC2 Auto Scaling Instance Refresh Succeeded',
  Failed: 'EC2 Auto Scaling Instance Refresh Failed',
  Cancelled: 'EC2 Auto Scaling Instance Refresh Cancelled',
  RollbackSuccessful: 'EC2 Auto Scaling Instance Refresh Rollback Succeeded',
  RollbackFailed: 'EC2 Auto Scaling Instance Refresh Rollback Failed',
};
export interface GroupRecord {
  name: string;
  launchTemplateId?: string;
  /** `$Default`, `$Latest` or a version number; absent means `$Default`, as in Auto Scaling. */
  launchTemplateVersion?: string;
  tags: Tags;
  instanceRefreshes: RefreshRecord[];
  /** The outcome the next started refresh ends with (then cleared). */
  nextRefreshEndsAs?: InstanceRefreshStatus;
}
export interface ParameterRecord {
  name: string;
  value: string;
  version: number;
  lastModifiedDate: string;
}
export interface AccountRegionState {
  launchTemplates: TemplateRecord[];
  autoScalingGroups: GroupRecord[];
  parameters: Record<string, ParameterRecord>;
  /** client token → the version it created and a fingerprint of the request */
  clientTokens: Record<string, { launchTemplateId: string; versionNumber: number; fingerprint: string }>;
}

export function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** A stable stand-in for the UUID in an Auto Scaling group's ARN. */
export function groupUuid(accountId: string, region: string, name: string): string {
  const h = createHash('sha256').update(`${accountId}/${region}/${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

export function toLaunchTemplate(t: TemplateRecord): LaunchTemplate {
  return {
    launchTemplateId: t.launchTemplateId,
    launchTemplateName: t.launchTemplateName,
    defaultVersionNumber: t.defaultVersionNumber,
    latestVersionNumber: Math.max(...t.versions.map((v) => v.versionNumber)),
    tags: { ...t.tags },
  };
}

export function toVersion(v: VersionRecord): LaunchTemplateVersion {
  const version: LaunchTemplateVersion = { versionNumber: v.versionNumber };
  if (v.imageId !== undefined) version.imageId = v.imageId;
  if (v.instanceType !== undefined) version.instanceType = v.instanceType;
  if (v.versionDescription !== undefined) version.versionDescription = v.versionDescription;
  return version;
}

export function toGroup(g: GroupRecord): AutoScalingGroup {
  const group: AutoScalingGroup = { name: g.name, tags: { ...g.tags } };
  if (g.launchTemplateId) {
    group.launchTemplateId = g.launchTemplateId;
    group.launchTemplateVersion = g.launchTemplateVersion ?? '$Default';
  }
  return group;
}
