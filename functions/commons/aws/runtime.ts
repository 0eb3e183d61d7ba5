// The AWS wiring of the one runtime shape (src/core/runtime.ts): what each function, the builder and the
// operator's commands get, over the AWS adapters of one Lambda container. src/local/stack/runtime.ts builds the
// same set over the emulated services; the type checker holds both to the same interfaces.
import { awsBuilderServices } from '#aws/builder-services.ts';
import { EventBridgeBusRules } from '#aws/event-bus.ts';
import { KmsKeyService } from '#aws/key-service.ts';
import { Ec2LaunchModel } from '#aws/launch-model.ts';
import { AwsMemberAccounts } from '#aws/member-accounts.ts';
import {
  type AnnounceDeps,
  type BaseDeps,
  type BootCheckDeps,
  type ExpireDeps,
  type IngestDeps,
  type ReconcileDeps,
  type RegisterDeps,
  type SubscriberDeps,
  type SubscriberSettings,
  type SweepDeps,
  type SyncSubscribersDeps,
  subscriberSettingsFromConfig,
  systemClock,
} from '#core/deps.ts';
import { fanOutPublisher } from '#core/members/fan-out.ts';
import { ApiPacer, EVENTBRIDGE, ORGANIZATIONS } from '#core/members/quotas.ts';
import { protectedImages, type RollbackDeps } from '#core/rollout/rollback.ts';
import type { RolloutDeps } from '#core/rollout/rollout.ts';
import type { BuilderServices, MemberRuntime, Runtime } from '#core/runtime.ts';
import type { EnvOf, FunctionName } from '../env.ts';
import { powertools } from '../powertools.ts';
import { AwsContainer } from './container.ts';
import { AwsServices } from './services.ts';

/** Entries that read the release table: the environment of `fn`, with STEMCELL_TABLE set. */
type TableEnv = EnvOf<'register'>;

export class AwsRuntime implements Runtime {
  readonly container: AwsContainer;
  readonly #services: AwsServices;

  constructor(container = new AwsContainer()) {
    this.container = container;
    this.#services = new AwsServices(container);
  }

  /** Function `fn`'s environment (env.ts), parsed once. */
  env<F extends FunctionName>(fn: F): EnvOf<F> {
    return this.container.env(fn);
  }

  async ingest(): Promise<IngestDeps> {
    const e = this.env('ingest');
    const b = await this.#base(e);
    return {
      ...b,
      buildQueue: this.#services.regionQueues(e.STEMCELL_BUILD_QUEUE_PREFIX, ''),
      objects: this.#services.bucket(b.config.bucket),
      signingKeys: this.#services.signingKeys(),
    };
  }

