// The ports: every AWS service the flow touches, as an interface. Core logic and handlers see only these;
// src/local/ and src/aws/ hold the adapters, and both pass the same contract suite (test/contract/).
import type { Readable } from 'node:stream';
import type { Architecture, BootMode } from '#core/model/types.ts';
import type { ImageReady } from '#events/stemcell.ts';

export type Tags = Record<string, string>;

// ---------------------------------------------------------------- object store (S3)
export interface StoredObject {
  bucket: string;
  key: string;
  etag: string;
  size: number;
  versionId?: string;
  metadata: Record<string, string>;
}
export interface ObjectStore {
  readonly bucket: string;
  /** Stores the object; on a bucket with notifications this emits S3 "Object Created" on the bus. */
  put(key: string, body: Readable | Buffer, metadata?: Record<string, string>): Promise<StoredObject>;
  head(key: string): Promise<StoredObject | undefined>;
  /**
   * Streams the body; fails if the object's etag is no longer `ifMatch`. With `versionId`, that version of the
   * object (a versioned bucket keeps what a later upload replaced).
   */
  get(key: string, ifMatch?: string, versionId?: string): Promise<{ object: StoredObject; body: Readable }>;
}

// ---------------------------------------------------------------- FIFO queue (SQS)
export interface QueueMessage {
  messageId: string;
  body: string;
  receiptHandle: string;
  /** ApproximateReceiveCount: 1 on first delivery. */
  receiveCount: number;
  groupId: string;
}
export interface FifoQueue {
  readonly name: string;
  send(body: string, groupId: string, deduplicationId: string): Promise<{ messageId: string }>;
  /**
   * Long-polls up to waitSeconds. Per group, in order; a group is blocked while any of its messages is in
   * flight. Like SQS FIFO, one batch may hold several messages of the same group (receive max: 1 to avoid it).
   */
  receive(opts: {
    max: number;
    visibilityTimeoutSeconds: number;
    waitSeconds?: number;
  }): Promise<QueueMessage[]>;
  delete(receiptHandle: string): Promise<void>;
  changeVisibility(receiptHandle: string, visibilityTimeoutSeconds: number): Promise<void>;
}

// ---------------------------------------------------------------- event bus (EventBridge)
export interface BusEvent {
  source: string;
  detailType: string;
  detail: unknown;
  resources?: string[];
  /** Target bus name or ARN; the publisher's default bus when absent. */
  eventBusName?: string;
}
export interface EventPublisher {
  /** PutEvents; resends only the failed entries, throws if some still fail. */
  publish(events: BusEvent[]): Promise<void>;
}
export interface RuleTarget {
  id: string;
  /** Event bus ARN of a member account (cross-account target). */
  arn: string;
}
export interface BusRule {
  name: string;
  eventPattern: string;
  targets: RuleTarget[];
}
/** Rules on the central bus, as sync-subscribers reconciles them. AWS allows at most 5 targets per rule. */
export interface BusRules {
  readonly maxTargetsPerRule: number;
  listRules(namePrefix: string): Promise<BusRule[]>;
  putRule(name: string, eventPattern: string, description: string): Promise<void>;
  putTargets(ruleName: string, targets: RuleTarget[]): Promise<void>;
  removeTargets(ruleName: string, targetIds: string[]): Promise<void>;
  deleteRule(ruleName: string): Promise<void>;
}

// ---------------------------------------------------------------- key service (KMS)
export interface DataKey {
  plaintext: Buffer;
  ciphertext: Buffer;
}
export interface KeyService {
  generateDataKey(keyId: string, context: Record<string, string>): Promise<DataKey>;
  /** Decrypts a wrapped data key as `callerAccountId`; refused without key ownership or a grant. */
  decrypt(ciphertext: Buffer, context: Record<string, string>, callerAccountId: string): Promise<Buffer>;
  createGrant(keyId: string, granteePrincipal: string, operations: string[]): Promise<{ grantId: string }>;
  describeKey(keyId: string): Promise<{ keyId: string; arn: string; accountId: string }>;
}

