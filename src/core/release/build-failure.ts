// A build that will not succeed: the builder gave up after its retries, EBS failed the snapshot, or EC2 failed
// the image. Record it on the release and tell the bus once.
import type { BusEvent, Clock, EventPublisher, ReleaseStore } from '#ports';
import type { BuildFailureDeps, Logger } from '../deps.ts';
import { stemcellEvent } from '../model/emit.ts';
import { ReleaseNotFoundError } from '../model/errors.ts';
import { moveRegion, NOT_FINAL } from './region-state.ts';

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

/** What failing a region needs: the builder has these too, without the stream configuration. */
export interface RegionFailureDeps {
  releases: Pick<ReleaseStore, 'get' | 'updateRegion'>;
  events: EventPublisher;
  clock: Clock;
  logger: Logger;
  /** The bus "Build Failed" goes to; absent: the publisher's own bus. */
  busName?: string;
}

/**
 * The one path by which a region fails, whoever finds the failure (the builder's last attempt, register, the
 * boot check, the reconciler). It publishes "Build Failed" first and records `failed` second: a crash or a
 * failed publish in between leaves the region not final, so a retry or the reconciler publishes again
 * (consumers tolerate duplicates), whereas recording first would lose the event for good.
 */
export async function failRegion(
  deps: RegionFailureDeps,
  failure: BuildFailure,
): Promise<BuildFailureResult> {
  const release = await deps.releases.get(failure.releaseId);
  if (!release) throw new ReleaseNotFoundError(failure.releaseId, `build failure in ${failure.region}`);
  const state = release.regions[failure.region]?.state ?? 'queued';
  if (!NOT_FINAL.includes(state)) {
    deps.logger.warn('build failure ignored: region already final', { ...failure, state });
    return { published: false };
  }
  const now = deps.clock.now();
  await deps.events.publish([
    buildFailedEvent(
      { ...release, region: failure.region },
      failure.reason,
      failure.attempts,
      now,
      deps.busName,
    ),
  ]);
  await moveRegion(deps.releases, release.releaseId, failure.region, {
    state: 'failed',
    reason: failure.reason,
    attempts: failure.attempts,
    updatedAt: now.toISOString(),
  });
  deps.logger.error('build failed', { ...failure });
  return { published: true };
}

/** A region failed, seen by a function that has the stream configuration (and so the bus's name). */
export function recordBuildFailure(
  deps: BuildFailureDeps,
  failure: BuildFailure,
): Promise<BuildFailureResult> {
  return failRegion({ ...deps, busName: deps.config.busName }, failure);
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
