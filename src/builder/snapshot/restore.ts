// A stream's disk brought back from its last snapshot, for a builder that does not hold it (a new builder, or
// one in another Availability Zone): ListSnapshotBlocks, then GetSnapshotBlock in parallel, each block checked
// against its checksum and written at its place in the blank disk image. The digest table falls out of it, so
// the next snapshot can name this one as its parent at once.
import { open } from 'node:fs/promises';
import type { BlockSnapshots, SnapshotInfo } from '#ports';
import { BLOCK_SIZE, blockCount, DIGEST_BYTES, digestOf, sha256 } from './digests.ts';

export interface RestoreReport {
  snapshotId: string;
  sizeBytes: number;
  digests: Buffer;
  blocks: number;
  bytes: number;
  ms: number;
}

/** The stream's newest completed snapshot in the region (the highest release sequence), if any. */
export async function latestStreamSnapshot(
  snapshots: BlockSnapshots,
  stream: string,
  region: string,
): Promise<SnapshotInfo | undefined> {
  const found = await snapshots.findByTags({ 'stemcell:stream': stream, 'stemcell:region': region });
  return found
    .filter((s) => s.state === 'completed')
    .sort((a, b) => Number(a.tags['stemcell:sequence'] ?? 0) - Number(b.tags['stemcell:sequence'] ?? 0))
    .at(-1);
}

/**
 * Writes the snapshot's blocks into `devicePath` (a blank disk image or device of at least the snapshot's size)
 * and returns the digest table of what was written.
 */
export async function restoreSnapshot(
  snapshots: BlockSnapshots,
  snapshot: { snapshotId: string; sizeBytes: number },
  devicePath: string,
  opts: { concurrency?: number; onProgress?: (blocks: number) => void } = {},
): Promise<RestoreReport> {
  const started = performance.now();
  const count = blockCount(snapshot.sizeBytes);
  const digests = Buffer.alloc(count * DIGEST_BYTES);
  const concurrency = Math.max(1, opts.concurrency ?? 32);
  const handle = await open(devicePath, 'r+');
  let blocks = 0;
  try {
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    for await (const ref of snapshots.listBlocks(snapshot.snapshotId)) {
      if (failure) break;
      if (ref.index < 0 || ref.index >= count)
        throw new Error(
          `snapshot ${snapshot.snapshotId}: block ${ref.index} lies outside its ${count} blocks`,
        );
      const p = (async () => {
        const { data, checksum } = await snapshots.getBlock(snapshot.snapshotId, ref);
        if (data.length !== BLOCK_SIZE || sha256(data).toString('base64') !== checksum)
          throw new Error(`snapshot ${snapshot.snapshotId}: block ${ref.index} does not match its checksum`);
        await handle.write(data, 0, data.length, ref.index * BLOCK_SIZE);
        digestOf(data).copy(digests, ref.index * DIGEST_BYTES);
        blocks++;
        opts.onProgress?.(blocks);
      })()
        .catch((err) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    await handle.sync();
  } finally {
    await handle.close();
  }
  return {
    snapshotId: snapshot.snapshotId,
    sizeBytes: snapshot.sizeBytes,
    digests,
    blocks,
    bytes: blocks * BLOCK_SIZE,
    ms: Math.round(performance.now() - started),
  };
}
