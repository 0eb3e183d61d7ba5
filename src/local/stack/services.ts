// The emulated AWS services of one data folder: S3, DynamoDB, EventBridge buses and Scheduler, SQS, KMS,
// Organizations, member accounts, and EBS/EC2 per region. Nothing here runs on its own; the templates' wiring
// (serverless.ts, region.ts, member.ts) connects them, and the Lambda runtime (lambda.ts) drives them.
import { join } from 'node:path';
import type { StemcellConfig } from '#config/schema.ts';
import type { Clock } from '#ports';
import { LocalQemuBootChecker } from '../boot-checker.ts';
import { createLocalEbs } from '../ebs.ts';
import { EventBusRegistry, LocalEventBus } from '../event-bus.ts';
import { LocalFifoQueue } from '../fifo-queue.ts';
import type { LocalImages } from '../images.ts';
import { LocalKeyService } from '../key-service.ts';
import { LocalLaunchModel } from '../launch-model.ts';
import { LocalMemberAccounts } from '../member-accounts.ts';
import { LocalObjectStore } from '../object-store.ts';
import { LocalOrganizationDirectory } from '../organization.ts';
import { LocalReleaseStore } from '../release-store.ts';
import { LocalRolloutStore } from '../rollout-store.ts';
import { LocalAlarms, LocalScheduler } from '../scheduler.ts';
import type { LocalSnapshots } from '../snapshots.ts';
import { ebsStateDir, type LocalVolumes } from '../volumes.ts';

/** One build region: its default bus, build queue and DLQ (infra/region.yml), and its EBS and EC2. */
export interface LocalRegion {
  region: string;
  availabilityZone: string;
  bus: LocalEventBus;
  buildQueue: LocalFifoQueue;
  buildDlq: LocalFifoQueue;
  volumes: LocalVolumes;
  snapshots: LocalSnapshots;
  images: LocalImages;
}

export interface LocalServicesOptions {
  dataDir: string;
  config: StemcellConfig;
  clock: Clock;
  log: (line: string) => void;
  volumeBackend?: 'auto' | 'block' | 'directory';
  /** Build attempts before a job goes to the region's DLQ (SQS maxReceiveCount). */
  maxReceiveCount: number;
  /** How long member accounts' instance refreshes run (clock time). */
  instanceRefreshSeconds: number;
  /** The bus Auto Scaling's events of a member account reach (member.ts creates it on first use). */
  memberBus(accountId: string): LocalEventBus;
}

export class LocalServices {
  readonly config: StemcellConfig;
  readonly dataDir: string;
  readonly managementAccountId: string;
  readonly homeRegion: string;
  readonly registry = new EventBusRegistry();
  /** The management account's default bus in the home region: S3's and (forwarded) every region's EC2 events. */
  readonly homeBus: LocalEventBus;
  readonly objects: LocalObjectStore;
  readonly releases: LocalReleaseStore;
  /** Rollout waves and pins (src/core/rollout/rollout.ts), their bake timers, and the waves' alarms. */
  readonly rollouts: LocalRolloutStore;
  readonly scheduler: LocalScheduler;
  readonly alarms: LocalAlarms;
  readonly keys: LocalKeyService;
  readonly organization: LocalOrganizationDirectory;
  readonly members: LocalMemberAccounts;
  readonly centralBus: LocalEventBus;
  readonly registerQueue: LocalFifoQueue;
  /** The boot gate's queue and machines (qemu): see src/core/release/boot-gate.ts. */
  readonly bootCheckQueue: LocalFifoQueue;
  readonly bootChecker: LocalQemuBootChecker;
  /** Whether an account could launch an image, by EC2's rules (the demo's verdict). */
  readonly launch: LocalLaunchModel;
  readonly regions = new Map<string, LocalRegion>();
  readonly clock: Clock;