// ---------------------------------------------------------------- organization (Organizations)
export interface OrgAccount {
  id: string;
  name: string;
  status: 'ACTIVE' | 'SUSPENDED' | 'PENDING_CLOSURE';
}
export interface OrganizationDirectory {
  describe(): Promise<{ id: string; arn: string; managementAccountId: string }>;
  listAccounts(): Promise<OrgAccount[]>;
  /** Accounts under an OU, including nested OUs. */
  listAccountsInOu(ouId: string): Promise<OrgAccount[]>;
  ouArn(ouId: string): Promise<string>;
}

// ---------------------------------------------------------------- volumes, snapshots, images (EBS / EC2)
export interface VolumeInfo {
  volumeId: string;
  stream: string;
  availabilityZone: string;
  sizeGiB: number;
  state: 'creating' | 'available' | 'in-use' | 'deleting';
  attachedTo?: string;
  kmsKeyId: string;
  tags: Tags;
}
/** Where an attached volume can be reached on the builder: a block device, or a plain directory fallback. */
export type Attachment = { kind: 'block'; devicePath: string } | { kind: 'directory'; path: string };
export interface Volumes {
  findForStream(stream: string, availabilityZone: string): Promise<VolumeInfo | undefined>;
  create(input: {
    stream: string;
    availabilityZone: string;
    sizeGiB: number;
    kmsKeyId: string;
    tags: Tags;
    clientToken: string;
  }): Promise<VolumeInfo>;
  attach(volumeId: string, instanceId: string): Promise<Attachment>;
  detach(volumeId: string, instanceId: string): Promise<void>;
  grow(volumeId: string, sizeGiB: number): Promise<void>;
}
export interface SnapshotInfo {
  snapshotId: string;
  volumeId: string;
  state: 'pending' | 'completed' | 'error';
  tags: Tags;
  /** Bytes new to this snapshot (the incremental size); absent where the service does not tell. */
  deltaBytes?: number;
  /** Upper bound: bytes the device saw written since the parent (local block-layer statistics). */
  writtenBytes?: number;
  kmsKeyId: string;
}
export interface Snapshots {
  /** Snapshot of a quiesced volume; the service emits "EBS Snapshot Notification" when it completes. */
  create(
    volumeId: string,
    input: { description: string; tags: Tags; clientToken: string },
  ): Promise<SnapshotInfo>;
  get(snapshotId: string): Promise<SnapshotInfo | undefined>;
  delete(snapshotId: string): Promise<void>;
}
export interface RegisterImageInput {
  name: string;
  description: string;
  snapshotId: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'> | 'none';
  rootDeviceName: string;
  tags: Tags;
  clientToken: string;
}
export interface ImageInfo {
  imageId: string;
  name: string;
  state: 'pending' | 'available' | 'failed' | 'deregistered';
  snapshotId: string;
  architecture: Architecture;
  bootMode: BootMode;
  encrypted: boolean;
  kmsKeyId: string;
  tags: Tags;
  createdAt: string;
  deprecatedAt?: string;
  sharedWith: { organizationArns: string[]; ouArns: string[]; accountIds: string[] };
}
export interface Images {
  /** Idempotent by name: a second call with the same name returns the existing image (created=false). */
  register(input: RegisterImageInput): Promise<{ imageId: string; created: boolean }>;
  get(imageId: string): Promise<ImageInfo | undefined>;
  findByName(name: string): Promise<ImageInfo | undefined>;
  listByTag(key: string, value: string): Promise<ImageInfo[]>;
  share(imageId: string, to: { organizationArns: string[]; ouArns: string[] }): Promise<void>;
  deprecate(imageId: string, at: Date): Promise<void>;
  /** Adds or overwrites tags on the image (CreateTags), e.g. why its boot check failed. */
  tag(imageId: string, tags: Tags): Promise<void>;
  /** Deregisters the image; its snapshot stays until Snapshots.delete. */
  deregister(imageId: string): Promise<void>;
}

// ---------------------------------------------------------------- release table (DynamoDB)
export type RegionState =
  | 'queued'
  | 'building'
  | 'snapshotting'
  | 'registering'
  | 'available'
  /** The image is available and being booted (the boot gate) before it may be announced. */
  | 'booting'
  | 'announced'
  | 'failed';
