// What each function gets in local mode: the same dependency objects functions/commons/aws-deps.ts builds on
// AWS, here over the emulated services.
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
import { protectedImages } from '#core/rollout/rollback.ts';
import type { EventPublisher } from '#ports';
import type { LocalServices } from './services.ts';

export class LocalDeps {
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
      ...this.#base(),
      releases: s.releases,
      events: s.centralBus,
      imaging: (r) => s.region(r),
      organization: s.organization,
      bootChecks: s.bootCheckQueue,
      defaultBootCheckMode: 'qemu',
      rollouts: s.rollouts,
      timer: s.scheduler,
      alarms: s.alarms,
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

  /** A member account's subscriber, reporting on `events` (its own bus). */
  subscriber(accountId: string, events: EventPublisher): SubscriberDeps {
    const s = this.#services;
    return {
      accountId,
      members: s.members,
      centralBus: s.centralBus.arn,
      events,
      settings: subscriberSettingsFromConfig(s.config),
      clock: s.clock,
      logger: this.#logger,
    };
  }

  #base() {
    return { config: this.#services.config, clock: this.#services.clock, logger: this.#logger };
  }
}
