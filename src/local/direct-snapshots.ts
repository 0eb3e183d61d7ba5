// The EBS direct APIs of the local snapshot store: StartSnapshot / PutSnapshotBlock / CompleteSnapshot on a
// parent, and ListSnapshotBlocks / GetSnapshotBlock, with the rules AWS states and the builder relies on:
// - a child takes its parent's encryption (Encrypted with a parent is refused), a first snapshot is encrypted
//   with the customer key it names; StartSnapshot is idempotent on its ClientToken;
// - a block is a whole 512 KiB with the base64 SHA-256 of its data, at an index inside the volume size, and only
//   while the snapshot is pending;
// - CompleteSnapshot checks ChangedBlocksCount and the LINEAR checksum: a mismatch puts the snapshot in error;
// - a snapshot never completed (its writer killed) ends in error after its timeout, like EBS cancels it;
// - no "EBS Snapshot Notification" follows: EBS sends none for these APIs.
// A completed snapshot is a manifest like a CreateSnapshot one (./snapshots.ts): the parent's block list with
// the blocks put laid over it, so restore, images and garbage collection need nothing new.
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type {
  Clock,
  KeyService,
  SnapshotBlockRef,
  SnapshotInfo,
  StartedSnapshot,
  StartSnapshotInput,
} from '#ports';
import { BLOCK_SIZE, type BlockKey, type BlockStore, hashBlock, isZeroBlock } from './blocks.ts';
import { LocalServiceError } from './errors.ts';
import { fsyncDir, readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';
import type { SnapshotManifest, WrappedDataKey } from './snapshot-manifest.ts';

/** Direct-API snapshots hold no volume; EBS reports this id for them too. */
export const NO_VOLUME = 'vol-ffffffff';
const GiB = 2 ** 30;

/** What the direct APIs need of the snapshot store they extend. */
export interface DirectStoreContext {
  dir: string;
  accountId: string;
  keys: KeyService;
  blocks: BlockStore;
  clock: Clock;
  manifest(snapshotId: string): SnapshotManifest | undefined;
  manifests(): SnapshotManifest[];
  publish(manifest: SnapshotManifest): Promise<void>;
  /** The data key stored under `keyId` (made under `kmsKeyId` when there is none yet), unwrapped. */
  dataKey(keyId: string, kmsKeyId: string): Promise<BlockKey & { wrapped: WrappedDataKey }>;
  /** A data key on record, wrapped (undefined when there is none). */
  storedKey(keyId: string): WrappedDataKey | undefined;
  /** Keeps blocks from garbage collection while the set is registered. */
  pin(hashes: Set<string>): void;
  unpin(hashes: Set<string>): void;
}

/** A pending snapshot as StartSnapshot recorded it (on disk, so other processes see it pending). */
interface PendingRecord {
  snapshotId: string;
  parentId?: string;
  kmsKeyId: string;
  /** The data key new blocks are encrypted with: the lineage's, made for its first snapshot. */
  dataKeyId: string;
  volumeSizeGiB: number;
  description: string;
  tags: Record<string, string>;
  clientToken: string;
  startTime: string;
  timeoutMinutes: number;
  /** Set when CompleteSnapshot refused it. */
  error?: string;
}

/** What the writing process holds of a pending snapshot: the blocks put so far. */
interface Writing {
  record: PendingRecord;
  /** index → block hash, or null for an all-zero block. */
  blocks: Map<number, string | null>;
  checksums: Map<number, Buffer>;
  key: BlockKey;
  wrapped: WrappedDataKey;
  pinned: Set<string>;
  storedBytes: number;
  /** Data keys of blocks another lineage stored first (the store keeps one copy of a block per region). */
  foreignKeyIds: Set<string>;
}

export class DirectSnapshotStore {
  readonly #c: DirectStoreContext;
  readonly #writing = new Map<string, Writing>();

  constructor(context: DirectStoreContext) {
    this.#c = context;
  }

  async start(input: StartSnapshotInput): Promise<StartedSnapshot> {
    const again =
      this.#c.manifests().find((m) => m.clientToken === input.clientToken) ??
      this.#pendingRecords().find((r) => r.clientToken === input.clientToken);
    if (again) return { snapshotId: again.snapshotId, blockSize: BLOCK_SIZE, kmsKeyArn: again.kmsKeyId };
    if (!Number.isInteger(input.volumeSizeGiB) || input.volumeSizeGiB < 1 || input.volumeSizeGiB > 65536)
      throw new LocalServiceError('ValidationException', `VolumeSize ${input.volumeSizeGiB}: 1 to 65536 GiB`);
    if (!Number.isInteger(input.timeoutMinutes) || input.timeoutMinutes < 10 || input.timeoutMinutes > 4320)
      throw new LocalServiceError(
        'ValidationException',
        `Timeout ${input.timeoutMinutes}: 10 to 4320 minutes`,
      );
    const snapshotId = `snap-${randomBytes(9).toString('hex').slice(0, 17)}`;
    let kmsKeyId: string;
    let dataKeyId: string;
    const pinned = new Set<string>();
    if (input.parentSnapshotId) {
      if (input.kmsKeyId)
        throw new LocalServiceError(
          'ValidationException',
          'a child snapshot takes its parent encryption: ParentSnapshotId and Encrypted/KmsKeyArn are exclusive',
        );
      const parent = this.#c.manifest(input.parentSnapshotId);
      if (!parent)
        throw new LocalServiceError(
          'ResourceNotFoundException',
          `The parent snapshot '${input.parentSnapshotId}' does not exist.`,
          404,
        );
      if (input.volumeSizeGiB * GiB < parent.sizeBytes)
        throw new LocalServiceError(
          'ValidationException',
          `VolumeSize ${input.volumeSizeGiB} GiB is smaller than the parent's ${parent.sizeBytes / GiB} GiB`,
        );
      kmsKeyId = parent.kmsKeyId;
      dataKeyId = parent.dataKeyId ?? parent.volumeId;
      for (const h of parent.blocks) if (h) pinned.add(h);
    } else {
      if (!input.kmsKeyId)
        throw new LocalServiceError(
          'ValidationException',
          'a first snapshot must be Encrypted with a KmsKeyArn',
        );
      kmsKeyId = input.kmsKeyId;
      dataKeyId = snapshotId;
    }
    const record: PendingRecord = {
      snapshotId,
      ...(input.parentSnapshotId ? { parentId: input.parentSnapshotId } : {}),
      kmsKeyId,
      dataKeyId,
      volumeSizeGiB: input.volumeSizeGiB,
      description: input.description,
      tags: { ...input.tags },
      clientToken: input.clientToken,
      startTime: this.#c.clock.now().toISOString(),
      timeoutMinutes: input.timeoutMinutes,
    };
    this.#c.pin(pinned);
    try {
      const key = await this.#c.dataKey(dataKeyId, kmsKeyId);
      writeJsonAtomic(this.#pendingPath(snapshotId), record);
      this.#writing.set(snapshotId, {
        record,
        blocks: new Map(),
        checksums: new Map(),
        key: { id: key.id, key: key.key },
        wrapped: key.wrapped,
        pinned,
        storedBytes: 0,
        foreignKeyIds: new Set(),
      });
    } catch (err) {
      this.#c.unpin(pinned);
      throw err;
    }
    return { snapshotId, blockSize: BLOCK_SIZE, kmsKeyArn: kmsKeyId };
  }

  async putBlock(snapshotId: string, index: number, data: Buffer, checksum: string): Promise<void> {
    const w = this.#writable(snapshotId);
    if (data.length !== BLOCK_SIZE)
      throw new LocalServiceError(
        'ValidationException',
        `block ${index}: ${data.length} bytes, not ${BLOCK_SIZE}`,
      );
    const blocks = (w.record.volumeSizeGiB * GiB) / BLOCK_SIZE;
    if (!Number.isInteger(index) || index < 0 || index >= blocks)
      throw new LocalServiceError('ValidationException', `block index ${index} is outside 0..${blocks - 1}`);
    const digest = createHash('sha256').update(data).digest();
    if (digest.toString('base64') !== checksum)
      throw new LocalServiceError(
        'ValidationException',
        `block ${index}: the checksum does not match the data`,
      );
    let hash: string | null = null;
    if (!isZeroBlock(data)) {
      hash = hashBlock(data);
      w.pinned.add(hash);
      if (this.#c.blocks.has(hash)) {
        const keyId = await this.#c.blocks.keyIdOf(hash);
        if (keyId !== w.key.id) w.foreignKeyIds.add(keyId);
      } else {
        w.storedBytes += await this.#c.blocks.put(hash, data, w.key);
      }
    }
    w.blocks.set(index, hash);
    w.checksums.set(index, digest);
  }

  async complete(
    snapshotId: string,
    input: { changedBlocksCount: number; checksum: string },
  ): Promise<SnapshotInfo['state']> {
    if (this.#c.manifest(snapshotId)) return 'completed';
    const w = this.#writable(snapshotId);
    const expected = linear(w.checksums);
    const wrong =
      input.changedBlocksCount !== w.blocks.size
        ? `ChangedBlocksCount ${input.changedBlocksCount}, but ${w.blocks.size} blocks were written`
        : input.checksum !== expected
          ? 'the aggregated checksum does not match the blocks written'
          : undefined;
    if (wrong) {
      this.#fail(w, wrong);
      throw new LocalServiceError('ValidationException', `snapshot ${snapshotId}: ${wrong}`);
    }
    try {
      const parent = w.record.parentId ? this.#c.manifest(w.record.parentId) : undefined;
      if (w.record.parentId && !parent)
        throw new Error(`its parent ${w.record.parentId} was deleted while it was written`);
      const sizeBytes = w.record.volumeSizeGiB * GiB;
      const count = sizeBytes / BLOCK_SIZE;
      const blocks: Array<string | null> = Array.from({ length: count }, (_, i) => parent?.blocks[i] ?? null);
      for (const [index, hash] of w.blocks) blocks[index] = hash;
      for (const hash of new Set(blocks)) {
        if (hash && !this.#c.blocks.has(hash))
          throw new Error(`block ${hash} went missing while it was written`);
      }
      await this.#c.blocks.sync();
      const parentHashes = new Set(parent?.blocks.filter((h): h is string => h !== null));
      let changed = 0;
      let newContent = 0;
      for (let i = 0; i < count; i++) {
        const h = blocks[i] ?? null;
        if ((parent?.blocks[i] ?? null) !== h) changed++;
        if (h && !parentHashes.has(h) && w.blocks.get(i) === h) newContent++;
      }
      const dataKeys: Record<string, WrappedDataKey> = { ...(parent?.dataKeys ?? {}), [w.key.id]: w.wrapped };
      for (const id of w.foreignKeyIds) {
        const wrapped = parent?.dataKeys[id] ?? this.#c.storedKey(id);
        if (!wrapped) throw new Error(`block data key ${id} is not on record`);
        dataKeys[id] = wrapped;
      }
      const now = this.#c.clock.now();
      const manifest: SnapshotManifest = {
        version: 1,
        snapshotId,
        volumeId: NO_VOLUME,
        ...(parent ? { parentId: parent.snapshotId } : {}),
        state: 'completed',
        format: 'disk',
        sizeBytes,
        blockSize: BLOCK_SIZE,
        blocks,
        nonZeroBlocks: blocks.filter((h) => h !== null).length,
        changedBlocks: changed,
        deltaBytes: changed * BLOCK_SIZE,
        newContentBytes: newContent * BLOCK_SIZE,
        storedBytes: w.storedBytes,
        putBlocks: w.blocks.size,
        kmsKeyId: w.record.kmsKeyId,
        dataKeyId: w.record.dataKeyId,
        dataKeys,
        description: w.record.description,
        tags: { ...w.record.tags },
        clientToken: w.record.clientToken,
        startTime: w.record.startTime,
        endTime: now.toISOString(),
        durationMs: now.getTime() - Date.parse(w.record.startTime),
      };
      await this.#c.publish(manifest);
      this.#forget(w);
      return 'completed';
    } catch (err) {
      this.#fail(w, (err as Error).message);
      throw err;
    }
  }

  /** Pending (or failed) direct-API snapshots, as SnapshotInfo. */
  pending(): SnapshotInfo[] {
    return this.#pendingRecords().map((r) => this.#info(r));
  }

  pendingInfo(snapshotId: string): SnapshotInfo | undefined {
    const r = readJson<PendingRecord | undefined>(this.#pendingPath(snapshotId), undefined);
    return r && this.#info(r);
  }

  /** Deletes a pending snapshot; false when there is none by that id. */
  deletePending(snapshotId: string): boolean {
    const r = readJson<PendingRecord | undefined>(this.#pendingPath(snapshotId), undefined);
    const w = this.#writing.get(snapshotId);
    if (w) this.#forget(w);
    if (!r) return w !== undefined;
    this.#removePending(snapshotId);
    return true;
  }

  async *listBlocks(snapshotId: string): AsyncIterable<SnapshotBlockRef> {
    const m = this.#completed(snapshotId);
    for (const [index, hash] of m.blocks.entries()) if (hash) yield { index, token: hash };
  }

  async getBlock(snapshotId: string, block: SnapshotBlockRef): Promise<{ data: Buffer; checksum: string }> {
    const m = this.#completed(snapshotId);
    if (m.blocks[block.index] !== block.token)
      throw new LocalServiceError(
        'ValidationException',
        `block ${block.index}: the block token is not valid`,
      );
    const keys = new Map<string, Buffer>();
    const keyId = await this.#c.blocks.keyIdOf(block.token);
    const wrapped = m.dataKeys[keyId];
    if (!wrapped)
      throw new Error(`snapshot ${snapshotId}: block ${block.index} needs data key ${keyId}, not on record`);
    keys.set(
      keyId,
      await this.#c.keys.decrypt(
        Buffer.from(wrapped.ciphertext, 'base64'),
        wrapped.context,
        this.#c.accountId,
      ),
    );
    const data = await this.#c.blocks.get(block.token, keys);
    return { data, checksum: createHash('sha256').update(data).digest('base64') };
  }

  // ---------------------------------------------------------------- internals

  #completed(snapshotId: string): SnapshotManifest {
    const m = this.#c.manifest(snapshotId);
    if (!m)
      throw new LocalServiceError(
        'ResourceNotFoundException',
        `The snapshot '${snapshotId}' does not exist.`,
        404,
      );
    return m;
  }

  #writable(snapshotId: string): Writing {
    const w = this.#writing.get(snapshotId);
    if (w && !w.record.error) return w;
    if (this.#c.manifest(snapshotId))
      throw new LocalServiceError(
        'ValidationException',
        `snapshot ${snapshotId} is completed: no block can be written`,
      );
    const r = readJson<PendingRecord | undefined>(this.#pendingPath(snapshotId), undefined);
    if (!r)
      throw new LocalServiceError(
        'ResourceNotFoundException',
        `The snapshot '${snapshotId}' does not exist.`,
        404,
      );
    throw new LocalServiceError(
      'ValidationException',
      `snapshot ${snapshotId} is ${this.#info(r).state}: ${r.error ?? 'the process that started it is gone'}`,
    );
  }

  #fail(w: Writing, reason: string): void {
    w.record.error = reason;
    writeJsonAtomic(this.#pendingPath(w.record.snapshotId), w.record);
    this.#forget(w);
  }

  #forget(w: Writing): void {
    this.#writing.delete(w.record.snapshotId);
    this.#c.unpin(w.pinned);
    if (!w.record.error) this.#removePending(w.record.snapshotId);
  }

  #removePending(snapshotId: string): void {
    const path = this.#pendingPath(snapshotId);
    rmSync(path, { force: true });
    fsyncDir(dirname(path));
  }

  #info(r: PendingRecord): SnapshotInfo {
    const age = this.#c.clock.now().getTime() - Date.parse(r.startTime);
    const expired = !this.#writing.has(r.snapshotId) && age > r.timeoutMinutes * 60_000;
    return {
      snapshotId: r.snapshotId,
      volumeId: NO_VOLUME,
      state: r.error || expired ? 'error' : 'pending',
      tags: { ...r.tags },
      kmsKeyId: r.kmsKeyId,
      volumeSizeGiB: r.volumeSizeGiB,
    };
  }

  #pendingPath(snapshotId: string): string {
    return join(this.#c.dir, 'pending', `${snapshotId}.json`);
  }

  #pendingRecords(): PendingRecord[] {
    return readJsonDir<PendingRecord>(join(this.#c.dir, 'pending'), /^snap-[0-9a-f]{17}\.json$/);
  }
}

function linear(checksums: ReadonlyMap<number, Buffer>): string {
  const hash = createHash('sha256');
  for (const index of [...checksums.keys()].sort((a, b) => a - b))
    hash.update(checksums.get(index) as Buffer);
  return hash.digest('base64');
}
