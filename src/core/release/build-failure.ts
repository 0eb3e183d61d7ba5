// A build that will not succeed: the builder gave up after its retries, EBS failed the snapshot, or EC2 failed
// the image. Record it on the release and tell the bus once.
import type { BusEvent, RegionState } from '#ports';
import type { BuildFailureDeps } from '../deps.ts';
import { emit, stemcellEvent } from '../model/emit.ts';
import { ReleaseNotFoundError } from '../model/errors.ts';

export interface BuildFailure {
  releaseId: string;
  region: string;
  reason: string;
  /** Build attempts made (the queue's receive count for a job that exhausted its retries). */
  attempts: number;
}

export interface BuildFailureResult {
  /** False when the failure was already recorded, or the region has since been announced. */
  published: boolean;
}

const NOT_FINAL: RegionState[] = [
  'queued',
  'building',
  'snapshotting',
  'registering',
  'available',
  'booting',
];

export async function recordBuildFailure(
  deps: BuildFailureDeps,
  failure: BuildFailure,
): Promise<BuildFailureResult> {
  const release = await deps.releases.get(failure.releaseId);
  if (!release) throw new ReleaseNotFoundError(failure.releaseId, `build failure in ${failure.region}`);
  const state = release.regions[failure.region]?.state ?? 'queued';
  if (!NOT_FINAL.includes(state)) {
    deps.logger.warn('build failure ignored: region already final', { ...failure, state });
    return { published: false };
  }
  const now = deps.clock.now().toISOString();
  // Publish before recording: a crash in between republishes on retry (consumers tolerate duplicates),
  // whereas recording first could lose the event for good.
  await emit(
    deps.events,
    'Build Failed',
    {
      version: 1,
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      releaseId: release.releaseId,
      region: failure.region,
      reason: failure.reason,
      attempts: failure.attempts,
      failedAt: now,
    },
    deps.config.busName,
  );
  await deps.releases.updateRegion(
    release.releaseId,
    failure.region,
    { state: 'failed', reason: failure.reason, attempts: failure.attempts, updatedAt: now },
    { stateIn: NOT_FINAL },
  );
  deps.logger.error('build failed', { ...failure });
  return { published: true };
}

/**
 * The "Build Failed" event for a job, for callers that track the region state themselves (the builder worker
 * after its last attempt). Validated against the contract like every emitted event.
 */
export function buildFailedEvent(
  job: { releaseId: string; stream: string; revision: string; sequence: number; region: string },
  reason: string,
  attempts: number,
  at: Date,
  eventBusName?: string,
): BusEvent {
  const event = stemcellEvent(
    'Build Failed',
    {
      version: 1,
      stream: job.stream,
      revision: job.revision,
      sequence: job.sequence,
      releaseId: job.releaseId,
      region: job.region,
      reason: reason || 'no reason given',
      attempts,
      failedAt: at.toISOString(),
    },
    eventBusName ?? '',
  );
  if (!eventBusName) delete event.eventBusName;
  return event;
}
