// The whole flow of DESIGN.md on one machine: local adapters behind the ports, wired the way serverless.yml,
// infra/region.yml and infra/member.yml wire the AWS services. The handlers are the same modules Lambda runs,
// invoked with the same event envelopes; the builder runs the same worker as the EC2 agent.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Context } from 'aws-lambda';
import { DeviceWorkspace } from '#builder/device.ts';
import { recoverMounts } from '#builder/quiesce.ts';
import { requireHostSpace } from '#builder/space.ts';
import {
  type BuilderDeps,
  type BuildOutcome,
  type BuildStep,
  handleBuildFailure,
  runBuild,
} from '#builder/worker.ts';
import type { StemcellConfig } from '#config/schema.ts';
import type {
  AnnounceDeps,
  BootCheckDeps,
  ExpireDeps,
  IngestDeps,
  Logger,
  ReconcileDeps,
  RegisterDeps,
  SubscriberDeps,
  SyncSubscribersDeps,
} from '#core/deps.ts';
import { subscriberSettingsFromConfig } from '#core/deps.ts';
import type { ExpireOptions } from '#core/images/expire.ts';
import { defaultInstanceType } from '#core/images/instance-types.ts';
import type { ReconcileOptions, ReconcileReport } from '#core/release/reconcile.ts';
import { protectedImages } from '#core/rollout/rollback.ts';
import { BuildJob, INSTANCE_REFRESH_END_PATTERN, INSTANCE_REFRESH_MESSAGE_GROUP } from '#events/aws.ts';
import { createHandler as createAnnounce } from '#functions/announce/handler.ts';
import { createHandler as createBootCheck } from '#functions/boot-check/handler.ts';
import { createPowertools, type Powertools } from '#functions/commons/powertools.ts';
import { createHandler as createExpire } from '#functions/expire/handler.ts';
import { createHandler as createIngest } from '#functions/ingest/handler.ts';
import { createHandler as createReconcile } from '#functions/reconcile/handler.ts';
import { createHandler as createRegister } from '#functions/register/handler.ts';
import { createHandler as createSubscriber } from '#functions/subscriber/handler.ts';
import { createHandler as createSyncSubscribers } from '#functions/sync-subscribers/handler.ts';
import type { Clock, EventPublisher, FifoQueue, StoredObject } from '#ports';
import { LocalQemuBootChecker } from './boot-checker.ts';
import { realSleep, systemClock } from './clock.ts';
import { createLocalEbs } from './ebs.ts';
import { EventBusRegistry, eventBusArn, LocalEventBus } from './event-bus.ts';
import { LocalFifoQueue, type LocalQueueMessage, toLambdaSqsEvent } from './fifo-queue.ts';
import { claimDataFolder, releaseDataFolder, removeOrphanTemporaries } from './housekeeping.ts';
import type { LocalImages } from './images.ts';
import { AUTO_SCALING_GRANT_OPERATIONS, autoScalingRoleArn, stemcellKeyPolicy } from './key-policy.ts';
import { LocalKeyService } from './key-service.ts';
import { LocalLaunchModel } from './launch-model.ts';
import { LocalMemberAccounts } from './member-accounts.ts';
import { LocalObjectStore } from './object-store.ts';
import { LocalOrganizationDirectory } from './organization.ts';
import { LocalReleaseStore } from './release-store.ts';
import { LocalRolloutStore } from './rollout-store.ts';
import { LocalAlarms, LocalScheduler } from './scheduler.ts';
import type { LocalSnapshots } from './snapshots.ts';
import { ebsStateDir, type LocalVolumes } from './volumes.ts';

export type StackProgress =
  | { kind: 'build'; region: string; stream: string; revision: string; step: BuildStep }
  | { kind: 'built'; region: string; stream: string; revision: string; outcome: BuildOutcome }
  | { kind: 'build-failed'; region: string; stream: string; revision: string; reason: string; final: boolean }
  | { kind: 'account-updated'; accountId: string; region: string; stream: string; sequence: number };

export interface LocalStackOptions {
  dataDir: string;
  config: StemcellConfig;
  volumeBackend?: 'auto' | 'block' | 'directory';
  /** Build attempts before a job goes to the region's DLQ (SQS maxReceiveCount). */
  maxReceiveCount?: number;
  onProgress?: (event: StackProgress) => void;
  /** Lines for the operator (volume backend, grows); stderr by default. */
  log?: (line: string) => void;
  clock?: Clock;
  /** Builder workers per region (default 2): different streams build in parallel. */
  buildersPerRegion?: number;
  /** Test hook: runs before a member account's subscriber handles a batch (the status page test slows it). */
  beforeSubscriber?: (accountId: string) => Promise<void>;
  /** How often the reconciler runs besides at start (default 15 s; 0: only at start and when called). */
  reconcileIntervalMs?: number;
  /** How often expire runs (default 0: never on its own; `stemcell dev` runs it every minute). */
  expireIntervalMs?: number;
  /** The reconciler's timeouts (when an account that has not reported gets "Image Ready" again). */
  reconcile?: ReconcileOptions;
  /** Free bytes a build needs in the data folder before it starts (default 256 MiB). */
  dataFolderNeededBytes?: number;
  /** Test hook: runs before each build attempt; a throw fails that attempt like a builder crash would. */
  beforeBuild?: (job: BuildJob) => void | Promise<void>;
  /**
   * How long member accounts' instance refreshes run (clock time; default 0: they end as they start). Longer,
   * the subscriber reports "started" and Auto Scaling's end event reports the outcome, as on AWS.
   */
  instanceRefreshSeconds?: number;
}

