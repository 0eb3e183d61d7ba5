// Finding the blocks that changed: read blocks of the quiesced disk, compare each block's digest with the
// parent snapshot's, and hand on the ones that differ with their data and SHA-256 (what PutSnapshotBlock takes).
// Which blocks are read is the caller's: all of them (the simple way), or the candidates the filesystem names
// (the fast way, ./ext4-candidates.ts). Blocks not read keep the parent's digest.
import { open } from 'node:fs/promises';
import { BLOCK_SIZE, blockCount, DIGEST_BYTES, digestAt, digestOf, sha256 } from './digests.ts';

export interface ChangedBlock {
  index: number;
  /** BLOCK_SIZE bytes (a short last block is padded with zeros, as EBS wants whole blocks). */
  data: Buffer;
  /** SHA-256 of data. */
  checksum: Buffer;
}

export interface ScanReport {
  /** The digest table of the disk as it is now: the next build's parent table. */
  digests: Buffer;
  blocksRead: number;
  bytesRead: number;
  changedBlocks: number;
  ms: number;
}

export interface ScanOptions {
  sizeBytes: number;
  /** The parent's table; absent for a first snapshot (compared with an all-zero disk). */
  parent?: Buffer;
  /** Block indices to read, ascending; every block when absent. */
  candidates?: readonly number[];
  /** Reads kept in flight ahead of the consumer. @defaultValue 8 */
  readAhead?: number;
}

/**
 * Scans `devicePath` (a whole-disk block device or disk image). Iterate `changes` to the end, then read
 * `report()`. Reading stops when the consumer stops (a failed put): the device is closed either way.
 */
export function scanBlocks(
  devicePath: string,
  opts: ScanOptions,
): { changes: AsyncIterable<ChangedBlock>; report(): ScanReport } {
  const count = blockCount(opts.sizeBytes);
  const digests = Buffer.alloc(count * DIGEST_BYTES);
  for (let i = 0; i < count; i++) digestAt(opts.parent, i).copy(digests, i * DIGEST_BYTES);
  let blocksRead = 0;
  let changedBlocks = 0;
  let ms = 0;
  let done = false;

  async function* changes(): AsyncGenerator<ChangedBlock> {
    const started = performance.now();
    const handle = await open(devicePath, 'r');
    try {
      const indices = opts.candidates ?? Array.from({ length: count }, (_, i) => i);
      const read = async (index: number): Promise<Buffer> => {
        const offset = index * BLOCK_SIZE;
        const length = Math.min(BLOCK_SIZE, opts.sizeBytes - offset);
        // Zero-filled, so a short last block arrives padded.
        const buf = Buffer.alloc(BLOCK_SIZE);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(buf, filled, length - filled, offset + filled);
          if (bytesRead === 0)
            throw new Error(`${devicePath}: ended at ${offset + filled} bytes, expected ${opts.sizeBytes}`);
          filled += bytesRead;
        }
        return buf;
      };
      const ahead = Math.max(1, opts.readAhead ?? 8);
      const pending: Promise<Buffer>[] = [];
      let next = 0;
      const fill = () => {
        while (pending.length < ahead && next < indices.length) {
          const index = indices[next++] as number;
          if (index < 0 || index >= count)
            throw new Error(`block ${index} is outside ${devicePath} (${count} blocks)`);
          const p = read(index);
          p.catch(() => {}); // awaited in order below; a rejection must not surface as unhandled meanwhile
          pending.push(p);
        }
      };
      fill();
      for (let i = 0; i < indices.length; i++) {
        const index = indices[i] as number;
        const data = await (pending.shift() as Promise<Buffer>);
        fill();
        blocksRead++;
        const digest = digestOf(data);
        const before = digests.subarray(index * DIGEST_BYTES, (index + 1) * DIGEST_BYTES);
        if (digest.equals(before)) continue;
        digest.copy(digests, index * DIGEST_BYTES);
        changedBlocks++;
        // digestOf already hashed a non-zero block; a block that became zero is hashed here.
        yield { index, data, checksum: digest.every((b) => b === 0) ? sha256(data) : Buffer.from(digest) };
      }
      done = true;
    } finally {
      await handle.close();
      ms = performance.now() - started;
    }
  }

  return {
    changes: changes(),
    report: () => {
      if (!done) throw new Error(`scan of ${devicePath} did not finish`);
      return { digests, blocksRead, bytesRead: blocksRead * BLOCK_SIZE, changedBlocks, ms };
    },
  };
}