/** The boot gate's record in a region: what was booted, how, and where its console log is kept. */
export interface BootCheckRecord {
  mode: 'qemu' | 'instance';
  marker: string;
  timeoutSeconds: number;
  /** When the gate asked for the boot. */
  requestedAt: string;
  /** When the checker started booting (qemu spawned / instance launched). */
  startedAt?: string;
  /** Set once decided. */
  passed?: boolean;
  /** Boot start → marker seen (or → failure). */
  seconds?: number;
  /** Where the serial console was kept: a file path locally, an s3:// URL on AWS. */
  consoleLog?: string;
  reason?: string;
}
export interface RegionRecord {
  state: RegionState;
  updatedAt: string;
  attempts?: number;
  snapshotId?: string;
  imageId?: string;
  deltaBytes?: number;
  writtenBytes?: number;
  applyMs?: number;
  reason?: string;
  bootCheck?: BootCheckRecord;
}
export interface AccountRecord {
  accountId: string;
  region: string;
  outcome: 'updated' | 'already-current' | 'skipped-older';
  launchTemplates: number;
  updatedAt: string;
  /** The worst instance-refresh outcome reported (see "Launch Template Updated"); absent in older records. */
  instanceRefresh?: string;
}
export interface SourceRef {
  bucket: string;
  key: string;
  etag: string;
  versionId?: string;
  sha256?: string;
}
export interface Release {
  releaseId: string;
  stream: string;
  revision: string;
  sequence: number;
  source: SourceRef;
  createdAt: string;
  /** Wall-clock ms when the tarball upload was seen (for end-to-end figures). */
  uploadedAt: string;
  regions: Record<string, RegionRecord>;
  /** keyed by `${accountId}/${region}` */
  accounts: Record<string, AccountRecord>;
  completedAt?: string;
  /** Uploads that tried to replace this revision with other content, refused (the bucket kept the original). */
  rejections?: Rejection[];
}
export interface Rejection {
  source: SourceRef;
  reason: string;
  rejectedAt: string;
}
export interface ReleaseStore {
  /**
   * Creates the release for a source object, assigning the stream's next sequence atomically.
   * Idempotent on (stream, revision): a second call returns the existing release with created=false.
   */
  create(input: {
    stream: string;
    revision: string;
    source: SourceRef;
    regions: string[];
    uploadedAt: string;
  }): Promise<{ release: Release; created: boolean }>;
  get(releaseId: string): Promise<Release | undefined>;
  list(stream?: string): Promise<Release[]>;
  /** Merges the patch into the region record; `onlyIf` guards state transitions (returns false if not met). */
  updateRegion(
    releaseId: string,
    region: string,
    patch: Partial<RegionRecord>,
    onlyIf?: { stateIn: RegionState[] },
  ): Promise<boolean>;
  recordAccount(releaseId: string, record: AccountRecord): Promise<void>;
  markComplete(releaseId: string, completedAt: string): Promise<boolean>;
  /** Appends a refused upload; false (and nothing recorded) when one with the same etag is already there. */
  recordRejection(releaseId: string, rejection: Rejection): Promise<boolean>;
}

// ---------------------------------------------------------------- member accounts (EC2 launch templates, ASG, SSM)
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

// ---------------------------------------------------------------- boot check (qemu locally, a smoke instance on EC2)
export interface BootCheckRequest {
  /** Deterministic per release and region: a retried start finds the check already running. */
  checkId: string;
  region: string;
  imageId: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'>;
  marker: string;
  timeoutSeconds: number;
  /** Release tags, put on whatever the check creates (the smoke instance). */
  tags: Tags;
}
/**
 * What a checker sees of a boot; the core decides on timeouts, so the same rules hold in both worlds.
 * - `waiting`: not booting yet (a free qemu slot, an instance still pending);
 * - `booting`: since `startedAt`, the marker not seen yet;
 * - `marker-seen`: success, `seconds` after the boot started;
 * - `stopped`: the machine is gone without the marker (qemu exited, kernel panic, instance stopped, a
 *   status check failed, or the checker does not know the check).
 */
export type BootObservation =
  | { state: 'waiting' }
  | { state: 'booting'; startedAt: string; lastLines: string[] }
  | { state: 'marker-seen'; startedAt: string; seconds: number; consoleLog: string }
  | { state: 'stopped'; startedAt?: string; reason: string; lastLines: string[]; consoleLog?: string };
