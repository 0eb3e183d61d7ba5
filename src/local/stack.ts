// The whole flow of DESIGN.md on one machine: local adapters behind the ports, wired the way serverless.yml,
// infra/region.yml and infra/member.yml wire the AWS services. The handlers are the same modules Lambda runs,
// invoked with the same event envelopes; the builder runs the same worker as the EC2 agent.
//
// This file is the façade; the parts are in ./stack/: the emulated services (services.ts), what each function
// gets (deps.ts), the wiring of each template (serverless.ts, region.ts, member.ts), the Lambda runtime
// (lambda.ts), the builder fleet (builders.ts), and the recovery of a killed run (recovery.ts).
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DeviceWorkspace } from '#builder/device.ts';
import type { StemcellConfig } from '#config/schema.ts';
import type { ExpireOptions } from '#core/images/expire.ts';
import { defaultInstanceType } from '#core/images/instance-types.ts';
import type { ReconcileOptions, ReconcileReport } from '#core/release/reconcile.ts';
import type { BuildJob } from '#events/aws.ts';
import { createPowertools, type Powertools } from '#functions/commons/powertools.ts';
import { createHandler as createExpire } from '#functions/expire/handler.ts';
import { createHandler as createReconcile } from '#functions/reconcile/handler.ts';
import { createHandler as createSyncSubscribers } from '#functions/sync-subscribers/handler.ts';
import type { Clock, StoredObject } from '#ports';
import { realSleep, systemClock } from './clock.ts';
import type { LocalEventBus } from './event-bus.ts';
import type { LocalFifoQueue } from './fifo-queue.ts';
import { releaseDataFolder } from './housekeeping.ts';
import { stemcellKeyPolicy } from './key-policy.ts';
import { BuilderFleet, type BuildProgress } from './stack/builders.ts';
import { LambdaHost, lambdaContext, OperatorLog } from './stack/lambda.ts';
import { type MemberProgress, MemberStacks } from './stack/member.ts';
import { recoverPreviousRun } from './stack/recovery.ts';
import { wireRegionForwarding } from './stack/region.ts';
import { LocalRuntime } from './stack/runtime.ts';
import { startServerlessFunctions, wireServerlessRules } from './stack/serverless.ts';
import { LocalServices } from './stack/services.ts';

export { withHeartbeat } from './stack/builders.ts';
export type { LocalRegion } from './stack/services.ts';

export type StackProgress = BuildProgress | MemberProgress;

export interface LocalStackOptions {
  dataDir: string;
  config: StemcellConfig;
  volumeBackend?: 'auto' | 'block' | 'directory';
  /** Build attempts before a job goes to the region's DLQ (SQS maxReceiveCount). @defaultValue 3 */
  maxReceiveCount?: number;
  onProgress?: (event: StackProgress) => void;
  /** Lines for the operator (volume backend, grows); stderr by default. */
  log?: (line: string) => void;
  clock?: Clock;
  /** Builder workers per region: different streams build in parallel. @defaultValue 2 */
  buildersPerRegion?: number;
  /** Test hook: runs before a member account's subscriber handles a batch (the status page test slows it). */
  beforeSubscriber?: (accountId: string) => Promise<void>;
  /** How often the reconciler runs besides at start (0: only at start and when called). @defaultValue 15 s */
  reconcileIntervalMs?: number;
  /** How often expire runs (0: never on its own; `stemcell dev` runs it every minute). @defaultValue 0 */
  expireIntervalMs?: number;
  /** The reconciler's timeouts (when an account that has not reported gets "Image Ready" again). */
  reconcile?: ReconcileOptions;
  /** Free bytes a build needs in the data folder before it starts. @defaultValue 256 MiB */
  dataFolderNeededBytes?: number;
  /** Test hook: runs before each build attempt; a throw fails that attempt like a builder crash would. */
  beforeBuild?: (job: BuildJob) => void | Promise<void>;
  /**
   * How long member accounts' instance refreshes run (clock time; 0: they end as they start). Longer, the
   * subscriber reports "started" and Auto Scaling's end event reports the outcome, as on AWS. @defaultValue 0
   */
  instanceRefreshSeconds?: number;
}

const RECONCILE_INTERVAL_MS = 15_000;

export class LocalStack extends LocalServices {
  /** What each function, the builders and the operator's commands get, over these services. */
  readonly runtime: LocalRuntime;
  readonly #options: LocalStackOptions;
  readonly #tools: Powertools;
  readonly #log: OperatorLog;
  readonly #lambda: LambdaHost;
  readonly #members: MemberStacks;
  readonly #builders: BuilderFleet;
  #watcher: { stop(): void } | undefined;
  #reconciling: Promise<void> | undefined;

