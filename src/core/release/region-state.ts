// A release's state in one region, as one table. Every write of a region's state goes through moveRegion(),
// which turns the table into a conditional write (updateRegion's `stateIn`): a duplicate S3 event, an SQS
// redelivery or an EventBridge retry then cannot move a region backwards, whoever writes — the builder included.
// docs/architecture.md draws the diagram from this table (test/unit/core/release/region-state.test.ts checks it).
import type { RegionRecord, RegionState, ReleaseStore } from '#ports';

/** The states in the order a region goes through them; `failed` ends a region from any state before `announced`. */
export const REGION_STATES = [
  'queued',
  'building',
  'snapshotting',
  'registering',
  'available',
  'booting',
  'announced',
  'failed',
] as const satisfies readonly RegionState[];

/** The states a region may be in when a write moves it to (or updates it in) each state. */
export const TRANSITIONS: Readonly<Record<RegionState, readonly RegionState[]>> = {
  // A job waiting again: a retry after a failed attempt, or the builder's data folder full.
  queued: ['queued', 'building'],
  // The builder claims the job; `failed` → `building` is `release resume` rebuilding a failed region.
  building: ['queued', 'building', 'failed'],
  snapshotting: ['building', 'snapshotting'],
  // The snapshot is registered as an image (register λ): from any state before the image existed.
  registering: ['queued', 'building', 'snapshotting', 'registering'],
  // An image held back (pinned stream, halted rollout) or a rollback's reused image, waiting to be announced.
  available: ['queued', 'building', 'snapshotting', 'registering', 'available', 'booting'],
  // The boot gate asked for a check; a `booting` region's check record is updated in place.
  booting: ['queued', 'building', 'snapshotting', 'registering', 'available', 'booting'],
  announced: ['queued', 'building', 'snapshotting', 'registering', 'available', 'booting'],
  failed: ['queued', 'building', 'snapshotting', 'registering', 'available', 'booting'],
};

/** States a region can still leave: everything but `announced` and `failed`. */
export const NOT_FINAL: readonly RegionState[] = TRANSITIONS.failed;

export function mayMove(from: RegionState, to: RegionState): boolean {
  return TRANSITIONS[to].includes(from);
}

/**
 * Moves a region to `record.state`, or updates it in place when `record` carries no state (`inState` says which
 * state it must be in). Returns false when the region was in a state the table does not allow: someone else
 * moved it first, and the caller decides what that means.
 */
export function moveRegion(
  releases: Pick<ReleaseStore, 'updateRegion'>,
  releaseId: string,
  region: string,
  record: Partial<RegionRecord> & { state: RegionState },
): Promise<boolean>;
export function moveRegion(
  releases: Pick<ReleaseStore, 'updateRegion'>,
  releaseId: string,
  region: string,
  record: Partial<Omit<RegionRecord, 'state'>>,
  inState: RegionState,
): Promise<boolean>;
export function moveRegion(
  releases: Pick<ReleaseStore, 'updateRegion'>,
  releaseId: string,
  region: string,
  record: Partial<RegionRecord>,
  inState?: RegionState,
): Promise<boolean> {
  const stateIn = record.state ? [...TRANSITIONS[record.state]] : [inState as RegionState];
  return releases.updateRegion(releaseId, region, record, { stateIn });
}

/** Figures about a region's build (snapshot id, sizes, timings) that change no state, written whatever the state. */
export function recordRegionFigures(
  releases: Pick<ReleaseStore, 'updateRegion'>,
  releaseId: string,
  region: string,
  figures: Partial<Omit<RegionRecord, 'state'>>,
): Promise<boolean> {
  return releases.updateRegion(releaseId, region, figures);
}

/** The diagram docs/architecture.md shows: one line per state, with the states it may be reached from. */
export function transitionTable(): string {
  const width = Math.max(...REGION_STATES.map((s) => s.length));
  return REGION_STATES.map((to) => `${to.padEnd(width)} ◄─ ${TRANSITIONS[to].join(', ')}`).join('\n');
}