export interface BootChecker {
  readonly mode: 'qemu' | 'instance';
  /** Starts booting the image (idempotent on checkId). */
  start(request: BootCheckRequest): Promise<void>;
  /** Looks at the boot, once; never waits for it. */
  observe(request: BootCheckRequest): Promise<BootObservation>;
  /** Stops the machine and keeps its console log; idempotent. Returns where the log is. */
  stop(request: BootCheckRequest): Promise<{ consoleLog?: string; lastLines: string[] }>;
}

// ---------------------------------------------------------------- rollout state (DynamoDB, the release table)
export type WaveState = 'pending' | 'announcing' | 'baking' | 'healthy' | 'halted' | 'aborted';
export interface WaveRecord {
  name: string;
  /** Accounts of the wave, resolved from OUs and account ids when the release first announced. */
  accounts: string[];
  bakeMinutes: number;
  alarmArn?: string;
  state: WaveState;
  /** Per region: when this wave was sent that region's "Image Ready". */
  announcedAt: Record<string, string>;
  /** When the bake timer fires (set once the wave has every region). */
  bakeUntil?: string;
  finishedAt?: string;
  /** Set when an operator resumed the release past this (halted) wave. */
  resumedAt?: string;
}
export interface HaltRecord {
  wave: string;
  reason: string;
  accounts: { accountId: string; region: string }[];
  at: string;
}
export interface RolloutRecord {
  releaseId: string;
  stream: string;
  state: 'rolling' | 'halted' | 'aborted' | 'complete';
  waves: WaveRecord[];
  halted?: HaltRecord;
  /** Halts an operator resumed past, oldest first. */
  resumed?: HaltRecord[];
  /** Set on a rollback release: the earlier revision whose images it points at (it has no waves). */
  rollbackOf?: string;
  /** Each region's "Image Ready" detail (without audience) as first announced: later waves get the same. */
  images: Record<string, ImageReady>;
  /** Bumped by every write; put() succeeds only against the version that was read. */
  version: number;
}
export interface StreamPin {
  stream: string;
  revision: string;
  pinnedAt: string;
}
export interface RolloutStore {
  get(releaseId: string): Promise<RolloutRecord | undefined>;
  /** Writes `record` (with version expectedVersion + 1) if the stored one has expectedVersion (0: none). */
  put(record: RolloutRecord, expectedVersion: number): Promise<boolean>;
  getPin(stream: string): Promise<StreamPin | undefined>;
  /** Pins the stream, or unpins it with undefined. */
  setPin(stream: string, pin: StreamPin | undefined): Promise<void>;
}

/** What a bake timer delivers to announce when it fires (EventBridge Scheduler's target input). */
export interface RolloutTimerInput {
  kind: 'stemcell-rollout-timer';
  releaseId: string;
  /** Index of the wave whose bake time is over. */
  wave: number;
  /** Set on a re-check of a wave whose instance refreshes were still running: how many waits so far. */
  wait?: number;
}
/** One-time timers: EventBridge Scheduler `at()` schedules on AWS, the local clock locally. */
export interface BakeTimer {
  /** Idempotent by name: scheduling the same name again keeps the first. */
  schedule(name: string, at: Date, input: RolloutTimerInput): Promise<void>;
}

/** CloudWatch alarm states, for a wave's optional alarm. */
export interface Alarms {
  state(alarmArn: string): Promise<'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined>;
}

// ---------------------------------------------------------------- launch model (EC2 RunInstances)
export interface LaunchRequest {
  accountId: string;
  region: string;
  imageId: string;
  instanceType: string;
  /**
   * Who launches: `auto-scaling` is the account's Auto Scaling service-linked role (an Auto Scaling group
   * uses the launch template); `account` is a principal of the account calling RunInstances itself.
   */
  via: 'auto-scaling' | 'account';
}
export type LaunchVerdict = { launchable: true } | { launchable: false; reason: string };
/** Could this account launch an instance from this image, by EC2's rules? Launches nothing. */
export interface LaunchModel {
  check(request: LaunchRequest): Promise<LaunchVerdict>;
}

// ---------------------------------------------------------------- clock
export interface Clock {
  now(): Date;
}