interface RegionRuntime {
  region: string;
  availabilityZone: string;
  bus: LocalEventBus;
  buildQueue: LocalFifoQueue;
  buildDlq: LocalFifoQueue;
  volumes: LocalVolumes;
  snapshots: LocalSnapshots;
  images: LocalImages;
}

const lambdaContext = (functionName: string): Context =>
  ({
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => 300_000,
    done() {},
    fail() {},
    succeed() {},
  }) as Context;

/** Short, as the heartbeat keeps a live builder's job in flight: a dead builder's job is back within a minute. */
const BUILD_VISIBILITY_SECONDS = 60;
/** Free space a build needs in the data folder (state, blocks of the snapshot, growth of the sparse volume). */
const DATA_FOLDER_NEEDED = 256 * 2 ** 20;
const SPACE_POLL_MS = 1000;
const RECONCILE_INTERVAL_MS = 15_000;
const RETRY_PAUSE_MS = 1000;
/** Instance ids of the local builders; a restarted stack treats every one of them as terminated. */
const LOCAL_BUILDER_PREFIX = 'i-local-builder-';
const REGISTER_VISIBILITY_SECONDS = 2;
/** Boot checks: how long one look may take, and how soon a boot still under way is looked at again. */
const BOOT_CHECK_VISIBILITY_SECONDS = 120;
const BOOT_CHECK_POLL_SECONDS = 1;
const SUBSCRIBER_VISIBILITY_SECONDS = 2;

export class LocalStack {
  readonly config: StemcellConfig;
  readonly dataDir: string;
  readonly managementAccountId: string;
  readonly homeRegion: string;
  readonly registry = new EventBusRegistry();
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
  readonly regions = new Map<string, RegionRuntime>();
  readonly #memberBuses = new Map<string, LocalEventBus>();
  /** Each member account's FIFO queue between its bus rule and its subscriber (infra/member.yml). */
  readonly subscriberQueues = new Map<string, LocalFifoQueue>();
  readonly #options: LocalStackOptions;
  readonly #clock: Clock;
  readonly #tools: Powertools;
  readonly #logger: Logger;
  /** Operator lines (volume backend, grows): the caller's, or stderr. */
  readonly #log: (line: string) => void;
  readonly #workspace: DeviceWorkspace;
  #running = false;
  #busy = 0;
  readonly #loops: Promise<void>[] = [];
  #watcher: { stop(): void } | undefined;
  #lastRepeatedLine: string | undefined;
  #reconcileTimer: NodeJS.Timeout | undefined;
  #expireTimer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> | undefined;

