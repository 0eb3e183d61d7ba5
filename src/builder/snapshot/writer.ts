// Writing a snapshot with the EBS direct APIs, the same code over the AWS adapter and the local store:
// StartSnapshot (on the parent, or encrypted with the stream's key for a first snapshot), PutSnapshotBlock for
// the changed blocks with bounded concurrency, CompleteSnapshot with ChangedBlocksCount and the LINEAR checksum,
// then a wait for `completed` with backoff. A snapshot that fails anywhere after it was started is deleted, so
// nothing half-written is ever registered; the error says which snapshot, which step, and that it was deleted.
import { DependencyError } from '#errors';
import type { BlockSnapshots, SnapshotInfo, StartSnapshotInput, Tags } from '#ports';
import { BLOCK_SIZE, linearChecksum } from './digests.ts';
import type { ChangedBlock } from './scan.ts';

export type Sleep = (ms: number) => Promise<void>;
const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export interface DirectWriteOptions {
  /**
   * PutSnapshotBlock calls in flight. coldsnap uses 64; bench/aws-model.ts shows where the gain stops against
   * the documented per-snapshot rate. @defaultValue 64
   */
  concurrency?: number;
  /** Minutes before EBS cancels a snapshot left unfinished (a killed builder). @defaultValue 60 */
  timeoutMinutes?: number;
  /** The wait for `completed` after CompleteSnapshot. */
  wait?: {
    /** @defaultValue 500 */
    firstDelayMs?: number;
    /** @defaultValue 5_000 */
    maxDelayMs?: number;
    /** @defaultValue 600_000 (EBS gives no bound; ten minutes of `pending` is a failure to report) */
    maxWaitMs?: number;
  };
  sleep?: Sleep;
  /** Progress for the operator: blocks put so far. */
  onProgress?: (p: { put: number; bytes: number }) => void;
}

export interface DirectSnapshotResult {
  snapshotId: string;
  parentSnapshotId?: string;
  changedBlocks: number;
  bytesPut: number;
  checksum: string;
  /** Start to completed, and the parts of it. */
  ms: { start: number; puts: number; complete: number; wait: number; total: number };
}

/** A snapshot that failed after StartSnapshot (and was deleted): the service's or the disk's fault, retryable. */
export class DirectSnapshotError extends DependencyError {
  readonly snapshotId: string | undefined;
  constructor(message: string, snapshotId: string | undefined, options?: { cause?: unknown }) {
    super(message, options);
    this.snapshotId = snapshotId;
  }
}

/**
 * Starts a snapshot, puts every block `changes` yields, completes and waits for it. `changes` is read as the
 * puts go (a scan can feed it while earlier blocks are in flight).
 */
export async function writeDirectSnapshot(
  snapshots: BlockSnapshots,
  input: Omit<StartSnapshotInput, 'timeoutMinutes'> & { tags: Tags },
  changes: AsyncIterable<ChangedBlock>,
  opts: DirectWriteOptions = {},
): Promise<DirectSnapshotResult> {
  const sleep = opts.sleep ?? realSleep;
  const concurrency = Math.max(1, opts.concurrency ?? 64);
  const t0 = performance.now();
  const started = await snapshots.start({ ...input, timeoutMinutes: opts.timeoutMinutes ?? 60 });
  const snapshotId = started.snapshotId;
  const tStarted = performance.now();
  let step = 'putting blocks';
  try {
    if (started.blockSize !== BLOCK_SIZE)
      throw new Error(`the service writes ${started.blockSize}-byte blocks, stemcell hashes ${BLOCK_SIZE}`);
    const checksums = new Map<number, Buffer>();
    let bytes = 0;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    for await (const block of changes) {
      if (failure) break;
      if (checksums.has(block.index)) throw new Error(`block ${block.index} offered twice`);
      checksums.set(block.index, block.checksum);
      const put = snapshots
        .putBlock(snapshotId, block.index, block.data, block.checksum.toString('base64'))
        .then(() => {
          bytes += block.data.length;
          opts.onProgress?.({ put: checksums.size, bytes });
        })
        .catch((err) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(put));
      inFlight.add(put);
      while (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    if (failure) throw failure;
    const tPut = performance.now();

    step = 'completing';
    const checksum = linearChecksum(checksums);
    const state = await snapshots.complete(snapshotId, { changedBlocksCount: checksums.size, checksum });
    const tComplete = performance.now();
    step = 'waiting for completed';
    if (state !== 'completed') await waitCompleted(snapshots, snapshotId, state, sleep, opts.wait);
    const tDone = performance.now();
    return {
      snapshotId,
      ...(input.parentSnapshotId ? { parentSnapshotId: input.parentSnapshotId } : {}),
      changedBlocks: checksums.size,
      bytesPut: bytes,
      checksum,
      ms: {
        start: Math.round(tStarted - t0),
        puts: Math.round(tPut - tStarted),
        complete: Math.round(tComplete - tPut),
        wait: Math.round(tDone - tComplete),
        total: Math.round(tDone - t0),
      },
    };
  } catch (err) {
    let deleted = 'deleted';
    await snapshots.delete(snapshotId).catch((e: Error) => {
      deleted = `NOT deleted (${e.message}); EBS cancels it after its timeout`;
    });
    throw new DirectSnapshotError(
      `snapshot ${snapshotId} (${input.description}) failed while ${step}: ${(err as Error).message}; ${deleted}`,
      snapshotId,
      { cause: err },
    );
  }
}

/** Polls until `completed` with growing delays; `error`, or still pending after maxWaitMs, fails. */
async function waitCompleted(
  snapshots: BlockSnapshots,
  snapshotId: string,
  first: SnapshotInfo['state'],
  sleep: Sleep,
  limits: DirectWriteOptions['wait'] = {},
): Promise<void> {
  const maxWait = limits.maxWaitMs ?? 600_000;
  let delay = limits.firstDelayMs ?? 500;
  let waited = 0;
  let state: SnapshotInfo['state'] | undefined = first;
  while (state !== 'completed') {
    if (state === 'error') throw new Error('EBS reports the snapshot in error state');
    if (waited >= maxWait)
      throw new Error(`still ${state ?? 'not found'} after ${Math.round(waited / 1000)} s`);
    await sleep(delay);
    waited += delay;
    delay = Math.min(delay * 2, limits.maxDelayMs ?? 5_000);
    state = (await snapshots.get(snapshotId))?.state;
  }
}
