// What member accounts hold locally: launch templates (versions, default version), Auto Scaling groups (tags,
// instance refreshes) and SSM parameters, one JSON file per account and region under
// <root>/member-accounts/<account>/<region>.json. createLaunchTemplateVersion is idempotent on the client token
// like EC2. Instance refreshes run for `instanceRefreshSeconds` of (injectable) clock time, then succeed; a test
// can pin one "InProgress" with setInstanceRefresh(). Like Auto Scaling, a refresh that ends puts its end event
// ("EC2 Auto Scaling Instance Refresh Succeeded/Failed/…", the documented shape) on the account's bus, when the
// stack gives a sink: at once for a refresh that ends as it starts, else when deliverRefreshEvents() sees it over.

import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalConfig } from '#config/schema.ts';
import { TAG } from '#core/model/naming.ts';
import type {
  AutoScalingGroup,
  Clock,
  InstanceRefreshStatus,
  LaunchTemplate,
  LaunchTemplateVersion,
  MemberAccount,
  MemberAccounts,
  Tags,
} from '#ports';
import { awsTime, systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, writeJsonAtomic } from './json-state.ts';
import { type ServiceEventSink, serviceEvent } from './service-events.ts';

export type { InstanceRefreshStatus };

const ACTIVE_REFRESH: InstanceRefreshStatus[] = [
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

interface VersionRecord extends LocalLaunchTemplateVersion {}
interface TemplateRecord {
  launchTemplateId: string;
  launchTemplateName: string;
  tags: Tags;
  defaultVersionNumber: number;
  versions: VersionRecord[];
}
interface RefreshRecord {
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
const END_EVENT: Partial<Record<InstanceRefreshStatus, string>> = {
  Successful: 'EC2 Auto Scaling Instance Refresh Succeeded',
  Failed: 'EC2 Auto Scaling Instance Refresh Failed',
  Cancelled: 'EC2 Auto Scaling Instance Refresh Cancelled',
  RollbackSuccessful: 'EC2 Auto Scaling Instance Refresh Rollback Succeeded',
  RollbackFailed: 'EC2 Auto Scaling Instance Refresh Rollback Failed',
};
interface GroupRecord {
  name: string;
  launchTemplateId?: string;
  /** `$Default`, `$Latest` or a version number; absent means `$Default`, as in Auto Scaling. */
  launchTemplateVersion?: string;
  tags: Tags;
  instanceRefreshes: RefreshRecord[];
  /** The outcome the next started refresh ends with (then cleared). */
  nextRefreshEndsAs?: InstanceRefreshStatus;
}
interface ParameterRecord {
  name: string;
  value: string;
  version: number;
  lastModifiedDate: string;
}
interface AccountRegionState {
  launchTemplates: TemplateRecord[];
  autoScalingGroups: GroupRecord[];
  parameters: Record<string, ParameterRecord>;
  /** client token → the version it created and a fingerprint of the request */
  clientTokens: Record<string, { launchTemplateId: string; versionNumber: number; fingerprint: string }>;
}

export interface LocalMemberAccountsOptions {
  clock?: Clock;
  /** How long a started instance refresh stays in progress (clock time). Default 0: done at once. */
  instanceRefreshSeconds?: number;
  /** Where an account's Auto Scaling events go (the member's bus); none: no events. */
  autoScalingEvents?: (accountId: string) => ServiceEventSink | undefined;
}

/** What an account handle needs to emit end events: the sink, and a flag that some refresh still owes one. */
interface RefreshEvents {
  sink(accountId: string): ServiceEventSink | undefined;
  owed(): void;
}

export class LocalMemberAccounts implements MemberAccounts {
  private readonly root: string;
  private readonly clock: Clock;
  private readonly refreshMs: number;
  private readonly events: RefreshEvents | undefined;
  /** True until a scan found no refresh owing its end event (starts true: a restart may have left some). */
  private mayOweEvents = true;

  constructor(root: string, options: LocalMemberAccountsOptions = {}) {
    this.root = join(root, 'member-accounts');
    this.clock = options.clock ?? systemClock;
    this.refreshMs = (options.instanceRefreshSeconds ?? 0) * 1000;
    const sinkOf = options.autoScalingEvents;
    this.events = sinkOf && {
      sink: sinkOf,
      owed: () => {
        this.mayOweEvents = true;
      },
    };
  }

  /**
   * Puts the end event of every refresh that ended since it started on its account's bus (what Auto Scaling
   * does by itself; the local stack calls this on a timer). Returns how many it sent.
   */
  deliverRefreshEvents(): number {
    if (!this.events || !this.mayOweEvents) return 0;
    let sent = 0;
    let owing = false;
    for (const accountId of listDir(this.root)) {
      for (const file of listDir(join(this.root, accountId)).filter((f) => f.endsWith('.json'))) {
        const account = this.forAccount(accountId, file.slice(0, -'.json'.length));
        const result = account.sendEndedRefreshEvents();
        sent += result.sent;
        owing ||= result.owing;
      }
    }
    this.mayOweEvents = owing;
    return sent;
  }

  forAccount(accountId: string, region: string): LocalMemberAccount {
    if (!/^\d{12}$/.test(accountId))
      throw new LocalServiceError('ValidationException', `account id ${accountId} is not 12 digits`);
    return new LocalMemberAccount(
      join(this.root, accountId, `${region}.json`),
      accountId,
      region,
      this.clock,
      this.refreshMs,
      this.events,
    );
  }

  // ---------------------------------------------------------------- seed helpers (demo, tests)

  /** CreateLaunchTemplate with one version (the default) holding `imageId` (and `instanceType`). */
  createLaunchTemplate(
    accountId: string,
    region: string,
    input: { name: string; imageId: string; instanceType?: string; tags?: Tags },
  ): LaunchTemplate {
    return this.forAccount(accountId, region).createLaunchTemplate(input);
  }

  /** CreateAutoScalingGroup using a launch template (by id). */
  createAutoScalingGroup(
    accountId: string,
    region: string,
    input: { name: string; launchTemplateId?: string; launchTemplateVersion?: string; tags?: Tags },
  ): AutoScalingGroup {
    return this.forAccount(accountId, region).createAutoScalingGroup(input);
  }

  /**
   * Creates what the config's `local.launchTemplates` describe, skipping those that exist by name: each template
   * tagged `stemcell:stream=<stream>`, and its Auto Scaling group tagged with the stream and `stemcell:refresh`.
   */
  seedFromConfig(local: LocalConfig, instanceTypeFor: (stream: string) => string = () => 't3.micro'): void {
    for (const lt of local.launchTemplates) {
      const account = this.forAccount(lt.account, lt.region);
      const template =
        account.launchTemplateByName(lt.name) ??
        account.createLaunchTemplate({
          name: lt.name,
          imageId: lt.imageId,
          instanceType: lt.instanceType ?? instanceTypeFor(lt.stream),
          tags: { [TAG.stream]: lt.stream },
        });
      if (lt.autoScalingGroup && !account.autoScalingGroupByName(lt.autoScalingGroup)) {
        account.createAutoScalingGroup({
          name: lt.autoScalingGroup,
          launchTemplateId: template.launchTemplateId,
          tags: { [TAG.stream]: lt.stream, [TAG.refresh]: String(lt.refresh) },
        });
      }
    }
  }
}

export class LocalMemberAccount implements MemberAccount {
  readonly accountId: string;
  readonly region: string;
  private readonly path: string;
  private readonly clock: Clock;
  private readonly refreshMs: number;
  private readonly events: RefreshEvents | undefined;

  constructor(
    path: string,
    accountId: string,
    region: string,
    clock: Clock,
    refreshMs: number,
    events?: RefreshEvents,
  ) {
    this.path = path;
    this.accountId = accountId;
    this.region = region;
    this.clock = clock;
    this.refreshMs = refreshMs;
    this.events = events;
  }

  async listLaunchTemplates(tagKey: string, tagValue: string): Promise<LaunchTemplate[]> {
    return this.read()
      .launchTemplates.filter((t) => t.tags[tagKey] === tagValue)
      .map(toLaunchTemplate);
  }

  async getLaunchTemplateVersion(launchTemplateId: string, version: number): Promise<LaunchTemplateVersion> {
    const template = this.requireTemplate(this.read(), launchTemplateId);
    return toVersion(this.requireVersion(template, version));
  }

  async listLaunchTemplateVersions(launchTemplateId: string): Promise<LaunchTemplateVersion[]> {
    const template = this.requireTemplate(this.read(), launchTemplateId);
    return template.versions.map((v) => ({
      ...toVersion(v),
      defaultVersion: v.versionNumber === template.defaultVersionNumber,
    }));
  }

  async createLaunchTemplateVersion(
    launchTemplateId: string,
    input: { sourceVersion: number; imageId: string; versionDescription: string; clientToken: string },
  ): Promise<LaunchTemplateVersion> {
    const state = this.read();
    const template = this.requireTemplate(state, launchTemplateId);
    const fingerprint = createHash('sha256')
      .update(
        JSON.stringify([launchTemplateId, input.sourceVersion, input.imageId, input.versionDescription]),
      )
      .digest('hex');
    const prior = state.clientTokens[input.clientToken];
    if (prior) {
      if (prior.fingerprint !== fingerprint) {
        throw new LocalServiceError(
          'IdempotentParameterMismatch',
          `client token ${input.clientToken} was used with other parameters (launch template ${prior.launchTemplateId})`,
        );
      }
      const priorTemplate = this.requireTemplate(state, prior.launchTemplateId);
      return toVersion(this.requireVersion(priorTemplate, prior.versionNumber));
    }
    if (input.versionDescription.length > 255) {
      throw new LocalServiceError(
        'InvalidParameterValue',
        'VersionDescription is longer than 255 characters',
      );
    }
    const source = this.requireVersion(template, input.sourceVersion);
    // Like EC2: the new version's launch data is the source version's, with the given image.
    const version: VersionRecord = {
      ...(source.instanceType ? { instanceType: source.instanceType } : {}),
      versionNumber: Math.max(...template.versions.map((v) => v.versionNumber)) + 1,
      imageId: input.imageId,
      versionDescription: input.versionDescription,
      createdAt: this.clock.now().toISOString(),
    };
    template.versions.push(version);
    state.clientTokens[input.clientToken] = {
      launchTemplateId,
      versionNumber: version.versionNumber,
      fingerprint,
    };
    this.write(state);
    return toVersion(version);
  }

  async setDefaultVersion(launchTemplateId: string, version: number): Promise<void> {
    const state = this.read();
    const template = this.requireTemplate(state, launchTemplateId);
    this.requireVersion(template, version);
    template.defaultVersionNumber = version;
    this.write(state);
  }

  async putParameter(name: string, value: string): Promise<void> {
    if (!/^\/?[A-Za-z0-9_.\-/]{1,2047}$/.test(name)) {
      throw new LocalServiceError(
        'ValidationException',
        `SSM parameter name ${JSON.stringify(name)} is not valid`,
      );
    }
    const state = this.read();
    const previous = state.parameters[name];
    state.parameters[name] = {
      name,
      value,
      version: (previous?.version ?? 0) + 1,
      lastModifiedDate: this.clock.now().toISOString(),
    };
    this.write(state);
  }

  async listAutoScalingGroups(tagKey?: string, tagValue?: string): Promise<AutoScalingGroup[]> {
    return this.read()
      .autoScalingGroups.filter((g) => tagKey === undefined || g.tags[tagKey] === tagValue)
      .map(toGroup);
  }

  async instanceRefreshInProgress(asgName: string): Promise<boolean> {
    const group = this.requireGroup(this.read(), asgName);
    return group.instanceRefreshes.some((r) => ACTIVE_REFRESH.includes(this.statusOf(r)));
  }

  /** Refused with InstanceRefreshInProgress while one runs, as on AWS. */
  async startInstanceRefresh(asgName: string): Promise<{ instanceRefreshId: string }> {
    const state = this.read();
    const group = this.requireGroup(state, asgName);
    if (group.instanceRefreshes.some((r) => ACTIVE_REFRESH.includes(this.statusOf(r)))) {
      throw new LocalServiceError(
        'InstanceRefreshInProgress',
        `an instance refresh is already in progress on ${asgName}`,
      );
    }
    const now = this.clock.now();
    // What the refresh rolls the instances to: the template's default version at start.
    const template = group.launchTemplateId
      ? state.launchTemplates.find((t) => t.launchTemplateId === group.launchTemplateId)
      : undefined;
    const imageId = template?.versions.find(
      (v) => v.versionNumber === template.defaultVersionNumber,
    )?.imageId;
    const refresh: RefreshRecord = {
      instanceRefreshId: crypto.randomUUID(),
      status: 'Pending',
      startTime: now.toISOString(),
      completesAt: now.getTime() + this.refreshMs,
      ...(group.nextRefreshEndsAs ? { endsAs: group.nextRefreshEndsAs } : {}),
      ...(imageId ? { imageId } : {}),
      ...(this.events ? { endEvent: 'pending' as const } : {}),
    };
    delete group.nextRefreshEndsAs;
    group.instanceRefreshes.push(refresh);
    this.write(state);
    // A refresh that ends as it starts (instanceRefreshSeconds 0) sends its end event now; others owe it.
    if (this.events && !this.sendEndedRefreshEvents().sent) this.events.owed();
    return { instanceRefreshId: refresh.instanceRefreshId };
  }

  async tagAutoScalingGroup(asgName: string, tags: Tags): Promise<void> {
    const state = this.read();
    const group = this.requireGroup(state, asgName);
    for (const [key, value] of Object.entries(tags)) {
      if (key.length > 128 || value.length > 256) {
        throw new LocalServiceError(
          'ValidationError',
          `tag ${key} on ${asgName}: keys hold 128 characters, values 256`,
        );
      }
    }
    group.tags = { ...group.tags, ...tags };
    this.write(state);
  }

  /** Emits the end event of each refresh of this account and region that ended and still owes one. */
  sendEndedRefreshEvents(): { sent: number; owing: boolean } {
    const sink = this.events?.sink(this.accountId);
    if (!sink) return { sent: 0, owing: false };
    const state = this.read();
    const envelopes = [];
    let owing = false;
    for (const group of state.autoScalingGroups) {
      for (const refresh of group.instanceRefreshes) {
        if (refresh.endEvent !== 'pending') continue;
        const detailType = END_EVENT[this.statusOf(refresh)];
        if (!detailType) {
          owing = true;
          continue;
        }
        refresh.endEvent = 'sent';
        envelopes.push(
          serviceEvent({
            'detail-type': detailType,
            source: 'aws.autoscaling',
            account: this.accountId,
            region: this.region,
            time: awsTime(this.clock.now()),
            resources: [
              `arn:aws:autoscaling:${this.region}:${this.accountId}:autoScalingGroup:${groupUuid(this.accountId, this.region, group.name)}:autoScalingGroupName/${group.name}`,
            ],
            detail: { InstanceRefreshId: refresh.instanceRefreshId, AutoScalingGroupName: group.name },
          }),
        );
      }
    }
    if (envelopes.length === 0) return { sent: 0, owing };
    // Recorded as sent before it goes out: EventBridge's delivery is at least once, but Auto Scaling sends once.
    this.write(state);
    for (const envelope of envelopes) sink.emit(envelope);
    return { sent: envelopes.length, owing };
  }

  async describeInstanceRefresh(
    asgName: string,
    instanceRefreshId: string,
  ): Promise<InstanceRefreshStatus | undefined> {
    const refresh = this.requireGroup(this.read(), asgName).instanceRefreshes.find(
      (r) => r.instanceRefreshId === instanceRefreshId,
    );
    return refresh && this.statusOf(refresh);
  }

  /**
   * The group's instances run the image of its last successful refresh; before any, the image its launch
   * template's first version named (what the group was launched with). A failed refresh leaves them as they were.
   */
  async runningImages(asgName: string): Promise<string[]> {
    const state = this.read();
    const group = this.requireGroup(state, asgName);
    const done = [...group.instanceRefreshes]
      .reverse()
      .find((r) => this.statusOf(r) === 'Successful' && r.imageId);
    if (done?.imageId) return [done.imageId];
    const template = state.launchTemplates.find((t) => t.launchTemplateId === group.launchTemplateId);
    const first = template?.versions[0]?.imageId;
    return first ? [first] : [];
  }

  // ---------------------------------------------------------------- local-only

  /**
   * Models a refresh that goes wrong (instances of the new image fail their health checks): the next refresh
   * started on the group ends as `status` instead of Successful.
   */
  failNextInstanceRefresh(asgName: string, status: InstanceRefreshStatus = 'Failed'): void {
    const state = this.read();
    this.requireGroup(state, asgName).nextRefreshEndsAs = status;
    this.write(state);
  }

  createLaunchTemplate(input: {
    name: string;
    imageId: string;
    instanceType?: string;
    tags?: Tags;
  }): LaunchTemplate {
    const state = this.read();
    if (state.launchTemplates.some((t) => t.launchTemplateName === input.name)) {
      throw new LocalServiceError(
        'InvalidLaunchTemplateName.AlreadyExistsException',
        `launch template ${input.name} already exists in ${this.accountId}/${this.region}`,
      );
    }
    const template: TemplateRecord = {
      launchTemplateId: `lt-${randomBytes(9).toString('hex').slice(0, 17)}`,
      launchTemplateName: input.name,
      tags: { ...input.tags },
      defaultVersionNumber: 1,
      versions: [
        {
          versionNumber: 1,
          imageId: input.imageId,
          ...(input.instanceType ? { instanceType: input.instanceType } : {}),
          createdAt: this.clock.now().toISOString(),
        },
      ],
    };
    state.launchTemplates.push(template);
    this.write(state);
    return toLaunchTemplate(template);
  }

  createAutoScalingGroup(input: {
    name: string;
    launchTemplateId?: string;
    launchTemplateVersion?: string;
    tags?: Tags;
  }): AutoScalingGroup {
    const state = this.read();
    if (state.autoScalingGroups.some((g) => g.name === input.name)) {
      throw new LocalServiceError(
        'AlreadyExists',
        `Auto Scaling group ${input.name} already exists in ${this.accountId}/${this.region}`,
      );
    }
    if (input.launchTemplateId) this.requireTemplate(state, input.launchTemplateId);
    const group: GroupRecord = { name: input.name, tags: { ...input.tags }, instanceRefreshes: [] };
    if (input.launchTemplateId) group.launchTemplateId = input.launchTemplateId;
    if (input.launchTemplateVersion) {
      if (!/^(\$Default|\$Latest|[1-9]\d*)$/.test(input.launchTemplateVersion)) {
        throw new LocalServiceError(
          'ValidationError',
          `launch template version ${JSON.stringify(input.launchTemplateVersion)} is not $Default, $Latest or a number`,
        );
      }
      group.launchTemplateVersion = input.launchTemplateVersion;
    }
    state.autoScalingGroups.push(group);
    this.write(state);
    return toGroup(group);
  }

  launchTemplateByName(name: string): LaunchTemplate | undefined {
    const template = this.read().launchTemplates.find((t) => t.launchTemplateName === name);
    return template && toLaunchTemplate(template);
  }

  autoScalingGroupByName(name: string): AutoScalingGroup | undefined {
    const group = this.read().autoScalingGroups.find((g) => g.name === name);
    return group && toGroup(group);
  }

  /** Every version of a launch template, oldest first (DescribeLaunchTemplateVersions). */
  launchTemplateVersions(launchTemplateId: string): LocalLaunchTemplateVersion[] {
    return this.requireTemplate(this.read(), launchTemplateId).versions.map((v) => ({ ...v }));
  }

  /** The default version's image: what new instances of the template boot. */
  defaultImageId(launchTemplateId: string): string | undefined {
    const template = this.requireTemplate(this.read(), launchTemplateId);
    return this.requireVersion(template, template.defaultVersionNumber).imageId;
  }

  getParameter(name: string): { value: string; version: number } | undefined {
    const p = this.read().parameters[name];
    return p && { value: p.value, version: p.version };
  }

  instanceRefreshes(asgName: string): InstanceRefresh[] {
    return this.requireGroup(this.read(), asgName).instanceRefreshes.map((r) => ({
      instanceRefreshId: r.instanceRefreshId,
      status: this.statusOf(r),
      startTime: r.startTime,
    }));
  }

  /** Adds a refresh pinned at `status` (it does not complete by itself), e.g. one "InProgress" for a test. */
  setInstanceRefresh(asgName: string, status: InstanceRefreshStatus): { instanceRefreshId: string } {
    const state = this.read();
    const group = this.requireGroup(state, asgName);
    const refresh: RefreshRecord = {
      instanceRefreshId: crypto.randomUUID(),
      status,
      startTime: this.clock.now().toISOString(),
      completesAt: null,
    };
    group.instanceRefreshes.push(refresh);
    this.write(state);
    return { instanceRefreshId: refresh.instanceRefreshId };
  }

  // ---------------------------------------------------------------- internals

  private statusOf(r: RefreshRecord): InstanceRefreshStatus {
    if (r.completesAt !== null && ACTIVE_REFRESH.includes(r.status)) {
      return this.clock.now().getTime() >= r.completesAt ? (r.endsAs ?? 'Successful') : 'InProgress';
    }
    return r.status;
  }

  private read(): AccountRegionState {
    return readJson<AccountRegionState>(this.path, {
      launchTemplates: [],
      autoScalingGroups: [],
      parameters: {},
      clientTokens: {},
    });
  }

  private write(state: AccountRegionState): void {
    writeJsonAtomic(this.path, state);
  }

  private requireTemplate(state: AccountRegionState, launchTemplateId: string): TemplateRecord {
    const template = state.launchTemplates.find((t) => t.launchTemplateId === launchTemplateId);
    if (!template) {
      throw new LocalServiceError(
        'InvalidLaunchTemplateId.NotFound',
        `launch template ${launchTemplateId} does not exist in ${this.accountId}/${this.region}`,
      );
    }
    return template;
  }

  private requireVersion(template: TemplateRecord, version: number): VersionRecord {
    const found = template.versions.find((v) => v.versionNumber === version);
    if (!found) {
      throw new LocalServiceError(
        'InvalidLaunchTemplateId.VersionNotFound',
        `launch template ${template.launchTemplateId} has no version ${version} in ${this.accountId}/${this.region}`,
      );
    }
    return found;
  }

  private requireGroup(state: AccountRegionState, name: string): GroupRecord {
    const group = state.autoScalingGroups.find((g) => g.name === name);
    if (!group) {
      throw new LocalServiceError(
        'ValidationError',
        `Auto Scaling group ${name} does not exist in ${this.accountId}/${this.region}`,
      );
    }
    return group;
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

/** A stable stand-in for the UUID in an Auto Scaling group's ARN. */
function groupUuid(accountId: string, region: string, name: string): string {
  const h = createHash('sha256').update(`${accountId}/${region}/${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

function toLaunchTemplate(t: TemplateRecord): LaunchTemplate {
  return {
    launchTemplateId: t.launchTemplateId,
    launchTemplateName: t.launchTemplateName,
    defaultVersionNumber: t.defaultVersionNumber,
    latestVersionNumber: Math.max(...t.versions.map((v) => v.versionNumber)),
    tags: { ...t.tags },
  };
}

function toVersion(v: VersionRecord): LaunchTemplateVersion {
  const version: LaunchTemplateVersion = { versionNumber: v.versionNumber };
  if (v.imageId !== undefined) version.imageId = v.imageId;
  if (v.instanceType !== undefined) version.instanceType = v.instanceType;
  if (v.versionDescription !== undefined) version.versionDescription = v.versionDescription;
  return version;
}

function toGroup(g: GroupRecord): AutoScalingGroup {
  const group: AutoScalingGroup = { name: g.name, tags: { ...g.tags } };
  if (g.launchTemplateId) {
    group.launchTemplateId = g.launchTemplateId;
    group.launchTemplateVersion = g.launchTemplateVersion ?? '$Default';
  }
  return group;
}
