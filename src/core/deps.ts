// What each core function needs, as plain objects of ports. The Lambda handlers (functions/commons/aws-deps.ts)
// and the local runtime build these the same way, so the core cannot tell where it runs.

import type { StemcellConfig } from '#config/schema.ts';
import type {
  Alarms,
  BakeTimer,
  BootChecker,
  BusRules,
  Clock,
  EventPublisher,
  FifoQueue,
  Images,
  MemberAccounts,
  ObjectStore,
  OrganizationDirectory,
  ReleaseStore,
  RolloutStore,
  Snapshots,
} from '#ports';

/** The slice of a logger the core uses; Powertools' Logger satisfies it. */
export interface Logger {
  debug(message: string, ...attributes: Record<string, unknown>[]): void;
  info(message: string, ...attributes: Record<string, unknown>[]): void;
  warn(message: string, ...attributes: Record<string, unknown>[]): void;
  error(message: string, ...attributes: Record<string, unknown>[]): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export const systemClock: Clock = { now: () => new Date() };

export interface BaseDeps {
  config: StemcellConfig;
  clock: Clock;
  logger: Logger;
}

/** EC2/EBS in one region: the images and snapshots register, announce and expire work on. */
export interface Imaging {
  images: Images;
  snapshots: Snapshots;
}

export interface IngestDeps extends BaseDeps {
  releases: ReleaseStore;
  events: EventPublisher;
  /** The FIFO build queue of a region (build-<region>.fifo). */
  buildQueue(region: string): FifoQueue;
  /** The tarball bucket, to read the SHA-256 the publisher recorded in the object's metadata; optional. */
  objects?: ObjectStore;
}

export interface RegisterDeps extends BaseDeps {
  releases: ReleaseStore;
  events: EventPublisher;
  imaging(region: string): Imaging;
}

export interface AnnounceDeps extends BaseDeps {
  releases: ReleaseStore;
  events: EventPublisher;
  imaging(region: string): Imaging;
  organization: OrganizationDirectory;
  /** The boot gate's queue (boot-checks.fifo); without it only streams with bootCheck.mode none announce. */
  bootChecks?: FifoQueue;
  /** The boot check of a stream that names none: qemu in local mode, a smoke instance on AWS. */
  defaultBootCheckMode?: 'qemu' | 'instance';
  /** Rollout waves, pins and their bake timer (src/core/rollout/rollout.ts); needed once a stream has `rollout`. */
  rollouts?: RolloutStore;
  timer?: BakeTimer;
  /** CloudWatch alarms of waves that name one. */
  alarms?: Alarms;
}

/** The boot-check worker: the announce step's ports plus the machines that boot images. */
export interface BootCheckDeps extends AnnounceDeps {
  bootChecker(region: string, mode: 'qemu' | 'instance'): BootChecker;
}

export interface BuildFailureDeps extends BaseDeps {
  releases: ReleaseStore;
  events: EventPublisher;
}

export interface SyncSubscribersDeps extends BaseDeps {
  organization: OrganizationDirectory;
  /** The rules of the central bus. */
  rules: BusRules;
  /** Name of the bus in each member account that the rules target; "default" when absent. */
  memberBusName?: string;
  /**
   * The account the central bus is in. Organizations lists it too, but it is never a target: its target would
   * be the central bus's own account, and with the member bus named like the central one, the bus itself.
   */
  ownAccountId?: string;
  /**
   * What the reconciler needs to bring accounts that joined the audience to the newest announced image of each
   * of their streams (late joiners, `deliverLatestTo`). Absent: joiners wait for the next release.
   */
  catchUp?: ReconcileDeps;
}

export interface ReconcileDeps extends AnnounceDeps {
  /** A region's build dead-letter queue: jobs whose attempts ran out. Absent: the DLQ step is skipped. */
  buildDeadLetters?(region: string): FifoQueue;
  /** Name of the bus in each member account; "default" when absent. */
  memberBusName?: string;
  /** The publisher's own account: never in an audience (as sync-subscribers never targets it). */
  ownAccountId?: string;
}

/** What a member account's subscriber does for one stream beyond moving its launch templates. */
export interface SubscriberSettings {
  /** SSM parameter to write with the new image id; {stream} and {region} expand. */
  ssmParameter?: string;
  instanceRefresh: boolean;
}

/**
 * The subscriber runs in a member account and does not see the stream configuration: its settings come from
 * its own deployment (member.yml parameters on AWS, the shared config in local mode).
 */
export interface SubscriberDeps {
  accountId: string;
  members: MemberAccounts;
  /** Where "Launch Template Updated" goes back to: the central bus's ARN (or name in local mode). */
  centralBus: string;
  events: EventPublisher;
  settings(stream: string): SubscriberSettings;
  clock: Clock;
  logger: Logger;
}

export interface ExpireDeps extends BaseDeps {
  imaging(region: string): Imaging;
  organization: OrganizationDirectory;
  /** Every account in a stream's subscriber scope is asked which image its launch templates use. */
  members: MemberAccounts;
  /** Images to keep whatever their age: the pinned revision's and those rollbacks point at (imageId → why). */
  protectedImages?(stream: string, region: string): Promise<Map<string, string>>;
}

/** sweep-smoke-instances: each region's smoke instances that no live boot check can own are terminated. */
export interface SweepDeps {
  config: StemcellConfig;
  sweeper(region: string): { sweep(olderThanSeconds: number): Promise<string[]> };
}

/** Subscriber settings straight from the stream configuration (local mode, tests). */
export function subscriberSettingsFromConfig(config: StemcellConfig): (stream: string) => SubscriberSettings {
  return (stream) => {
    const subscribers = config.streams[stream]?.subscribers;
    if (!subscribers) return { instanceRefresh: false };
    return {
      instanceRefresh: subscribers.instanceRefresh,
      ...(subscribers.ssmParameter ? { ssmParameter: subscribers.ssmParameter } : {}),
    };
  };
}
