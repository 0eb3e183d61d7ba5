// What a local snapshot is on disk: its manifest (the ordered block hashes, the data keys that decrypt them, the
// figures of its delta), written by CreateSnapshot (./snapshots.ts) and CompleteSnapshot (./direct-snapshots.ts).
import type { Tags } from '#ports';

export interface WrappedDataKey {
  /** base64 of the KeyService ciphertext blob. */
  ciphertext: string;
  context: Record<string, string>;
}

export interface SnapshotManifest {
  version: 1;
  snapshotId: string;
  volumeId: string;
  parentId?: string;
  state: 'completed';
  /** 'disk': the raw device; 'tar': a directory volume archived (GNU tar), for the directory fallback. */
  format: 'disk' | 'tar';
  sizeBytes: number;
  blockSize: number;
  /** One entry per block of the device: its hash, or null when all zero. */
  blocks: Array<string | null>;
  nonZeroBlocks: number;
  /** Block positions whose content differs from the parent (all non-zero blocks without a parent). */
  changedBlocks: number;
  deltaBytes: number;
  /** Blocks whose content the parent does not hold anywhere, × block size. */
  newContentBytes: number;
  /** Bytes this snapshot added to the region's block store (after deduplication, encrypted). */
  storedBytes: number;
  /** Direct-API snapshots: the blocks PutSnapshotBlock wrote (ChangedBlocksCount). */
  putBlocks?: number;
  /** The data key new blocks of this lineage are encrypted with (the volume id for CreateSnapshot ones). */
  dataKeyId?: string;
  writtenBytes?: number;
  /** The volume's written-bytes counter at this snapshot; the next snapshot's writtenBytes starts here. */
  volumeWrittenTotal?: number;
  kmsKeyId: string;
  /** Data keys (by id) that decrypt this snapshot's blocks, wrapped by the customer key. */
  dataKeys: Record<string, WrappedDataKey>;
  description: string;
  tags: Tags;
  clientToken: string;
  startTime: string;
  endTime: string;
  durationMs: number;
  /** Of durationMs, the time spent making the blocks durable before the manifest is published. */
  syncMs?: number;
}
