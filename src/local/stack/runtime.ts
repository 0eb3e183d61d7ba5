// The local wiring of the one runtime shape (src/core/runtime.ts): what each function, the builder and the
// operator's commands get, over the emulated services. functions/commons/aws/ builds the same set on AWS.
import type {
  AnnounceDeps,
  BootCheckDeps,
  ExpireDeps,
  IngestDeps,
  Logger,
  ReconcileDeps,
  RegisterDeps,
  SubscriberDeps,
  SweepDeps,
  SyncSubscribersDeps,
} from '#core/deps.ts';
import { subscriberSettingsFromConfig } from '#core/deps.ts';
import { protectedImages, type RollbackDeps } from '#core/rollout/rollback.ts';
import type { RolloutDeps } from '#core/rollout/rollout.ts';
import type { BuilderServices, MemberRuntime, Runtime } from '#core/runtime.ts';
import type { EventPublisher } from '#ports';
import type { LocalServices } from './services.ts';

/** A member account's deployment, locally: no entry needs a first call. */
export interface LocalMemberRuntime extends MemberRuntime {
  subscriber(): SubscriberDeps;
}

export class LocalRuntime implements Runtime {
  readonly #services: LocalServices;
  readonly #logger: Logger;

  constructor(services: LocalServices, logger: Logger) {
    this.#services = services;
    this.#logger = logger;
  }

  ingest(): IngestDeps {
    const s = this.#services;
    return {
      ...this.#base(),
      releases: s.releases,
      events: s.centralBus,
      buildQueue: (region) => s.region(region).buildQueue,
      objects: s.objects,
    };
  }

  register(): RegisterDeps {
    const s = this.#services;
    return { ...this.#base(), releases: s.releases, events: s.centralBus, imaging: (r) => s.region(r) };
  }

  announce(): AnnounceDeps {
    const s = this.#services;
    return {
      ...this.rollout(),
      imaging: (r) => s.region(r),
      bootChecks: s.bootCheckQueue,
      defaultBootCheckMode: 'qemu',
    };
  }

  bootCheck(): BootCheckDeps {
    const checker = this.#services.bootChecker;
    return {
      ...this.announce(),
      bootChecker: (_region, mode) => {
        if (mode !== 'qemu')
          throw new Error(`boot check mode ${mode} needs AWS; local mode boots images under qemu`);
        return checker;
      },
    };
  }

  reconcile(): ReconcileDeps {
    return { ...this.announce(), buildDeadLetters: (r) => this.#services.region(r).buildDlq };
  }

  syncSubscribers(): SyncSubscribersDeps {
    return {
      ...this.#base(),
      organization: this.#services.organization,
      rules: this.#services.centralBus,
      catchUp: this.reconcile(),
    };
  }

  expire(): ExpireDeps {
    const s = this.#services;
    return {
      ...this.#base(),
      imaging: (r) => s.region(r),
      organization: s.organization,
      members: s.members,
      protectedImages: (stream, region) =>
        protectedImages({ releases: s.releases, rollouts: s.rollouts }, stream, region),
    };
  }

  /**
   * Local boot checks run under qemu, and the stack stops every machine of theirs when it stops: there is no
   * smoke instance to sweep, so each region's sweep finds none.
   */
  sweepSmokeInstances(): SweepDeps {
    return { config: this.#services.config, sweeper: () => ({ sweep: async () => [] }) };
  }

  builder(region: string): BuilderServices {
    const s = this.#services;
    const { volumes, snapshots } = s.region(region);
    return {
      kmsKeyId: s.config.kmsKeyId,
      objects: s.objects,
      volumes,
      snapshots,
      releases: s.releases,
      publisher: s.centralBus,
      clock: s.clock,
    };
  }

  rollout(): RolloutDeps {
    const s = this.#services;
    return {
      ...this.#base(),
      releases: s.releases,
      events: s.centralBus,
      organization: s.organization,
      rollouts: s.rollouts,
      timer: s.scheduler,
      alarms: s.alarms,
    };
  }

  rollback(): RollbackDeps {
    return {
      ...this.announce(),
      rollouts: this.#services.rollouts,
      buildQueue: (r) => this.#services.region(r).buildQueue,
    };
  }

  /** A member account's deployment; its subscriber reports on `events` (the account's own bus). */
  member(accountId: string, events: EventPublisher): LocalMemberRuntime {
    const s = this.#services;
    const deps: SubscriberDeps = {
      accountId,
      members: s.members,
      centralBus: s.centralBus.arn,
      events,
      settings: subscriberSettingsFromConfig(s.config),
      clock: s.clock,
      logger: this.#logger,
    };
    return { subscriber: () => deps };
  }

  #base() {
    return { config: this.#services.config, clock: this.#services.clock, logger: this.#logger };
  }
}