  constructor(options: LocalStackOptions) {
    const log = new OperatorLog(options.log ?? ((line: string) => void process.stderr.write(`${line}\n`)));
    const maxReceiveCount = options.maxReceiveCount ?? 3;
    // Auto Scaling's events of a member account reach its bus, which the member wiring creates on first use.
    let members: MemberStacks | undefined;
    super({
      dataDir: options.dataDir,
      config: options.config,
      clock: options.clock ?? systemClock,
      log: log.line,
      ...(options.volumeBackend ? { volumeBackend: options.volumeBackend } : {}),
      maxReceiveCount,
      instanceRefreshSeconds: options.instanceRefreshSeconds ?? 0,
      memberBus: (accountId) => {
        if (!members) throw new Error(`member account ${accountId}: its bus is not wired yet`);
        return members.bus(accountId);
      },
    });
    this.#options = options;
    this.#log = log;
    this.#tools = createPowertools({ quiet: true });
    this.runtime = new LocalRuntime(this, this.#tools.logger);
    this.#lambda = new LambdaHost({ logger: this.#tools.logger, log });
    members = new MemberStacks({
      services: this,
      lambda: this.#lambda,
      runtime: this.runtime,
      tools: this.#tools,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.beforeSubscriber ? { beforeSubscriber: options.beforeSubscriber } : {}),
    });
    this.#members = members;
    this.#builders = new BuilderFleet({
      services: this,
      runtime: this.runtime,
      lambda: this.#lambda,
      workspace: new DeviceWorkspace({ mountRoot: join(options.dataDir, 'mnt'), log: log.line }),
      log,
      maxReceiveCount,
      buildersPerRegion: options.buildersPerRegion ?? 2,
      ...(options.dataFolderNeededBytes !== undefined
        ? { dataFolderNeededBytes: options.dataFolderNeededBytes }
        : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      ...(options.beforeBuild ? { beforeBuild: options.beforeBuild } : {}),
    });
    wireRegionForwarding(this);
    wireServerlessRules(this, this.runtime, this.#tools);
  }

  /** Each member account's FIFO queue between its bus rule and its subscriber (infra/member.yml). */
  get subscriberQueues(): ReadonlyMap<string, LocalFifoQueue> {
    return this.#members.queues;
  }

  /** Seeds member accounts from the config, creates the customer key, reconciles subscribers, starts the workers. */
  async start(): Promise<void> {
    if (this.#lambda.running) return;
    this.#lambda.start();
    await recoverPreviousRun(this, this.#log.line);
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
    if (resumed > 0)
      this.#log.line(`event buses: ${resumed} delivery(ies) in flight in a previous run resumed`);
    this.#builders.start();
    startServerlessFunctions(this.#lambda, this, this.runtime, this.#tools);
    // Auto Scaling's side: refreshes that ended since they started put their end events on the member's bus.
    this.#lambda.poll(250, () => this.members.deliverRefreshEvents(), 'instance refresh end events');
    await this.#reconcileSafely();
    const expireEvery = this.#options.expireIntervalMs ?? 0;
    // `keep` holds in local mode too: expire on a schedule, as EventBridge Scheduler runs it on AWS.
    if (expireEvery > 0)
      this.#lambda.every(expireEvery, () =>
        this.expire().then(
          () => {},
          (err: Error) => this.#log.once(`expire failed: ${err.message}`),
        ),
      );
    const every = this.#options.reconcileIntervalMs ?? RECONCILE_INTERVAL_MS;
    if (every > 0) this.#lambda.every(every, () => this.#reconcileSafely());
  }

  /** reconcile λ: finishes what a crash interrupted (also run at start and on a timer). */
  async reconcile(options: ReconcileOptions = {}): Promise<ReconcileReport> {
    return createReconcile(this.runtime.reconcile(), this.#tools, { ...this.#options.reconcile, ...options })(
      {},
      lambdaContext('stemcell-reconcile'),
    );
  }

  async #reconcileSafely(): Promise<void> {
    if (this.#reconciling) return this.#reconciling;
    const log = this.#log;
    this.#reconciling = this.reconcile()
      .then((report) => {
        for (const f of report.failed) log.line(`reconcile: ${f.releaseId} ${f.region} failed: ${f.reason}`);
        for (const r of report.registered)
          log.line(`reconcile: ${r.releaseId} ${r.region}: registered ${r.imageId}`);
        for (const a of report.announced)
          log.line(`reconcile: ${a.releaseId} ${a.region}: announced ${a.imageId}`);
        if (report.redelivered.length > 0)
          log.line(`reconcile: "Image Ready" delivered again to ${report.redelivered.length} account(s)`);
      })
      .catch((err: Error) => log.once(`reconcile failed: ${err.message}`))
      .finally(() => {
        this.#reconciling = undefined;
      });
    return this.#reconciling;
  }

  /** `stemcell dev`: also pick up objects dropped into the bucket by another process (`stemcell publish`). */
  watchBucket(intervalMs = 500): void {
    this.#watcher ??= this.objects.watch(intervalMs, (err) =>
      this.#tools.logger.error('bucket watch failed', { err }),
    );
  }

  async stop(): Promise<void> {
    const stopped = this.#lambda.stop();
    await this.#reconciling;
    this.#watcher?.stop();
    await stopped;
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
      if (!queued && this.#lambda.busy === 0) {
        await this.registry.drain();
        if (this.#lambda.busy === 0) return;
      }
      await realSleep(20);
    }
  }

  /** sync-subscribers λ: rules on the central bus for every account in scope (also run by `start`). */
  async syncSubscribers(): Promise<void> {
    for (const account of await this.organization.listAccounts()) {
      this.memberBus(account.id);
      await this.#members.grantKeyToAutoScaling(account.id);
    }
    // Late joiners (an account new to the audience gets the newest announced image of each of its streams):
    // the handler has the reconciler deliver them, as on AWS.
    await createSyncSubscribers(this.runtime.syncSubscribers(), this.#tools)(
      {},
      lambdaContext('sync-subscribers'),
    );
  }

  /** expire λ (7 days of grace between deprecation and deregistration unless told otherwise). */
  async expire(options: ExpireOptions = {}) {
    return createExpire(this.runtime.expire(), this.#tools, options)({}, lambdaContext('expire'));
  }

  /** A member account's default bus, with what infra/member.yml deploys in it (./stack/member.ts). */
  memberBus(accountId: string): LocalEventBus {
    return this.#members.bus(accountId);
  }
}