  constructor(options: LocalServicesOptions) {
    const { config, dataDir, log } = options;
    if (!config.local)
      throw new Error('local mode needs a `local:` section (accounts, OUs) in the configuration');
    this.config = config;
    this.dataDir = dataDir;
    this.managementAccountId = config.local.managementAccountId;
    this.homeRegion = config.homeRegion;
    const clock = options.clock;
    this.clock = clock;
    const account = this.managementAccountId;
    const home = this.homeRegion;

    this.homeBus = this.bus(account, home, 'default');
    this.centralBus = this.bus(account, home, config.busName);
    this.objects = new LocalObjectStore(join(dataDir, 'objects'), {
      bucket: config.bucket,
      accountId: account,
      region: home,
      sink: this.homeBus,
      clock,
    });
    this.releases = new LocalReleaseStore(join(dataDir, 'releases'), { clock });
    this.rollouts = new LocalRolloutStore(dataDir);
    this.scheduler = new LocalScheduler(dataDir, { clock });
    this.alarms = new LocalAlarms(dataDir);
    this.keys = new LocalKeyService(join(dataDir, 'kms'), {
      accountId: account,
      region: home,
      clock,
      // aws:PrincipalOrgID of a caller: the organization's id for its members.
      organizationOf: (id) =>
        this.organization.parentOf(id) === undefined ? undefined : this.organization.organizationId,
    });
    this.organization = new LocalOrganizationDirectory(join(dataDir, 'organizations'), config.local);
    this.members = new LocalMemberAccounts(join(dataDir, 'accounts'), {
      clock,
      instanceRefreshSeconds: options.instanceRefreshSeconds,
      // Auto Scaling's events reach the account's bus (on AWS: each region's default bus, forwarded home).
      autoScalingEvents: (accountId) => options.memberBus(accountId),
    });
    const queueDir = join(dataDir, 'queues');
    this.registerQueue = new LocalFifoQueue(queueDir, 'register.fifo', {
      accountId: account,
      region: home,
      clock,
      deadLetterQueue: new LocalFifoQueue(queueDir, 'register-dlq.fifo', {
        accountId: account,
        region: home,
        clock,
      }),
      maxReceiveCount: 5,
    });

    this.bootCheckQueue = new LocalFifoQueue(queueDir, 'boot-checks.fifo', {
      accountId: account,
      region: home,
      clock,
      deadLetterQueue: new LocalFifoQueue(queueDir, 'boot-checks-dlq.fifo', {
        accountId: account,
        region: home,
        clock,
      }),
      // Every look at a boot under way is a receive: enough for the longest timeout at this poll interval.
      maxReceiveCount: 5000,
    });
    this.bootChecker = new LocalQemuBootChecker({
      dir: join(dataDir, 'boot-checks'),
      images: (region) => this.region(region).images,
      log,
    });

    for (const region of this.allRegions()) {
      const bus = region === home ? this.homeBus : this.bus(account, region, 'default');
      const { volumes, snapshots, images } = createLocalEbs({
        dir: ebsStateDir(dataDir, region),
        region,
        accountId: account,
        keys: this.keys,
        events: bus,
        clock,
        log,
        ...(options.volumeBackend ? { backend: options.volumeBackend } : {}),
      });
      const buildDlq = new LocalFifoQueue(queueDir, `build-${region}-dlq.fifo`, {
        accountId: account,
        region,
        clock,
      });
      const buildQueue = new LocalFifoQueue(queueDir, `build-${region}.fifo`, {
        accountId: account,
        region,
        clock,
        deadLetterQueue: buildDlq,
        maxReceiveCount: options.maxReceiveCount,
      });
      this.regions.set(region, {
        region,
        availabilityZone: `${region}a`,
        bus,
        buildQueue,
        buildDlq,
        volumes,
        snapshots,
        images,
      });
    }
    this.launch = new LocalLaunchModel({
      region: (r) => this.region(r),
      keys: this.keys,
      organization: this.organization,
    });
  }

  allRegions(): string[] {
    return [...new Set([this.homeRegion, ...Object.values(this.config.streams).flatMap((s) => s.regions)])];
  }

  region(region: string): LocalRegion {
    const found = this.regions.get(region);
    if (!found) throw new Error(`region ${region} is not a target of any stream in the configuration`);
    return found;
  }

  /** An event bus of an account in a region, its events kept under the data folder. */
  bus(accountId: string, region: string, name: string): LocalEventBus {
    return new LocalEventBus(join(this.dataDir, 'buses', accountId, region, name), {
      name,
      accountId,
      region,
      registry: this.registry,
      clock: this.clock,
    });
  }
}
