// The builder's steps around a direct-API snapshot that are not the snapshot itself (./snapshot/session.ts):
// - clearing what an earlier, killed attempt of the same job left (a snapshot never completed);
// - bringing a stream's disk back from its last snapshot when this builder does not hold it;
// - telling register, since EBS sends no notification for these snapshots.
import { snapshotCompletedEvent } from '#core/release/register.ts';
import type { BuildJob } from '#events/aws.ts';
import type { BlockSnapshots, EventPublisher, Volumes } from '#ports';
import { BLOCK_SIZE, type BlockDigests } from './snapshot/digests.ts';
import { latestStreamSnapshot, restoreSnapshot } from './snapshot/restore.ts';
import type { DirectSnapshotOutcome } from './snapshot/session.ts';
import { fastPathOf } from './volume/loop.ts';
import { deviceBytes } from './volume/probe.ts';

const GiB = 2 ** 30;

/**
 * Deletes this job's snapshots that never completed (an attempt killed between StartSnapshot and
 * CompleteSnapshot): EBS would cancel them after their timeout, but nothing half-written should linger.
 */
export async function clearUnfinishedSnapshots(
  snapshots: BlockSnapshots,
  job: Pick<BuildJob, 'releaseId' | 'region'>,
  log?: (line: string) => void,
): Promise<string[]> {
  const found = await snapshots.findByTags({
    'stemcell:release': job.releaseId,
    'stemcell:region': job.region,
  });
  const cleared: string[] = [];
  for (const s of found) {
    if (s.state === 'completed') continue;
    await snapshots.delete(s.snapshotId);
    cleared.push(s.snapshotId);
    log?.(
      `${job.releaseId} in ${job.region}: deleted ${s.snapshotId}, ${s.state}, left by an earlier attempt`,
    );
  }
  return cleared;
}

/**
 * A builder that has no disk for the stream yet (`volumeId` just created, blank) restores it from the stream's
 * newest snapshot in the region, so the apply stays incremental and the next snapshot names that one as parent.
 * Returns the restored disk's digests, or undefined when the stream has no snapshot here yet.
 */
export async function restoreStream(
  deps: { snapshots: BlockSnapshots; volumes: Volumes; instanceId: string; log?: (line: string) => void },
  job: Pick<BuildJob, 'stream' | 'region'>,
  volume: { volumeId: string; sizeGiB: number },
): Promise<BlockDigests | undefined> {
  const latest = await latestStreamSnapshot(deps.snapshots, job.stream, job.region);
  if (!latest) return undefined;
  const sizeGiB = latest.volumeSizeGiB;
  if (!sizeGiB) throw new Error(`snapshot ${latest.snapshotId} of ${job.stream}: its size is unknown`);
  if (volume.sizeGiB < sizeGiB) await deps.volumes.grow(volume.volumeId, sizeGiB);
  const attachment = await deps.volumes.attach(volume.volumeId, deps.instanceId);
  try {
    if (attachment.kind !== 'block') return undefined;
    if ((await deviceBytes(attachment.devicePath)) < sizeGiB * GiB)
      throw new Error(
        `${attachment.devicePath} is smaller than snapshot ${latest.snapshotId} (${sizeGiB} GiB)`,
      );
    deps.log?.(`${job.stream} in ${job.region}: no disk on this builder; restoring ${latest.snapshotId}`);
    const restored = await restoreSnapshot(
      deps.snapshots,
      { snapshotId: latest.snapshotId, sizeBytes: sizeGiB * GiB },
      fastPathOf(attachment.devicePath),
    );
    deps.log?.(
      `${job.stream} in ${job.region}: restored ${restored.blocks} blocks (${(restored.bytes / 2 ** 20).toFixed(1)} MiB) in ${(restored.ms / 1000).toFixed(1)} s`,
    );
    return {
      snapshotId: latest.snapshotId,
      region: job.region,
      blockSize: BLOCK_SIZE,
      sizeBytes: restored.sizeBytes,
      pristine: true,
      digests: restored.digests,
    };
  } finally {
    await deps.volumes.detach(volume.volumeId, deps.instanceId);
  }
}

/**
 * "Snapshot Completed" for register. A failure to publish is logged, not thrown: the region is recorded as
 * snapshotting with the snapshot's id, which the reconciler registers (src/core/release/reconcile.ts).
 */
export async function announceSnapshot(
  publisher: EventPublisher,
  job: BuildJob,
  outcome: DirectSnapshotOutcome,
  at: Date,
  log?: (line: string) => void,
): Promise<void> {
  try {
    await publisher.publish([
      snapshotCompletedEvent({
        stream: job.stream,
        revision: job.revision,
        sequence: job.sequence,
        releaseId: job.releaseId,
        region: job.region,
        snapshotId: outcome.result.snapshotId,
        method: 'direct',
        ...(outcome.parentSnapshotId ? { parentSnapshotId: outcome.parentSnapshotId } : {}),
        changedBlocks: outcome.result.changedBlocks,
        bytesPut: outcome.result.bytesPut,
        completedAt: at.toISOString(),
      }),
    ]);
  } catch (err) {
    log?.(
      `${job.releaseId} in ${job.region}: Snapshot Completed for ${outcome.result.snapshotId} not published ` +
        `(${(err as Error).message}); the reconciler registers it`,
    );
  }
}
