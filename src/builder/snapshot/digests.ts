// The per-block digests of a stream's last snapshot, kept with the stream's state (the volume's state
// partition, next to the apply manifest): comparing the disk after an apply with them tells which 512 KiB blocks
// the next snapshot must carry, without asking the service anything.
//
// A digest is the SHA-256 of the block. An all-zero block is recorded as 32 zero bytes instead: a first snapshot
// is then "the blocks that differ from an all-zero disk", and a block that became zero differs from its parent.
// `pristine` says the disk is still exactly what the digests describe, apart from the writes of the build under
// way: it is cleared before an apply touches the disk and set again once the next snapshot is complete, so a
// build that was killed midway is followed by a full comparison, never by the fast one.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

/** EBS direct APIs write 512 KiB blocks. */
export const BLOCK_SIZE = 512 * 1024;
export const DIGEST_BYTES = 32;
const ZERO_DIGEST = Buffer.alloc(DIGEST_BYTES);
const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

export interface BlockDigests {
  /** The snapshot the digests describe: the parent of the next one. */
  snapshotId: string;
  region: string;
  blockSize: number;
  sizeBytes: number;
  /** False from the start of an apply until the next snapshot completes. */
  pristine: boolean;
  /** DIGEST_BYTES per block, in block order; all zero for an all-zero block. */
  digests: Buffer;
}

export function blockCount(sizeBytes: number, blockSize = BLOCK_SIZE): number {
  return Math.ceil(sizeBytes / blockSize);
}

export function isZero(block: Buffer): boolean {
  return block.length === BLOCK_SIZE ? block.equals(ZERO_BLOCK) : block.every((b) => b === 0);
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** What the digest table records for a block: ZERO for an all-zero block, else its SHA-256. */
export function digestOf(block: Buffer): Buffer {
  return isZero(block) ? ZERO_DIGEST : sha256(block);
}

/** The digest recorded at `index`, or ZERO beyond the table (a disk that grew: the new room was zero). */
export function digestAt(digests: Buffer | undefined, index: number): Buffer {
  if (!digests || (index + 1) * DIGEST_BYTES > digests.length) return ZERO_DIGEST;
  return digests.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES);
}

/** An empty table for a disk of `sizeBytes`: every block zero, what a first snapshot is compared with. */
export function zeroDigests(sizeBytes: number): Buffer {
  return Buffer.alloc(blockCount(sizeBytes) * DIGEST_BYTES);
}

/**
 * CompleteSnapshot's LINEAR checksum: the SHA-256 of the written blocks' SHA-256 checksums, concatenated in
 * ascending block order, base64.
 */
export function linearChecksum(checksums: ReadonlyMap<number, Buffer>): string {
  const hash = createHash('sha256');
  for (const index of [...checksums.keys()].sort((a, b) => a - b))
    hash.update(checksums.get(index) as Buffer);
  return hash.digest('base64');
}

const SNAPSHOT_ID = /^snap-[0-9a-f]{8,17}$/;

export function encodeDigests(d: BlockDigests): Buffer {
  const header = {
    version: 1,
    snapshotId: d.snapshotId,
    region: d.region,
    blockSize: d.blockSize,
    sizeBytes: d.sizeBytes,
    pristine: d.pristine,
    blocks: d.digests.length / DIGEST_BYTES,
  };
  return gzipSync(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), d.digests]));
}

/** Parses a stored table; undefined (and why) when it is damaged or does not fit its own header. */
export function decodeDigests(stored: Buffer): { digests?: BlockDigests; problem?: string } {
  let raw: Buffer;
  try {
    raw = gunzipSync(stored);
  } catch (err) {
    return { problem: `not gzip: ${(err as Error).message}` };
  }
  const newline = raw.indexOf(0x0a);
  if (newline < 0) return { problem: 'no header line' };
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(raw.subarray(0, newline).toString('utf8')) as Record<string, unknown>;
  } catch {
    return { problem: 'header is not JSON' };
  }
  const digests = raw.subarray(newline + 1);
  const { version, snapshotId, region, blockSize, sizeBytes, pristine, blocks } = header;
  if (version !== 1) return { problem: `version ${String(version)}` };
  if (typeof snapshotId !== 'string' || !SNAPSHOT_ID.test(snapshotId))
    return { problem: `snapshot id ${String(snapshotId)}` };
  if (typeof region !== 'string' || typeof pristine !== 'boolean') return { problem: 'region or pristine' };
  if (blockSize !== BLOCK_SIZE) return { problem: `block size ${String(blockSize)}` };
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
    return { problem: `size ${String(sizeBytes)}` };
  if (blocks !== blockCount(sizeBytes) || digests.length !== blocks * DIGEST_BYTES)
    return {
      problem: `${digests.length / DIGEST_BYTES} digests for a ${sizeBytes}-byte disk of ${blockCount(sizeBytes)} blocks`,
    };
  return {
    digests: { snapshotId, region, blockSize, sizeBytes, pristine, digests: Buffer.from(digests) },
  };
}
