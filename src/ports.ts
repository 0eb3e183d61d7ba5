// The ports: every AWS service the flow touches, as an interface. Core logic and handlers see only these;
// src/local/ and src/aws/ hold the adapters, and both pass the same contract suite (test/contract/).
import type { Readable } from 'node:stream';
import type { Architecture, BootMode } from '#core/model/types.ts';

export type Tags = Record<string, string>;

// ---------------------------------------------------------------- object store (S3)
export interface StoredObject {
  bucket: string;
  key: string;
  etag: string;
  size: number;
  versionId?: string;
  metadata: Record<string, string>;
  /** SHA-256 the store computed over the whole object on upload (S3's full-object checksum, hex), if it has one. */
  checksumSha256?: string;
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
/**
 * The fan-out buses of the home account: the subscriber rules live on them, never on the central bus, so that
 * 10,000 accounts fit AWS's rules-per-bus quota (300, or 100 in some Regions). announce puts each subscriber
 * event on every one of them (PutEvents, one hop: EventBridge forwards an event from a bus to a bus only once).
 */
export interface FanoutBuses {
  /** Rules one bus may hold (the Region's default quota). */
  readonly maxRulesPerBus: number;
  /** Names of the fan-out buses, in order (ListEventBuses by their name prefix). */
  list(): Promise<string[]>;
  /** Name of the n-th fan-out bus (n from 1). */
  nameOf(n: number): string;
  /** Creates the bus; creating one that exists succeeds. */
  create(name: string): Promise<void>;
  /** The rules of one fan-out bus. */
  rules(busName: string): BusRules;
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
  describeKey(keyId: string): Promise<KeyDescription>;
  /** ListGrants (every page), optionally for one grantee principal. */
  listGrants(
    keyId: string,
    granteePrincipal?: string,
  ): Promise<{ grantId: string; granteePrincipal: string; operations: string[] }[]>;
}

export type { PublicKeyInfo, SigningKeys } from '#core/model/signing-keys.ts';

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
  /** Size of the disk the snapshot holds. */
  volumeSizeGiB?: number;
}
/** StartSnapshot (EBS direct APIs): a snapshot written block by block, incremental on its parent. */
export interface StartSnapshotInput {
  /** Size of the disk the snapshot holds, in GiB (at least the parent's). */
  volumeSizeGiB: number;
  /** The stream's previous snapshot in the region; the new one takes the parent's encryption and key. */
  parentSnapshotId?: string;
  /** Without a parent: the customer key that encrypts the snapshot (StartSnapshot Encrypted + KmsKeyArn). */
  kmsKeyId?: string;
  description: string;
  /** Set at creation (StartSnapshot Tags), never in a second call. */
  tags: Tags;
  /** Idempotency: a retry with the same token returns the snapshot the first call started. */
  clientToken: string;
  /** Minutes after which EBS cancels a snapshot that receives no block or is never completed. */
  timeoutMinutes: number;
}
export interface StartedSnapshot {
  snapshotId: string;
  /** Bytes per block (EBS: 512 KiB). */
  blockSize: number;
  /** The key that encrypts the snapshot, when the service says. */
  kmsKeyArn?: string;
}
/** A block of a completed snapshot that holds data (ListSnapshotBlocks); the token reads it. */
export interface SnapshotBlockRef {
  index: number;
  token: string;
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
/**
 * What the builder needs of snapshots: the above, and the EBS direct APIs that write a snapshot block by block.
 * No "EBS Snapshot Notification" follows a direct-API snapshot: the builder hands it to register itself.
 */
export interface BlockSnapshots extends Snapshots {
  /** The snapshots that carry every one of these tags, in any state (DescribeSnapshots, own snapshots). */
  findByTags(tags: Tags): Promise<SnapshotInfo[]>;
  start(input: StartSnapshotInput): Promise<StartedSnapshot>;
  /** PutSnapshotBlock: one whole block at `index`, with the base64 SHA-256 of `data`. */
  putBlock(snapshotId: string, index: number, data: Buffer, checksum: string): Promise<void>;
  /**
   * CompleteSnapshot: seals the snapshot. `changedBlocksCount` is the number of blocks put; `checksum` the
   * base64 SHA-256 of their checksums concatenated in block order (LINEAR aggregation). Returns the state
   * the service reports: sealing may still be under way (`pending`).
   */
  complete(
    snapshotId: string,
    input: { changedBlocksCount: number; checksum: string },
  ): Promise<SnapshotInfo['state']>;
  /** ListSnapshotBlocks: the blocks of a completed snapshot that hold data, in block order. */
  listBlocks(snapshotId: string): AsyncIterable<SnapshotBlockRef>;
  /** GetSnapshotBlock: a block's data and its base64 SHA-256. */
  getBlock(snapshotId: string, block: SnapshotBlockRef): Promise<{ data: Buffer; checksum: string }>;
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
  /**
   * The best outcome reported; `refused` only when every report of the account and region was a refusal;
   * nothing-to-move: the account has no launch template of the stream there; it answered, and is done.
   */
  outcome: 'updated' | 'already-current' | 'skipped-older' | 'nothing-to-move' | 'refused';
  launchTemplates: number;
  updatedAt: string;
  /** The worst instance-refresh outcome reported (see "Launch Template Updated"); absent in older records. */
  instanceRefresh?: string;
  /** Launch templates the account refused to move, and why; a later report that moved one clears it. */
  refused?: LaunchRefusalRecord[];
}
export interface LaunchRefusalRecord {
  launchTemplateId: string;
  launchTemplateName: string;
  check: string;
  reason: string;
  at: string;
}
export interface SourceRef {
  bucket: string;
  key: string;
  etag: string;
  versionId?: string;
  sha256?: string;
  /** The trusted key whose signature over sha256 ingest verified (absent: unsigned), and that signature (base64 DER). */
  signer?: string;
  signature?: string;
  /** The signer's public key (base64 DER SPKI): the builder verifies the signature again over what it streams. */
  signerPublicKey?: string;
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
  /** Set on a rollback release, in its first write: what it announces, so a restart can finish it. */
  rollback?: RollbackIntent;
}
/**
 * What a rollback release is to do, persisted with its record before anything is announced: the reconciler
 * finishes it from here (src/core/rollout/rollback.ts), never from the images' tags, which name the earlier
 * release.
 */
export interface RollbackIntent {
  /** The earlier revision whose images it points at. */
  of: string;
  /** Regions announced with the earlier image: its id and snapshot, and the boot check it passed then. */
  images: Record<string, { imageId: string; snapshotId: string; bootCheck?: BootCheckRecord }>;
  /** Regions whose earlier image is gone, rebuilt from the earlier revision's tarball: region → why. */
  rebuild: Record<string, string>;
}
export interface Rejection {
  source: SourceRef;
  reason: string;
  rejectedAt: string;
}
export interface CreateReleaseInput {
  stream: string;
  revision: string;
  source: SourceRef;
  regions: string[];
  uploadedAt: string;
  rollback?: RollbackIntent;
}
export interface ReleaseStore {
  /**
   * Creates the release for a source object: the stream's next sequence, the record and the revision's claim in
   * one atomic step, so a sequence is never given twice and no record is ever overwritten, whatever crashes.
   * Idempotent on (stream, revision): a second call returns the existing release with created=false.
   */
  create(input: CreateReleaseInput): Promise<{ release: Release; created: boolean }>;
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

// ---------------------------------------------------------------- boot check (qemu locally, a smoke instance on EC2)
export type { BootChecker, BootCheckRequest, BootObservation } from '#core/model/boot-check.ts';
// ---------------------------------------------------------------- member accounts (EC2 launch templates, ASG, SSM)
export type {
  AutoScalingGroup,
  InstanceRefreshStatus,
  LaunchTemplate,
  LaunchTemplateVersion,
  MemberAccount,
  MemberAccounts,
} from '#core/model/member-ports.ts';

// ---------------------------------------------------------------- rollout state (DynamoDB, the release table)
export type {
  Alarms,
  BakeTimer,
  HaltRecord,
  RolloutRecord,
  RolloutStore,
  RolloutTimerInput,
  StreamPin,
  WaveRecord,
  WaveState,
} from '#core/model/rollout-ports.ts';

// ---------------------------------------------------------------- launch view (EC2 and KMS, as the launching account)
/** An image as DescribeImages shows it to the account that asks. */
export interface VisibleImage {
  imageId: string;
  name: string;
  /** The account that owns (published) the image. */
  ownerId: string;
  state: ImageInfo['state'];
  architecture: Architecture;
  /** `none`: the image names no boot mode (or prefers UEFI): it boots in the instance type's default. */
  bootMode: BootMode;
  encrypted: boolean;
  /** The root snapshot's key, where DescribeImages shows it. */
  kmsKeyId?: string;
  createdAt: string;
  deprecatedAt?: string;
  /** EC2's own Allowed AMIs verdict for the account (DescribeImages ImageAllowed), where it gives one. */
  allowed?: boolean;
}
/** A KMS key as DescribeKey shows it to the account that asks. */
export interface KeyDescription {
  keyId: string;
  arn: string;
  /** The account that owns the key. */
  accountId: string;
  /** KMS KeyState: Enabled, Disabled, PendingDeletion, PendingImport, Unavailable, … */
  state: string;
}
/** One criterion of the Allowed AMIs setting: an image matches when every field set here matches. */
export interface ImageCriterion {
  /** amazon, aws-marketplace, aws-backup-vault, none (the account's own only) or 12-digit account ids. */
  imageProviders?: string[];
  /** Image names, with `*` and `?` wildcards. */
  imageNames?: string[];
  marketplaceProductCodes?: string[];
  maximumDaysSinceCreated?: number;
  maximumDaysSinceDeprecated?: number;
  /** Conditions only EC2 can judge (watermarks, Inspector scan results), by name: EC2's verdict decides. */
  opaque?: string[];
}
/** GetAllowedImagesSettings: `enabled` restricts which images the account can see and launch. */
export interface AllowedImagesSettings {
  state: 'disabled' | 'enabled' | 'audit-mode';
  criteria: ImageCriterion[];
  managedBy?: string;
}
/** What an instance type runs (DescribeInstanceTypes). */
export interface InstanceTypeInfo {
  architectures: Architecture[];
  bootModes: Exclude<BootMode, 'none'>[];
}
/** RunInstances with DryRun: the image, with the instance type the launch template gives it. */
export interface DryRunInput {
  imageId: string;
  instanceType: string;
  /**
   * Who launches: `auto-scaling` is the account's Auto Scaling service-linked role (an Auto Scaling group uses
   * the launch template); `account` is a principal of the account calling RunInstances itself.
   */
  via: 'auto-scaling' | 'account';
}
/**
 * EC2's answer to a dry run: allowed (DryRunOperation), or refused with EC2's code and message. `note`: why an
 * answer other than DryRunOperation still counts (no network to place the instance: not about the image).
 */
export type DryRunVerdict =
  | { allowed: true; note?: string }
  | { allowed: false; code: string; message: string };
/** A question the account was not allowed (or able) to ask, with the service's own words. */
export interface Denied {
  denied: string;
}
/**
 * What one account finds out, asking as itself, for the launch check (src/core/images/launchable.ts). Throws
 * only what is worth retrying (throttling, service faults); refusals are answers.
 */
export interface LaunchView {
  readonly accountId: string;
  readonly region: string;
  /** DescribeImages: undefined when the account cannot see the image (not shared with it, gone, hidden). */
  describeImage(imageId: string): Promise<VisibleImage | undefined>;
  /** DescribeKey on the image's key. */
  describeKey(keyId: string): Promise<KeyDescription | Denied>;
  /** ListGrants on the key for one grantee principal: the operations its grants allow together. */
  grantedOperations(keyArn: string, granteePrincipal: string): Promise<string[] | Denied>;
  /** GetAllowedImagesSettings of the account in the region. */
  allowedImages(): Promise<AllowedImagesSettings>;
  /** DescribeInstanceTypes: undefined for an instance type the region does not offer (or the model does not know). */
  describeInstanceType(instanceType: string): Promise<InstanceTypeInfo | undefined>;
  dryRun(input: DryRunInput): Promise<DryRunVerdict>;
}
/** Each account's launch view: on AWS its own credentials, locally the local model of EC2's and KMS's rules. */
export interface LaunchModel {
  forAccount(accountId: string, region: string): LaunchView;
}

// ---------------------------------------------------------------- clock
export interface Clock {
  now(): Date;
}

/** What the builder asks of Auto Scaling, CloudWatch and SQS for its own instance (src/aws adapters on EC2). */
export interface FleetControl {
  /** SetInstanceProtection (ProtectedFromScaleIn) on this instance. */
  protect(on: boolean): Promise<void>;
  /** RecordLifecycleActionHeartbeat: the hook waits longer while a job is finished. */
  heartbeat(): Promise<void>;
  /** CompleteLifecycleAction CONTINUE: the instance may go. */
  complete(): Promise<void>;
  /** ChangeMessageVisibility 0: the job is visible again at once, for another builder. */
  handBack(receiptHandle: string): Promise<void>;
  /** ApproximateNumberOfMessagesVisible of the build queue, and the group's InService builders. */
  backlog(): Promise<{ visible: number; inService: number }>;
  /** PutMetricData stemcell/Builders BacklogPerBuilder. */
  publishBacklogPerBuilder(value: number): Promise<void>;
}