  constructor(options: LocalStackOptions) {
    const { config, dataDir } = options;
    if (!config.local)
      throw new Error('local mode needs a `local:` section (accounts, OUs) in the configuration');
    this.#options = options;
    this.config = config;
    this.dataDir = dataDir;
    this.managementAccountId = config.local.managementAccountId;
    this.homeRegion = config.homeRegion;
    this.#clock = options.clock ?? systemClock;
    this.#tools = createPowertools({ quiet: true });
    this.#logger = this.#tools.logger;
    const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
    this.#log = log;
    this.#workspace = new DeviceWorkspace({ mountRoot: join(dataDir, 'mnt'), log });
    const account = this.managementAccountId;
    const home = this.homeRegion;

    const homeBus = this.#bus(account, home, 'default');
    this.centralBus = this.#bus(account, home, config.busName);
    this.objects = new LocalObjectStore(join(dataDir, 'objects'), {
      bucket: config.bucket,
      accountId: account,
      region: home,
      sink: homeBus,
      clock: this.#clock,
    });
    this.releases = new LocalReleaseStore(join(dataDir, 'releases'), { clock: this.#clock });
    this.rollouts = new LocalRolloutStore(dataDir);
    this.scheduler = new LocalScheduler(dataDir, { clock: this.#clock });
    this.alarms = new LocalAlarms(dataDir);
    this.keys = new LocalKeyService(join(dataDir, 'kms'), {
      accountId: account,
      region: home,
      clock: this.#clock,
      // aws:PrincipalOrgID of a caller: the organization's id for its members.
      organizationOf: (id) =>
        this.organization.parentOf(id) === undefined ? undefined : this.organization.organizationId,
    });
    this.organization = new LocalOrganizationDirectory(join(dataDir, 'organizations'), config.local);
    this.members = new LocalMemberAccounts(join(dataDir, 'accounts'), {
      clock: this.#clock,
      instanceRefreshSeconds: options.instanceRefreshSeconds ?? 0,
      // Auto Scaling's events reach the account's bus (on AWS: each region's default bus, forwarded home).
      autoScalingEvents: (accountId) => this.memberBus(accountId),
    });
    this.registerQueue = new LocalFifoQueue(join(dataDir, 'queues'), 'register.fifo', {
      accountId: account,
      region: home,
      clock: this.#clock,
      deadLetterQueue: new LocalFifoQueue(join(dataDir, 'queues'), 'register-dlq.fifo', {
        accountId: account,
        region: home,
        clock: this.#clock,
      }),
      maxReceiveCount: 5,
    });

    this.bootCheckQueue = new LocalFifoQueue(join(dataDir, 'queues'), 'boot-checks.fifo', {
      accountId: account,
      region: home,
      clock: this.#clock,
      deadLetterQueue: new LocalFifoQueue(join(dataDir, 'queues'), 'boot-checks-dlq.fifo', {
        accountId: account,
        region: home,
        clock: this.#clock,
      }),
      // Every look at a boot under way is a receive: enough for the longest timeout at this poll interval.
      maxReceiveCount: 5000,
    });
    this.bootChecker = new LocalQemuBootChecker({
      dir: join(dataDir, 'boot-checks'),
      images: (region) => this.region(region).images,
      log,
    });

    const maxReceiveCount = options.maxReceiveCount ?? 3;
    for (const region of this.allRegions()) {
      const bus = region === home ? homeBus : this.#bus(account, region, 'default');
      const { volumes, snapshots, images } = createLocalEbs({
        dir: ebsStateDir(dataDir, region),
        region,
        accountId: account,
        keys: this.keys,
        events: bus,
        clock: this.#clock,
        log,
        ...(options.volumeBackend ? { backend: options.volumeBackend } : {}),
      });
      const queueDir = join(dataDir, 'queues');
      const buildDlq = new LocalFifoQueue(queueDir, `build-${region}-dlq.fifo`, {
        accountId: account,
        region,
        clock: this.#clock,
      });
      const buildQueue = new LocalFifoQueue(queueDir, `build-${region}.fifo`, {
        accountId: account,
        region,
        clock: this.#clock,
        deadLetterQueue: buildDlq,
        maxReceiveCount,
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
      // infra/region.yml: the region's EBS and AMI events go to the home region's default bus.
      if (region !== home) {
        bus.addRule(
          'stemcell-forward-to-home',
          { source: ['aws.ec2'], 'detail-type': ['EBS Snapshot Notification', 'EC2 AMI State Change'] },
          homeBus,
        );
      }
    }
    this.launch = new LocalLaunchModel({
      region: (r) => this.region(r),
      keys: this.keys,
      organization: this.organization,
    });
    this.#wireHomeRules(homeBus);
  }

  allRegions(): string[] {
    return [...new Set([this.homeRegion, ...Object.values(this.config.streams).flatMap((s) => s.regions)])];
  }

  region(region: string): RegionRuntime {
    const runtime = this.regions.get(region);
    if (!runtime) throw new Error(`region ${region} is not a target of any stream in the configuration`);
    return runtime;
  }

  /** Seeds member accounts from the config, creates the customer key, reconciles subscribers, starts the workers. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#recoverPreviousRun();
    // The key policy serverless.yml writes: the Organization may use the key through EC2.
    await this.keys.ensureKey(
      this.config.kmsKeyId,
      'stemcell volumes, snapshots, images and tarballs',
      stemcellKeyPolicy({
        accountId: this.managementAccountId,
        region: this.homeRegion,
        organizationId: this.organization.organizationId,
      }),
    );
    const local = this.config.local;
    if (local) {
      this.members.seedFromConfig(local, (stream) =>
        defaultInstanceType(this.config.streams[stream]?.architecture ?? 'x86_64'),
      );
    }
    await this.syncSubscribers();
    // Every bus's rules are wired now (member buses by the sync): deliveries a previous run accepted and never
    // finished are delivered again, as EventBridge keeps retrying what PutEvents accepted.
    let resumed = 0;
    for (const bus of this.registry.list()) resumed += bus.resumeDeliveries();
    if (resumed > 0) this.#log(`event buses: ${resumed} delivery(ies) in flight in a previous run resumed`);
    // A small builder fleet per region: jobs of different streams build side by side, one stream stays serial
    // (FIFO message group).
    for (const runtime of this.regions.values()) {
      for (let i = 0; i < (this.#options.buildersPerRegion ?? 2); i++)
        this.#loops.push(this.#buildLoop(runtime, i));
    }
    this.#loops.push(this.#registerLoop());
    this.#loops.push(this.#bootCheckLoop());
    this.#loops.push(this.#schedulerLoop());
    this.#loops.push(this.#autoScalingEventsLoop());
    await this.#reconcileSafely();
    const expireEvery = this.#options.expireIntervalMs ?? 0;
    if (expireEvery > 0) {
      // `keep` holds in local mode too: expire on a schedule, as EventBridge Scheduler runs it on AWS.
      let expiring = false;
      this.#expireTimer = setInterval(() => {
        if (expiring) return;
        expiring = true;
        this.expire()
          .catch((err: Error) => this.#logOnce(`expire failed: ${err.message}`))
          .finally(() => {
            expiring = false;
          });
      }, expireEvery);
      this.#expireTimer.unref();
    }
    const every = this.#options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS;
    if (every > 0) {
      this.#reconcileTimer = setInterval(() => void this.#reconcileSafely(), every);
      this.#reconcileTimer.unref();
    }
  }

  /** reconcile λ: finishes what a crash interrupted (also run at start and on a timer). */
  async reconcile(options: ReconcileOptions = {}): Promise<ReconcileReport> {
    return createReconcile(this.reconcileDeps(), this.#tools, { ...this.#options.reconcile, ...options })(
      {},
      lambdaContext('stemcell-reconcile'),
    );
  }

  async #reconcileSafely(): Promise<void> {
    if (this.#reconciling) return this.#reconciling;
    this.#reconciling = this.reconcile()
      .then((report) => {
        for (const f of report.failed) this.#log(`reconcile: ${f.releaseId} ${f.region} failed: ${f.reason}`);
        for (const r of report.registered)
          this.#log(`reconcile: ${r.releaseId} ${r.region}: registered ${r.imageId}`);
        for (const a of report.announced)
          this.#log(`reconcile: ${a.releaseId} ${a.region}: announced ${a.imageId}`);
        if (report.redelivered.length > 0)
          this.#log(`reconcile: "Image Ready" delivered again to ${report.redelivered.length} account(s)`);
      })
      .catch((err: Error) => this.#logOnce(`reconcile failed: ${err.message}`))
      .finally(() => {
        this.#reconciling = undefined;
      });
    return this.#reconciling;
  }

  /**
   * What a killed stack left behind, undone as AWS would: its builders are terminated instances, so their mounts
   * go and their volumes are detached; the messages they held are visible again at once.
   */
  async #recoverPreviousRun(): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    for (const { pid, command } of claimDataFolder(this.dataDir))
      this.#log(`killed ${pid} (${command.slice(0, 80)}), left running by a previous run`);
    const mountRoot = join(this.dataDir, 'mnt');
    await recoverMounts(mountRoot, this.#log);
    for (const runtime of this.regions.values()) {
      const released = await runtime.volumes.releaseAttachments((id) => id.startsWith(LOCAL_BUILDER_PREFIX));
      if (released.length > 0)
        this.#log(`${runtime.region}: released ${released.join(', ')} from builders of a previous run`);
    }
    for (const queue of [this.registerQueue, ...[...this.regions.values()].map((r) => r.buildQueue)]) {
      // (Member accounts' subscriber queues hold their messages for 2 s only: they come back on their own.)
      const held = queue.releaseInFlight();
      if (held > 0)
        this.#log(`${queue.name}: ${held} message(s) in flight in a previous run are visible again`);
    }
    // Housekeeping: writes that never reached their rename, and blocks no snapshot references.
    const temporaries = removeOrphanTemporaries(this.dataDir);
    let blocks = 0;
    for (const runtime of this.regions.values())
      blocks += (await runtime.snapshots.collectGarbage()).removedBlocks;
    if (temporaries.length + blocks > 0)
      this.#log(
        `housekeeping: removed ${temporaries.length} orphan temporary file(s), ${blocks} unreferenced block(s)`,
      );
  }

  /** `stemcell dev`: also pick up objects dropped into the bucket by another process (`stemcell publish`). */
  watchBucket(intervalMs = 500): void {
    this.#watcher ??= this.objects.watch(intervalMs, (err) =>
      this.#logger.error('bucket watch failed', { err }),
    );
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#reconcileTimer);
    clearInterval(this.#expireTimer);
    await this.#reconciling;
    this.#watcher?.stop();
    await Promise.allSettled(this.#loops);
    await this.bootChecker.stopAll();
    await this.registry.drain();
    releaseDataFolder(this.dataDir);
  }

  /** Uploads a tarball as streams/<stream>/<revision>.tar…: S3 then emits "Object Created", which starts it all. */
  async publish(
    key: string,
    body: Buffer | Readable,
    metadata: Record<string, string> = {},
  ): Promise<StoredObject> {
    return this.objects.put(key, body, metadata);
  }

  /**
   * Resolves once no event is in flight, no job is queued or building, no register record waits, and no bake
   * timer is pending (a rollout that halted has none left; `timers: false` does not wait for them).
   */
  async settle(options: { timers?: boolean } = {}): Promise<void> {
    for (;;) {
      await this.registry.drain();
      if (options.timers !== false && this.scheduler.pending().length > 0) {
        await realSleep(50);
        continue;
      }
      const queued = [
        this.registerQueue,
        this.bootCheckQueue,
        ...[...this.regions.values()].map((r) => r.buildQueue),
        ...this.subscriberQueues.values(),
      ].some((q) => {
        const s = q.stats();
        return s.visible + s.inFlight > 0;
      });
      if (!queued && this.#busy === 0) {
        await this.registry.drain();
        if (this.#busy === 0) return;
      }
      await realSleep(20);
    }
  }

  /** sync-subscribers λ: rules on the central bus for every account in scope (also run by `start`). */
  async syncSubscribers(): Promise<void> {
    for (const account of await this.organization.listAccounts()) {
      this.memberBus(account.id);
      await this.#grantKeyToAutoScaling(account.id);
    }
    // Late joiners (an account new to the audience gets the newest announced image of each of its streams):
    // the handler has the reconciler deliver them, as on AWS.
    await createSyncSubscribers(this.syncSubscribersDeps(), this.#tools)(
      {},
      lambdaContext('sync-subscribers'),
    );
  }

  /** expire λ (7 days of grace between deprecation and deregistration unless told otherwise). */
  async expire(options: ExpireOptions = {}) {
    return createExpire(this.expireDeps(), this.#tools, options)({}, lambdaContext('expire'));
  }

  /**
   * The member account's default bus, with what infra/member.yml deploys: the rule that puts "Image Ready" on the
   * account's FIFO queue (MessageGroupId = stream), and the subscriber consuming it as Lambda's SQS event source
   * does, so deliveries for one account and stream never run at once.
   */
  memberBus(accountId: string): LocalEventBus {
    let bus = this.#memberBuses.get(accountId);
    if (bus) return bus;
    // The management account's default bus is the home bus that already exists.
    bus =
      this.registry.resolve(eventBusArn(this.homeRegion, accountId, 'default')) ??
      this.#bus(accountId, this.homeRegion, 'default');
    const queueDir = join(this.dataDir, 'queues', 'members', accountId);
    const queueOptions = { accountId, region: this.homeRegion, clock: this.#clock };
    const queue = new LocalFifoQueue(queueDir, 'stemcell-subscriber.fifo', {
      ...queueOptions,
      deadLetterQueue: new LocalFifoQueue(queueDir, 'stemcell-subscriber-dlq.fifo', queueOptions),
      maxReceiveCount: 5,
    });
    bus.addRule(
      'stemcell-subscriber',
      // infra/member.yml: an Image Ready with an audience (rollout waves) is for the accounts it lists.
      {
        source: ['stemcell'],
        'detail-type': ['Image Ready'],
        $or: [{ detail: { audience: [accountId] } }, { detail: { audience: [{ exists: false }] } }],
      },
      async (event) => {
        const detail = event.detail as { stream: string };
        await queue.send(JSON.stringify(event), detail.stream, event.id);
      },
    );
    // infra/member.yml's InstanceRefreshEndsToSubscriber: how refreshes ended, in their own message group.
    bus.addRule('stemcell-instance-refresh-ends', INSTANCE_REFRESH_END_PATTERN, async (event) => {
      await queue.send(JSON.stringify(event), INSTANCE_REFRESH_MESSAGE_GROUP, event.id);
    });
    this.#memberBuses.set(accountId, bus);
    this.subscriberQueues.set(accountId, queue);
    if (this.#running) this.#loops.push(this.#subscriberLoop(accountId, bus, queue));
    return bus;
  }

  /**
   * infra/member.yml's custom resource in a member account: a grant on the customer key for the account's Auto
   * Scaling service-linked role, created by the member itself (the key policy allows exactly this grant).
   */
  async #grantKeyToAutoScaling(accountId: string): Promise<void> {
    if (accountId === this.managementAccountId) return;
    await this.keys.createGrantAs(
      `arn:aws:sts::${accountId}:assumed-role/stemcell-key-grant/stemcell-key-grant`,
      this.config.kmsKeyId,
      autoScalingRoleArn(accountId),
      AUTO_SCALING_GRANT_OPERATIONS,
    );
  }

  /** Lambda's SQS event source for one account's subscriber: batches of up to 10, in group order. */
  async #subscriberLoop(accountId: string, bus: LocalEventBus, queue: LocalFifoQueue): Promise<void> {
    const onProgress = this.#options.onProgress;
    // The progress line follows the reports the subscriber sends back, one per launch template it handled.
    const events: EventPublisher = {
      async publish(entries) {
        await bus.publish(entries);
        for (const e of entries) {
          // A refresh's end is a second report of a template already counted.
          if (e.detailType !== 'Launch Template Updated' || (e.detail as { refresh?: unknown }).refresh)
            continue;
          const d = e.detail as { region: string; stream: string; sequence: number };
          onProgress?.({
            kind: 'account-updated',
            accountId,
            region: d.region,
            stream: d.stream,
            sequence: d.sequence,
          });
        }
      },
    };
    const subscriber = createSubscriber({ ...this.subscriberDeps(accountId, bus), events }, this.#tools);
    const hook = this.#options.beforeSubscriber;
    await this.#consume(
      queue,
      `stemcell-subscriber-${accountId}`,
      hook
        ? async (event, context) => {
            await hook(accountId);
            return subscriber(event, context);
          }
        : subscriber,
    );
  }

  /** Receives batches from a queue and hands them to an SQS-triggered handler; failed records stay queued. */
  async #consume(
    queue: LocalFifoQueue,
    functionName: string,
    handler: (event: never, context: Context) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>,
    visibilityTimeoutSeconds = SUBSCRIBER_VISIBILITY_SECONDS,
  ): Promise<void> {
    while (this.#running) {
      let messages: LocalQueueMessage[];
      try {
        messages = await queue.receive({ max: 10, visibilityTimeoutSeconds, waitSeconds: 1 });
      } catch (err) {
        // A full data folder fails the queue's own writes: report it, never crash, try again.
        this.#logOnce(`${queue.name}: receive failed: ${(err as Error).message}`);
        await realSleep(RETRY_PAUSE_MS);
        continue;
      }
      if (messages.length === 0) continue;
      this.#busy++;
      try {
        const response = await handler(
          toLambdaSqsEvent(
            { arn: queue.arn, region: queue.region, accountId: queue.accountId },
            messages,
          ) as never,
          lambdaContext(functionName),
        );
        const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
        for (const message of messages) {
          if (!failed.has(message.messageId)) await queue.delete(message.receiptHandle);
        }
      } catch (err) {
        this.#logger.error(`${functionName} invocation failed`, { err });
      } finally {
        this.#busy--;
      }
    }
  }

  ingestDeps(): IngestDeps {
    return {
      ...this.#base(),
      releases: this.releases,
      events: this.centralBus,
      buildQueue: (region) => this.region(region).buildQueue,
      objects: this.objects,
    };
  }

  registerDeps(): RegisterDeps {
    return {
      ...this.#base(),
      releases: this.releases,
      events: this.centralBus,
      imaging: (r) => this.region(r),
    };
  }

  announceDeps(): AnnounceDeps {
    return {
      ...this.#base(),
      releases: this.releases,
      events: this.centralBus,
      imaging: (r) => this.region(r),
      organization: this.organization,
      bootChecks: this.bootCheckQueue,
      defaultBootCheckMode: 'qemu',
      rollouts: this.rollouts,
      timer: this.scheduler,
      alarms: this.alarms,
    };
  }

  bootCheckDeps(): BootCheckDeps {
    return {
      ...this.announceDeps(),
      bootChecker: (_region, mode) => {
        if (mode !== 'qemu')
          throw new Error(`boot check mode ${mode} needs AWS; local mode boots images under qemu`);
        return this.bootChecker;
      },
    };
  }

  reconcileDeps(): ReconcileDeps {
    return { ...this.announceDeps(), buildDeadLetters: (r) => this.region(r).buildDlq };
  }

  syncSubscribersDeps(): SyncSubscribersDeps {
    return {
      ...this.#base(),
      organization: this.organization,
      rules: this.centralBus,
      catchUp: this.reconcileDeps(),
    };
  }

  expireDeps(): ExpireDeps {
    return {
      ...this.#base(),
      imaging: (r) => this.region(r),
      organization: this.organization,
      members: this.members,
      protectedImages: (stream, region) =>
        protectedImages({ releases: this.releases, rollouts: this.rollouts }, stream, region),
    };
  }

  subscriberDeps(accountId: string, memberBus: LocalEventBus): SubscriberDeps {
    return {
      accountId,
      members: this.members,
      centralBus: this.centralBus.arn,
      events: memberBus,
      settings: subscriberSettingsFromConfig(this.config),
      clock: this.#clock,
      logger: this.#logger,
    };
  }

  #base() {
    return { config: this.config, clock: this.#clock, logger: this.#logger };
  }

  #bus(accountId: string, region: string, name: string): LocalEventBus {
    const bus = new LocalEventBus(join(this.dataDir, 'buses', accountId, region, name), {
      name,
      accountId,
      region,
      registry: this.registry,
      clock: this.#clock,
    });
    return bus;
  }

  /** serverless.yml's rules on the home region's default and central buses. */
  #wireHomeRules(homeBus: LocalEventBus): void {
    const ingest = createIngest(this.ingestDeps(), this.#tools);
    homeBus.addRule(
      'stemcell-ingest',
      {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { bucket: { name: [this.config.bucket] }, object: { key: [{ prefix: 'streams/' }] } },
      },
      async (event) => {
        await ingest(event as never, lambdaContext('stemcell-ingest'));
      },
    );
    // EBS notifications are queued for register (SQS event source with partial batch failures).
    homeBus.addRule(
      'stemcell-snapshots',
      {
        source: ['aws.ec2'],
        'detail-type': ['EBS Snapshot Notification'],
        detail: { event: ['createSnapshot'] },
      },
      async (event) => {
        await this.registerQueue.send(JSON.stringify(event), event.id, event.id);
      },
    );
    const announce = createAnnounce(this.announceDeps(), this.#tools);
    const announceTarget = async (event: unknown) => {
      await announce(event as never, lambdaContext('stemcell-announce'));
    };
    homeBus.addRule(
      'stemcell-images',
      { source: ['aws.ec2'], 'detail-type': ['EC2 AMI State Change'], detail: { State: ['available'] } },
      announceTarget,
    );
    this.centralBus.addRule(
      'stemcell-launch-template-updated',
      { source: ['stemcell'], 'detail-type': ['Launch Template Updated'] },
      announceTarget,
    );
  }

  /** EventBridge Scheduler: due bake timers invoke announce with their input. */
  async #schedulerLoop(): Promise<void> {
    const announce = createAnnounce(this.announceDeps(), this.#tools);
    while (this.#running) {
      this.#busy++;
      try {
        await this.scheduler.poll(async (input) => {
          await announce(input as never, lambdaContext('stemcell-announce'));
        });
      } catch (err) {
        this.#logger.error('bake timer target failed', { err });
      } finally {
        this.#busy--;
      }
      await realSleep(100);
    }
  }

  /** Auto Scaling's side: refreshes that ended since they started put their end events on the member's bus. */
  async #autoScalingEventsLoop(): Promise<void> {
    while (this.#running) {
      try {
        this.members.deliverRefreshEvents();
      } catch (err) {
        this.#logger.error('instance refresh end events failed', { err });
      }
      await realSleep(250);
    }
  }

  /** Lambda's SQS event source for register: batches in, failed records stay for redelivery. */
  async #registerLoop(): Promise<void> {
    const register = createRegister(this.registerDeps(), this.#tools);
    await this.#consume(this.registerQueue, 'stemcell-register', register, REGISTER_VISIBILITY_SECONDS);
  }

  /** Lambda's SQS event source for boot-check: a boot still under way comes back after the poll interval. */
  async #bootCheckLoop(): Promise<void> {
    const bootCheck = createBootCheck(this.bootCheckDeps(), this.#tools);
    const queue = this.bootCheckQueue;
    while (this.#running) {
      const messages = await queue.receive({
        max: 10,
        visibilityTimeoutSeconds: BOOT_CHECK_VISIBILITY_SECONDS,
        waitSeconds: 1,
      });
      if (messages.length === 0) continue;
      this.#busy++;
      try {
        const response = await bootCheck(
          toLambdaSqsEvent(
            { arn: queue.arn, region: queue.region, accountId: queue.accountId },
            messages,
          ) as never,
          lambdaContext('stemcell-boot-check'),
        );
        const again = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
        for (const message of messages) {
          if (again.has(message.messageId))
            await queue.changeVisibility(message.receiptHandle, BOOT_CHECK_POLL_SECONDS);
          else await queue.delete(message.receiptHandle);
        }
      } catch (err) {
        this.#logger.error('boot-check invocation failed', { err });
      } finally {
        this.#busy--;
      }
    }
  }

  /** The builder fleet of one region: one worker, FIFO per stream. */
  async #buildLoop(runtime: RegionRuntime, builder: number): Promise<void> {
    const manifestDir = join(ebsStateDir(this.dataDir, runtime.region), 'manifests');
    mkdirSync(manifestDir, { recursive: true });
    const deps: BuilderDeps = {
      region: runtime.region,
      availabilityZone: runtime.availabilityZone,
      instanceId: `${LOCAL_BUILDER_PREFIX}${runtime.region}-${builder}`,
      kmsKeyId: this.config.kmsKeyId,
      objects: this.objects,
      volumes: runtime.volumes,
      snapshots: runtime.snapshots,
      releases: this.releases,
      publisher: this.centralBus,
      workspace: this.#workspace,
      manifestPath: (volumeId: string) => join(manifestDir, `${volumeId}.json`),
      clock: this.#clock,
      log: this.#log,
      hostSpace: {
        dir: this.dataDir,
        neededBytes: this.#options.dataFolderNeededBytes ?? DATA_FOLDER_NEEDED,
      },
      onStep: (job: BuildJob, step: BuildStep) =>
        this.#options.onProgress?.({
          kind: 'build',
          region: job.region,
          stream: job.stream,
          revision: job.revision,
          step,
        }),
    };
    const queue = runtime.buildQueue;
    while (this.#running) {
      let message: LocalQueueMessage | undefined;
      try {
        [message] = await queue.receive({
          max: 1,
          visibilityTimeoutSeconds: BUILD_VISIBILITY_SECONDS,
          waitSeconds: 1,
        });
      } catch (err) {
        // A full data folder fails the queue's own writes too: report it, never crash, try again.
        this.#logOnce(`build-${runtime.region}.fifo: receive failed: ${(err as Error).message}`);
        await realSleep(RETRY_PAUSE_MS);
        continue;
      }
      if (!message) continue;
      this.#busy++;
      try {
        await withHeartbeat(queue, message.receiptHandle, BUILD_VISIBILITY_SECONDS, this.#log, () =>
          this.#buildMessage(runtime, deps, message),
        );
      } catch (err) {
        this.#logOnce(`build-${runtime.region}.fifo: ${message.messageId}: ${(err as Error).message}`);
        await realSleep(RETRY_PAUSE_MS);
      } finally {
        this.#busy--;
      }
    }
  }

  /** One received build message, to its end: deleted, returned to the queue, or built once space returned. */
  async #buildMessage(runtime: RegionRuntime, deps: BuilderDeps, message: LocalQueueMessage): Promise<void> {
    const queue = runtime.buildQueue;
    const maxReceiveCount = this.#options.maxReceiveCount ?? 3;
    let job: BuildJob;
    try {
      job = BuildJob.parse(JSON.parse(message.body));
    } catch (err) {
      // Not a BuildJob: it cannot succeed; let the queue's receive count move it to the DLQ.
      this.#log(
        `build-${runtime.region}.fifo: unreadable job ${message.messageId}: ${(err as Error).message}`,
      );
      await queue.changeVisibility(message.receiptHandle, 0);
      return;
    }
    for (;;) {
      try {
        await this.#options.beforeBuild?.(job);
        const outcome = await runBuild(deps, job);
        this.#options.onProgress?.({
          kind: 'built',
          region: job.region,
          stream: job.stream,
          revision: job.revision,
          outcome,
        });
        await queue.delete(message.receiptHandle);
        return;
      } catch (err) {
        const verdict = await handleBuildFailure(deps, job, err, {
          receiveCount: message.receiveCount,
          maxReceiveCount,
        });
        const reason = err instanceof Error ? err.message : String(err);
        this.#options.onProgress?.({
          kind: 'build-failed',
          region: job.region,
          stream: job.stream,
          revision: job.revision,
          reason,
          final: verdict === 'done' || (verdict === 'retry' && message.receiveCount >= maxReceiveCount),
        });
        if (verdict === 'wait') {
          // One line per build, then the job waits (heartbeat on) until the data folder has room again.
          this.#log(`build ${job.stream} ${job.revision} in ${job.region}: ${reason}; waiting for space`);
          await this.#waitForSpace(deps);
          if (!this.#running) return queue.changeVisibility(message.receiptHandle, 0);
          continue;
        }
        if (verdict === 'done') await queue.delete(message.receiptHandle);
        // Retry now rather than after the visibility timeout; past maxReceiveCount the queue moves it to the DLQ.
        else await queue.changeVisibility(message.receiptHandle, 0);
        return;
      }
    }
  }

  async #waitForSpace(deps: BuilderDeps): Promise<void> {
    for (;;) {
      if (!this.#running) return;
      try {
        requireHostSpace(deps.hostSpace);
        return;
      } catch {
        await realSleep(SPACE_POLL_MS);
      }
    }
  }

  /** A line for the operator, not repeated while the same condition persists. */
  #logOnce(line: string): void {
    if (this.#lastRepeatedLine === line) return;
    this.#lastRepeatedLine = line;
    this.#log(line);
  }
}

/**
 * Keeps a received message in flight while `work` runs, as the builder agent's heartbeat does on SQS: the
 * visibility timeout can stay short, and a dead builder's job comes back within it.
 */
export async function withHeartbeat<T>(
  queue: FifoQueue,
  receiptHandle: string,
  visibilitySeconds: number,
  log: (line: string) => void,
  work: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(
    () => {
      queue.changeVisibility(receiptHandle, visibilitySeconds).catch((err: Error) => {
        // Gone (deleted, returned) is the normal end of a race with work's own last call.
        if ((err as { code?: string }).code !== 'MessageNotInflight')
          log(`${queue.name}: heartbeat failed: ${err.message}`);
      });
    },
    Math.max(1000, (visibilitySeconds * 1000) / 3),
  );
  timer.unref(); // the work keeps the process alive, not its heartbeat
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
