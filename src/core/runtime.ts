// One shape for both worlds: what every function, the builder and the operator's commands get from the world
// they run in. The AWS wiring (functions/commons/aws/) and the local wiring (src/local/stack/runtime.ts) each
// implement these interfaces, so the type checker proves they supply the same set; each entry is built from
// the adapters of one world, and the core cannot tell which.
import type { BlockSnapshots, Clock, EventPublisher, ObjectStore, ReleaseStore, Volumes } from '#ports';
import type {
  AnnounceDeps,
  BootCheckDeps,
  ExpireDeps,
  IngestDeps,
  ReconcileDeps,
  RegisterDeps,
  SubscriberDeps,
  SweepDeps,
  SyncSubscribersDeps,
} from './deps.ts';
import type { RollbackDeps } from './rollout/rollback.ts';
import type { RolloutDeps } from './rollout/rollout.ts';

/** On AWS an entry may need a first call (the config in S3, the account id from STS); locally none does. */
export type Wired<T> = T | Promise<T>;

/**
 * What a builder of one region gets from the world: the tarball bucket, the region's volumes and snapshots, the
 * release table, the central bus and the key. The rest of BuilderDeps is the builder host's own (instance id,
 * workspace, state folder).
 */
export interface BuilderServices {
  kmsKeyId: string;
  objects: ObjectStore;
  volumes: Volumes;
  /** The builder writes direct-API snapshots as well as CreateSnapshot ones. */
  snapshots: BlockSnapshots;
  releases: ReleaseStore;
  publisher: EventPublisher;
  clock: Clock;
}

/** The management account's deployment: serverless.yml's functions, infra/region.yml's builders. */
export interface Runtime {
  ingest(): Wired<IngestDeps>;
  register(): Wired<RegisterDeps>;
  announce(): Wired<AnnounceDeps>;
  bootCheck(): Wired<BootCheckDeps>;
  reconcile(): Wired<ReconcileDeps>;
  syncSubscribers(): Wired<SyncSubscribersDeps>;
  expire(): Wired<ExpireDeps>;
  sweepSmokeInstances(): Wired<SweepDeps>;
  builder(region: string): Wired<BuilderServices>;
  /** `stemcell release resume|abort`: a release's waves. */
  rollout(): Wired<RolloutDeps>;
  /** `stemcell rollback|pin|unpin`: a new release pointing at older images, and pins. */
  rollback(): Wired<RollbackDeps>;
}

/** A member account's deployment (infra/member.yml): its subscriber. */
export interface MemberRuntime {
  subscriber(): Wired<SubscriberDeps>;
}

/** The entries of each interface, for tests that check an implementation has exactly these. */
export const RUNTIME_ENTRIES = [
  'ingest',
  'register',
  'announce',
  'bootCheck',
  'reconcile',
  'syncSubscribers',
  'expire',
  'sweepSmokeInstances',
  'builder',
  'rollout',
  'rollback',
] as const satisfies readonly (keyof Runtime)[];
export const MEMBER_RUNTIME_ENTRIES = ['subscriber'] as const satisfies readonly (keyof MemberRuntime)[];
