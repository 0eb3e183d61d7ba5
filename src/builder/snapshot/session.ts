// One build's direct-API snapshot, around the apply: which snapshot is the parent (the one whose digests the
// volume's state partition holds, if EBS still has it completed), the digests marked "not pristine" before the
// apply touches the disk, the fast or the full way of finding what changed, the write, and the new digests saved.
import type { BlockSnapshots, Tags } from '#ports';
import type { DigestStore } from '../volume/state.ts';
import { BLOCK_SIZE, type BlockDigests } from './digests.ts';
import { CandidateError, type CandidateReport, Ext4WriteTracker } from './ext4-candidates.ts';
import { type ScanReport, scanBlocks } from './scan.ts';
import { type DirectSnapshotResult, type DirectWriteOptions, writeDirectSnapshot } from './writer.ts';

const GiB = 2 ** 30;

/** How changed blocks are found. `fast`: the filesystem's candidates; `full`: every block hashed. */
export type ChangeDetection = 'fast' | 'full';

/** What a direct snapshot needs of an opened block volume. */
export interface DiskAccess {
  /** The whole disk (or the file behind it), readable once the volume is quiesced and flushed. */
  devicePath: string;
  /** Pushes what the disk's device still buffers down to `devicePath` (a loop device's page cache). */
  flush?(): Promise<void>;
  sizeBytes: number;
  digests: DigestStore;
  /** The ext4 root, for the fast way; absent means every block is hashed. */
  root?: { mountPoint: string; device: string; startBytes: number; bytes: number };
  /** True when this open made the filesystem: nothing of the parent can be assumed. */
  fresh: boolean;
}

export interface DirectSnapshotOutcome {
  result: DirectSnapshotResult;
  scan: ScanReport;
  detection: ChangeDetection;
  /** Why the full way was used when the fast one was asked for. */
  fullBecause?: string;
  candidates?: CandidateReport;
  parentSnapshotId?: string;
  sizeBytes: number;
}

export class DirectSnapshotSession {
  readonly #snapshots: BlockSnapshots;
  readonly #disk: DiskAccess;
  readonly #region: string;
  readonly #parent: BlockDigests | undefined;
  readonly #tracker: Ext4WriteTracker | undefined;
  readonly #fullBecause: string | undefined;

  private constructor(
    snapshots: BlockSnapshots,
    disk: DiskAccess,
    region: string,
    parent: BlockDigests | undefined,
    tracker: Ext4WriteTracker | undefined,
    fullBecause: string | undefined,
  ) {
    this.#snapshots = snapshots;
    this.#disk = disk;
    this.#region = region;
    this.#parent = parent;
    this.#tracker = tracker;
    this.#fullBecause = fullBecause;
  }

  /**
   * Call before the apply touches the disk. `restored`: digests of a disk just restored from a snapshot (they are
   * saved as the volume's). The parent is dropped (a first, full snapshot follows) when EBS no longer has it
   * completed, or it belongs to another region.
   */
  static async prepare(
    snapshots: BlockSnapshots,
    disk: DiskAccess,
    opts: {
      region: string;
      detection: ChangeDetection;
      restored?: BlockDigests;
      log?: (line: string) => void;
    },
  ): Promise<DirectSnapshotSession> {
    if (opts.restored) await disk.digests.save(opts.restored);
    let parent = opts.restored ?? (await disk.digests.load());
    let why: string | undefined;
    if (parent && parent.region !== opts.region) {
      why = `the volume's digests are of region ${parent.region}`;
      parent = undefined;
    }
    if (parent) {
      const state = (await snapshots.get(parent.snapshotId))?.state;
      if (state !== 'completed') {
        why = `its parent ${parent.snapshotId} is ${state ?? 'gone'}`;
        parent = undefined;
      }
    }
    if (why) opts.log?.(`direct snapshot: a first snapshot (every block with data): ${why}`);
    let fullBecause: string | undefined;
    if (opts.detection === 'fast') {
      fullBecause = !parent
        ? 'no parent snapshot'
        : !parent.pristine
          ? 'the disk changed since the parent beyond one apply (an earlier attempt did not finish)'
          : parent.sizeBytes !== disk.sizeBytes
            ? 'the disk was resized'
            : disk.fresh
              ? 'the filesystem is new'
              : !disk.root
                ? 'no ext4 root to ask'
                : undefined;
    }
    // Before the first write: a build killed from here on leaves digests that no fast comparison trusts.
    if (parent) await disk.digests.save({ ...parent, pristine: false });
    const tracker =
      opts.detection === 'fast' && !fullBecause && disk.root
        ? new Ext4WriteTracker(disk.root.mountPoint)
        : undefined;
    return new DirectSnapshotSession(snapshots, disk, opts.region, parent, tracker, fullBecause);
  }

  get parentSnapshotId(): string | undefined {
    return this.#parent?.snapshotId;
  }

  /** After the last write to the mounted tree (apply, boot step, flush), before unmounting it. */
  noteWrites(): void {
    this.#tracker?.noteChanges();
  }

  /** After quiesce and verification: finds the changed blocks, writes the snapshot, saves its digests. */
  async snapshot(
    input: { description: string; tags: Tags; clientToken: string; kmsKeyId: string },
    opts: DirectWriteOptions & { log?: (line: string) => void } = {},
  ): Promise<DirectSnapshotOutcome> {
    const disk = this.#disk;
    await disk.flush?.();
    let candidates: CandidateReport | undefined;
    let fullBecause = this.#fullBecause;
    if (this.#tracker && disk.root) {
      try {
        candidates = await this.#tracker.candidates({
          rootDevice: disk.root.device,
          rootStartBytes: disk.root.startBytes,
          rootBytes: disk.root.bytes,
          diskBytes: disk.sizeBytes,
        });
      } catch (err) {
        if (!(err instanceof CandidateError)) throw err;
        fullBecause = err.message;
      }
    }
    if (fullBecause) opts.log?.(`direct snapshot: hashing every block (${fullBecause})`);
    const scan = scanBlocks(disk.devicePath, {
      sizeBytes: disk.sizeBytes,
      ...(this.#parent ? { parent: this.#parent.digests } : {}),
      ...(candidates ? { candidates: candidates.indices } : {}),
    });
    const result = await writeDirectSnapshot(
      this.#snapshots,
      {
        volumeSizeGiB: Math.ceil(disk.sizeBytes / GiB),
        ...(this.#parent ? { parentSnapshotId: this.#parent.snapshotId } : { kmsKeyId: input.kmsKeyId }),
        description: input.description,
        tags: input.tags,
        clientToken: input.clientToken,
      },
      scan.changes,
      opts,
    );
    const report = scan.report();
    await disk.digests.save({
      snapshotId: result.snapshotId,
      region: this.#region,
      blockSize: BLOCK_SIZE,
      sizeBytes: disk.sizeBytes,
      pristine: true,
      digests: report.digests,
    });
    return {
      result,
      scan: report,
      detection: candidates ? 'fast' : 'full',
      ...(fullBecause ? { fullBecause } : {}),
      ...(candidates ? { candidates } : {}),
      ...(this.#parent ? { parentSnapshotId: this.#parent.snapshotId } : {}),
      sizeBytes: disk.sizeBytes,
    };
  }
}
