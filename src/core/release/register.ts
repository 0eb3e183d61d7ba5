// register: EBS finished (or failed) a snapshot the builder took. Register it as an encrypted AMI named after
// the release; a redelivered notification finds the image by name and registers nothing new.
// Two events say a snapshot is done: EBS's "EBS Snapshot Notification" for CreateSnapshot, and the builder's own
// "Snapshot Completed" for a direct-API snapshot (EBS sends nothing for those). Both lead here the same way.
import { type SnapshotNotificationEnvelope, snapshotIdFromArn } from '#events/aws.ts';
import type { SnapshotCompleted, SnapshotCompletedEnvelope } from '#events/stemcell.ts';
import type { BusEvent, Tags } from '#ports';
import type { RegisterDeps } from '../deps.ts';
import { stemcellEvent } from '../model/emit.ts';
import { streamConfig } from '../model/errors.ts';
import { clientToken, imageName, releaseFromTags, releaseTags, TAG } from '../model/naming.ts';
import { recordBuildFailure } from './build-failure.ts';
import { moveRegion } from './region-state.ts';

export interface SnapshotNotification {
  region: string;
  snapshotId: string;
  result: 'succeeded' | 'failed';
  cause: string;
}

export function snapshotNotificationFromEvent(
  event: SnapshotNotificationEnvelope | SnapshotCompletedEnvelope,
): SnapshotNotification {
  if (event.source === 'stemcell') {
    // The builder waited for `completed` before sending it; the snapshot's region is in the detail (the event
    // itself is put on the central bus in the home region).
    return {
      region: event.detail.region,
      snapshotId: event.detail.snapshotId,
      result: 'succeeded',
      cause: '',
    };
  }
  return {
    region: event.region,
    snapshotId: snapshotIdFromArn(event.detail.snapshot_id),
    result: event.detail.result,
    cause: event.detail.cause,
  };
}

/** The builder's "Snapshot Completed" for a direct-API snapshot, checked against its contract. */
export function snapshotCompletedEvent(
  detail: Omit<SnapshotCompleted, 'version'>,
  eventBusName?: string,
): BusEvent {
  const event = stemcellEvent('Snapshot Completed', { version: 1, ...detail }, eventBusName ?? '');
  if (!eventBusName) delete event.eventBusName;
  return event;
}

export type RegisterResult =
  | { outcome: 'registered' | 'already-registered'; releaseId: string; imageId: string }
  | { outcome: 'failed'; releaseId: string }
  /** Not a stemcell snapshot (no release tags), or gone. */
  | { outcome: 'ignored'; reason: string };

/** Root device of every stemcell image; the builder partitions the volume for it. */
export const ROOT_DEVICE_NAME = '/dev/xvda';

export async function registerSnapshot(
  deps: RegisterDeps,
  notification: SnapshotNotification,
): Promise<RegisterResult> {
  const { region, snapshotId } = notification;
  const { images, snapshots } = deps.imaging(region);
  const snapshot = await snapshots.get(snapshotId);
  if (!snapshot) {
    deps.logger.warn('snapshot not found; nothing to register', { region, snapshotId });
    return { outcome: 'ignored', reason: `snapshot ${snapshotId} not found in ${region}` };
  }
  const release = releaseFromTags(snapshot.tags);
  if (!release)
    return { outcome: 'ignored', reason: `snapshot ${snapshotId} carries no stemcell release tags` };

  // A snapshot in error is final whatever the notification said: retrying would only reach the DLQ.
  if (notification.result === 'failed' || snapshot.state === 'error') {
    await recordBuildFailure(deps, {
      releaseId: release.releaseId,
      region,
      reason:
        notification.result === 'failed'
          ? `snapshot ${snapshotId} failed: ${notification.cause || 'no cause given'}`
          : `snapshot ${snapshotId} failed: EBS reports it in error state`,
      attempts: (await deps.releases.get(release.releaseId))?.regions[region]?.attempts ?? 1,
    });
    return { outcome: 'failed', releaseId: release.releaseId };
  }
  if (snapshot.state !== 'completed') {
    // EBS said succeeded but describe lags behind: fail so the message is redelivered.
    throw new Error(`snapshot ${snapshotId} in ${region} is ${snapshot.state}, not completed yet`);
  }

  const config = streamConfig(deps.config, release.stream, `snapshot ${snapshotId} in ${region}`);
  const tags: Tags = { ...releaseTags(release), [TAG.region]: region };
  // Provenance travels with the image: the tarball's SHA-256 and, when signed, the key that signed it.
  for (const key of [TAG.sha256, TAG.signer]) {
    const value = snapshot.tags[key];
    if (value) tags[key] = value;
  }
  const { imageId, created } = await images.register({
    name: imageName(release.stream, release.revision),
    description: `stemcell ${release.stream} ${release.revision} (sequence ${release.sequence})`,
    snapshotId,
    architecture: config.architecture,
    bootMode: config.bootMode,
    rootDeviceName: ROOT_DEVICE_NAME,
    tags,
    clientToken: clientToken('register', release.releaseId, region),
  });

  // Guarded: a late duplicate must not move a region the announce step already finished back to registering.
  await moveRegion(deps.releases, release.releaseId, region, {
    state: 'registering',
    snapshotId,
    imageId,
    updatedAt: deps.clock.now().toISOString(),
    ...(snapshot.deltaBytes !== undefined ? { deltaBytes: snapshot.deltaBytes } : {}),
    ...(snapshot.writtenBytes !== undefined ? { writtenBytes: snapshot.writtenBytes } : {}),
  });
  deps.logger.info(created ? 'image registered' : 'image already registered', {
    releaseId: release.releaseId,
    region,
    imageId,
    snapshotId,
  });
  return { outcome: created ? 'registered' : 'already-registered', releaseId: release.releaseId, imageId };
}
