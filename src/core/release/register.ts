// register: EBS finished (or failed) a snapshot the builder took. Register it as an encrypted AMI named after
// the release; a redelivered notification finds the image by name and registers nothing new.
import { type SnapshotNotificationEnvelope, snapshotIdFromArn } from '#events/aws.ts';
import type { Tags } from '#ports';
import type { RegisterDeps } from '../deps.ts';
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

export function snapshotNotificationFromEvent(event: SnapshotNotificationEnvelope): SnapshotNotification {
  return {
    region: event.region,
    snapshotId: snapshotIdFromArn(event.detail.snapshot_id),
    result: event.detail.result,
    cause: event.detail.cause,
  };
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
  const sha256 = snapshot.tags[TAG.sha256];
  if (sha256) tags[TAG.sha256] = sha256;
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