  async register(): Promise<RegisterDeps> {
    return { ...(await this.#base(this.env('register'))), imaging: this.#services.imaging };
  }

  announce(): Promise<AnnounceDeps> {
    return this.#announce(this.env('announce'));
  }

  async bootCheck(): Promise<BootCheckDeps> {
    const e = this.env('boot-check');
    const deps = await this.#announce(e);
    const smoke = this.#services.smokeInstances(
      e.STEMCELL_SMOKE_PARAMETER,
      this.#services.bucket(deps.config.bucket),
    );
    return {
      ...deps,
      bootChecker(region, mode) {
        if (mode !== 'instance')
          throw new Error(`boot check mode ${mode} runs in local mode only; on AWS: instance`);
        return smoke(region);
      },
    };
  }

  async reconcile(): Promise<ReconcileDeps> {
    const e = this.env('reconcile');
    return {
      ...(await this.#announce(e)),
      buildDeadLetters: this.#services.regionQueues(e.STEMCELL_BUILD_QUEUE_PREFIX, '-dlq'),
      // A rollback a crash interrupted: its rebuilt regions' jobs are sent again.
      buildQueue: this.#services.regionQueues(e.STEMCELL_BUILD_QUEUE_PREFIX, ''),
      ...(await this.#ownAccount(e)),
    };
  }

  async syncSubscribers(): Promise<SyncSubscribersDeps> {
    const e = this.env('sync-subscribers');
    const config = await this.container.config();
    const own = await this.#ownAccount(e);
    // Thousands of control-plane calls at 10,000 accounts: each API stays under its rate.
    const pacer = new ApiPacer(EVENTBRIDGE.controlPlanePerSecond);
    // Member buses trust the Organization, not our account id: EventBridge needs a role on each target.
    const targets = {
      ...(e.STEMCELL_SUBSCRIBER_ROLE_ARN ? { targetRoleArn: e.STEMCELL_SUBSCRIBER_ROLE_ARN } : {}),
      ...(e.STEMCELL_SUBSCRIBER_DLQ_ARN ? { deadLetterArn: e.STEMCELL_SUBSCRIBER_DLQ_ARN } : {}),
    };
    return {
      config,
      clock: systemClock,
      logger: powertools.logger,
      organization: this.#services.organization(new ApiPacer(ORGANIZATIONS.requestsPerSecond)),
      ...own,
      // Late joiners: the reconciler's delivery of the newest images, with this function's role.
      // Waves and pins decide what a joiner may hear (it reads rollout items); it never starts a bake timer.
      catchUp: { ...(await this.#announceReads(e)), ...own },
      rules: new EventBridgeBusRules({
        eventBusName: config.busName,
        client: this.container.clients.eventBridge(this.container.homeRegion),
        pacer,
        ...targets,
      }),
      fanout: this.#services.fanoutBuses(config.busName, { pacer, ...targets }),
    };
  }

  async expire(): Promise<ExpireDeps> {
    const e = this.env('expire');
    const stores = {
      releases: this.#services.releases(e.STEMCELL_TABLE),
      rollouts: this.#services.rollouts(e.STEMCELL_TABLE),
    };
    return {
      protectedImages: (stream, r) => protectedImages(stores, stream, r),
      config: await this.container.config(),
      clock: systemClock,
      logger: powertools.logger,
      imaging: this.#services.imaging,
      organization: this.#services.organization(),
      // The home account's own launch templates are read directly; only other accounts need the member role.
      members: new AwsMemberAccounts({
        clients: this.container.clients.with({
          ownAccountId: await this.container.ownAccountId(),
          roleSessionName: e.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell-expire',
          ...(e.STEMCELL_MEMBER_ROLE_NAME ? { memberRoleName: e.STEMCELL_MEMBER_ROLE_NAME } : {}),
        }),
      }),
    };
  }

  async sweepSmokeInstances(): Promise<SweepDeps> {
    this.env('sweep-smoke-instances');
    return {
      config: await this.container.config(),
      sweeper: (region) => this.#services.smokeSweeper(region),
    };
  }

  async builder(region: string): Promise<BuilderServices> {
    const e = this.env('builder');
    const config = await this.container.config();
    return awsBuilderServices(
      this.container.clients,
      {
        homeRegion: this.container.homeRegion,
        tableName: e.STEMCELL_TABLE,
        bucket: config.bucket,
        centralBus: config.busName,
        kmsKeyId: config.kmsKeyId,
      },
      region,
    );
  }

  async rollout(): Promise<RolloutDeps> {
    const e = this.env('rollout');
    const deps = await this.#base(e);
    return {
      ...deps,
      organization: this.#services.organization(),
      rollouts: this.#services.rollouts(e.STEMCELL_TABLE),
      timer: this.#services.bakeTimer(e),
      alarms: this.#services.alarms(),
    };
  }

  async rollback(): Promise<RollbackDeps> {
    const e = this.env('rollback');
    return {
      ...(await this.#announce(e)),
      rollouts: this.#services.rollouts(e.STEMCELL_TABLE),
      buildQueue: this.#services.regionQueues(e.STEMCELL_BUILD_QUEUE_PREFIX, ''),
    };
  }

  async #base(e: TableEnv): Promise<BaseDeps & Pick<RegisterDeps, 'releases' | 'events'>> {
    const config = await this.container.config();
    return {
      config,
      clock: systemClock,
      logger: powertools.logger,
      releases: this.#services.releases(e.STEMCELL_TABLE),
      events: this.#services.publisher(config.busName),
    };
  }

  /** announce's deps without the bake timer: what reads releases, rollouts and pins (late joiners) needs. */
  async #announceReads(e: TableEnv): Promise<AnnounceDeps> {
    const base = await this.#base(e);
    return {
      ...base,
      // Subscriber events go to every fan-out bus too, where the rules to member accounts are.
      events: fanOutPublisher(
        base.events,
        this.#services.fanoutBuses(base.config.busName),
        base.config.busName,
      ),
      imaging: this.#services.imaging,
      organization: this.#services.organization(),
      defaultBootCheckMode: 'instance',
      ...this.#services.bootChecks(e.STEMCELL_BOOT_CHECK_QUEUE_URL),
      rollouts: this.#services.rollouts(e.STEMCELL_TABLE),
      alarms: this.#services.alarms(),
    };
  }

  async #announce(e: EnvOf<'announce'>): Promise<AnnounceDeps> {
    return { ...(await this.#announceReads(e)), timer: this.#services.bakeTimer(e) };
  }

  /** The account the central bus is in, and the member accounts' bus name when the deployment sets one. */
  async #ownAccount(e: TableEnv): Promise<{ ownAccountId: string; memberBusName?: string }> {
    return {
      ownAccountId: await this.container.ownAccountId(),
      ...(e.STEMCELL_MEMBER_BUS_NAME ? { memberBusName: e.STEMCELL_MEMBER_BUS_NAME } : {}),
    };
  }
}

/** A member account's deployment (infra/member.yml): its subscriber acts in its own account. */
export class AwsMemberRuntime implements MemberRuntime {
  readonly container: AwsContainer;

  constructor(container = new AwsContainer()) {
    this.container = container;
  }

  /** Its own id from STS, its settings from its own deployment (or the shared config, when given inline). */
  async subscriber(): Promise<SubscriberDeps> {
    const e = this.container.env('subscriber');
    const account = await this.container.ownAccountId();
    let settings: (stream: string) => SubscriberSettings;
    if (e.STEMCELL_CONFIG) {
      settings = subscriberSettingsFromConfig(await this.container.config());
    } else {
      const prefix = e.STEMCELL_SSM_PREFIX;
      const instanceRefresh = e.STEMCELL_INSTANCE_REFRESH !== 'false';
      settings = () => ({
        instanceRefresh,
        ...(prefix ? { ssmParameter: `${prefix}{stream}/{region}/image-id` } : {}),
      });
    }
    // The subscriber acts in its own account, with its own credentials: no role to assume.
    const own = this.container.clients.with({ ownAccountId: account });
    return {
      accountId: account,
      members: new AwsMemberAccounts({ clients: own }),
      // The launch check before every move asks EC2 and KMS as this account.
      launch: new Ec2LaunchModel({
        ec2: (id, region) => own.ec2(region, id),
        keys: (id, region) => new KmsKeyService({ client: own.kms(region, id) }),
      }),
      centralBus: e.STEMCELL_CENTRAL_BUS_ARN,
      events: new AwsServices(this.container).publisher(),
      settings,
      trustedSigners: e.STEMCELL_TRUSTED_SIGNERS,
      clock: systemClock,
      logger: powertools.logger,
    };
  }
}
