// The local EBS snapshot: the volume's device content in 512 KiB blocks, each stored once per region in the
// encrypted block store (./blocks.ts); a snapshot is the ordered list of its block hashes (null for an
// all-zero block), so it is incremental by construction.
//
// Figures per snapshot, the local equivalent of an incremental EBS snapshot's size:
// - deltaBytes: block positions whose content differs from the parent snapshot, × 512 KiB (a lower bound of
//   what EBS would carry: EBS counts blocks written, whatever their content);
// - writtenBytes: bytes the device saw written since the parent, from block-layer statistics (upper bound).
//
// Crash safety: blocks are written and synced first; the manifest is written to a temporary file, synced and
// renamed into place last. A snapshot without a manifest does not exist; its orphan blocks are collected
// by the next delete.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type {
  BlockSnapshots,
  Clock,
  KeyService,
  SnapshotBlockRef,
  SnapshotInfo,
  StartedSnapshot,
  StartSnapshotInput,
  Tags,
} from '#ports';
import { BLOCK_SIZE, type BlockKey, BlockStore, hashBlock, isZeroBlock } from './blocks.ts';
import { systemClock } from './clock.ts';
import { DirectSnapshotStore } from './direct-snapshots.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir } from './json-state.ts';
import { type ServiceEventSink, serviceEvent } from './service-events.ts';
import type { SnapshotManifest, WrappedDataKey } from './snapshot-manifest.ts';
import type { LocalVolumes } from './volumes.ts';

export type { SnapshotManifest, WrappedDataKey } from './snapshot-manifest.ts';

export interface LocalSnapshotsOptions {
  /** The region's EBS state directory (see ebsStateDir), shared with LocalVolumes and LocalImages. */
  dir: string;
  region: string;
  /** The account that owns the volumes and snapshots (envelope `account`). */
  accountId: string;
  keys: KeyService;
  volumes: LocalVolumes;
  events: ServiceEventSink;
  clock?: Clock;
}

/** In-flight block writes while a snapshot streams the device. */
const WRITE_CONCURRENCY = 8;

export function snapshotArn(region: string, snapshotId: string): string {
  return `arn:aws:ec2::${region}:snapshot/${snapshotId}`;
}

export function volumeArn(region: string, volumeId: string): string {
  return `arn:aws:ec2::${region}:volume/${volumeId}`;
}

export class LocalSnapshots implements BlockSnapshots {
  readonly dir: string;
  readonly region: string;
  readonly accountId: string;
  readonly blocks: BlockStore;
  readonly #keys: KeyService;
  readonly #volumes: LocalVolumes;
  readonly #events: ServiceEventSink;
  readonly #clock: Clock;
  #tmpCounter = 0;
  /**
   * The blocks each snapshot still being written refers to (its parent's and those walked so far): its manifest
   * is not published yet, so without this, garbage collection (a concurrent delete) would take them.
   */
  readonly #pinned = new Set<Set<string>>();
  /** StartSnapshot / PutSnapshotBlock / CompleteSnapshot and the block reads (./direct-snapshots.ts). */
  readonly #direct: DirectSnapshotStore;

  constructor(opts: LocalSnapshotsOptions) {
    this.dir = opts.dir;
    this.region = opts.region;
    this.accountId = opts.accountId;
    this.#keys = opts.keys;
    this.#volumes = opts.volumes;
    this.#events = opts.events;
    this.#clock = opts.clock ?? systemClock;
    this.blocks = new BlockStore(join(opts.dir, 'blocks'));
    this.#direct = new DirectSnapshotStore({
      dir: opts.dir,
      accountId: opts.accountId,
      keys: opts.keys,
      blocks: this.blocks,
      clock: this.#clock,
      manifest: (id) => this.manifest(id),
      manifests: () => this.#manifests(),
      publish: (manifest) => this.#publish(manifest),
      dataKey: (keyId, kmsKeyId) => this.#dataKey(keyId, kmsKeyId),
      storedKey: (keyId) => this.#storedKey(keyId),
      pin: (hashes) => void this.#pinned.add(hashes),
      unpin: (hashes) => void this.#pinned.delete(hashes),
    });
  }

  async create(
    volumeId: string,
    input: { description: string; tags: Tags; clientToken: string },
  ): Promise<SnapshotInfo> {
    const existing = this.#manifests().find((m) => m.clientToken === input.clientToken);
    if (existing) return info(existing);
    const volume = this.#volumes.get(volumeId);
    if (!volume)
      throw new LocalServiceError('InvalidVolume.NotFound', `The volume '${volumeId}' does not exist.`);

    const snapshotId = `snap-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const startTime = this.#clock.now().toISOString();
    const started = performance.now();
    const pinned = new Set<string>();
    this.#pinned.add(pinned);
    try {
      const parent = this.latestForVolume(volumeId);
      // Pinned before the first await: a delete of the parent from here on leaves its blocks to this snapshot.
      for (const hash of parent?.blocks ?? []) if (hash) pinned.add(hash);
      const dataKey = await this.#dataKey(volumeId, volume.kmsKeyId);
      const backend = this.#volumes.backendOf(volumeId);
      const writtenTotal = backend === 'block' ? await this.#volumes.writtenBytesTotal(volumeId) : undefined;
      const source =
        backend === 'block'
          ? await readFileBlocks(this.#volumes.imagePath(volumeId))
          : tarBlocks(this.#volumes.directoryPath(volumeId));
      const scanned = await this.#storeBlocks(source.blocks, dataKey, parent, pinned);
      // A block found in the store may have been mid-deletion when it was pinned: every block must be there now
      // (and stays, being pinned) before a manifest says the snapshot is complete.
      for (const hash of new Set(scanned.blocks)) {
        if (hash && !this.blocks.has(hash))
          throw new Error(
            `snapshot of ${volumeId}: block ${hash} was removed while the snapshot was written (a concurrent snapshot delete); take it again`,
          );
      }
      const syncStarted = performance.now();
      await this.blocks.sync();
      const syncMs = Math.round(performance.now() - syncStarted);

      const dataKeys: Record<string, WrappedDataKey> = { [dataKey.id]: dataKey.wrapped };
      for (const id of scanned.foreignKeyIds) {
        const wrapped = parent?.dataKeys[id] ?? this.#storedKey(id);
        if (!wrapped) throw new Error(`snapshot of ${volumeId}: block data key ${id} is not on record`);
        dataKeys[id] = wrapped;
      }
      const manifest: SnapshotManifest = {
        version: 1,
        snapshotId,
        volumeId,
        ...(parent ? { parentId: parent.snapshotId } : {}),
        state: 'completed',
        format: backend === 'block' ? 'disk' : 'tar',
        sizeBytes: source.sizeBytes(),
        blockSize: BLOCK_SIZE,
        blocks: scanned.blocks,
        nonZeroBlocks: scanned.nonZeroBlocks,
        changedBlocks: scanned.changedBlocks,
        deltaBytes: scanned.changedBlocks * BLOCK_SIZE,
        newContentBytes: scanned.newContentBlocks * BLOCK_SIZE,
        storedBytes: scanned.storedBytes,
        ...(writtenTotal === undefined
          ? {}
          : {
              volumeWrittenTotal: writtenTotal,
              writtenBytes: Math.max(0, writtenTotal - (parent?.volumeWrittenTotal ?? 0)),
            }),
        kmsKeyId: volume.kmsKeyId,
        dataKeys,
        description: input.description,
        tags: { ...input.tags },
        clientToken: input.clientToken,
        startTime,
        endTime: this.#clock.now().toISOString(),
        durationMs: Math.round(performance.now() - started),
        syncMs,
      };
      await this.#publish(manifest);
      this.#notify(snapshotId, volumeId, 'succeeded', '', startTime, manifest.endTime);
      return info(manifest);
    } catch (err) {
      this.#notify(
        snapshotId,
        volumeId,
        'failed',
        (err as Error).message,
        startTime,
        this.#clock.now().toISOString(),
      );
      throw err;
    } finally {
      this.#pinned.delete(pinned);
    }
  }

  async get(snapshotId: string): Promise<SnapshotInfo | undefined> {
    const manifest = this.manifest(snapshotId);
    return manifest ? info(manifest) : this.#direct.pendingInfo(snapshotId);
  }

  /** Deletes the snapshot (completed, or still pending), then every block no remaining snapshot references. */
  async delete(snapshotId: string): Promise<void> {
    if (!this.manifest(snapshotId)) {
      if (!this.#direct.deletePending(snapshotId))
        throw new LocalServiceError(
          'InvalidSnapshot.NotFound',
          `The snapshot '${snapshotId}' does not exist.`,
        );
    } else {
      await rm(this.#manifestPath(snapshotId), { force: true });
    }
    await this.collectGarbage();
  }

  async findByTags(tags: Tags): Promise<SnapshotInfo[]> {
    const all = [...this.#manifests().map(info), ...this.#direct.pending()];
    return all.filter((s) => Object.entries(tags).every(([k, v]) => s.tags[k] === v));
  }

  // ---------------------------------------------------------------- EBS direct APIs (./direct-snapshots.ts)

  start(input: StartSnapshotInput): Promise<StartedSnapshot> {
    return this.#direct.start(input);
  }

  putBlock(snapshotId: string, index: number, data: Buffer, checksum: string): Promise<void> {
    return this.#direct.putBlock(snapshotId, index, data, checksum);
  }

  complete(
    snapshotId: string,
    input: { changedBlocksCount: number; checksum: string },
  ): Promise<SnapshotInfo['state']> {
    return this.#direct.complete(snapshotId, input);
  }

  listBlocks(snapshotId: string): AsyncIterable<SnapshotBlockRef> {
    return this.#direct.listBlocks(snapshotId);
  }

  getBlock(snapshotId: string, block: SnapshotBlockRef): Promise<{ data: Buffer; checksum: string }> {
    return this.#direct.getBlock(snapshotId, block);
  }

  // ---------------------------------------------------------------- local-only

  manifest(snapshotId: string): SnapshotManifest | undefined {
    return readJson<SnapshotManifest | undefined>(this.#manifestPath(snapshotId), undefined);
  }

  list(): SnapshotManifest[] {
    return this.#manifests();
  }

  /** The volume's newest snapshot: the parent of its next one. */
  latestForVolume(volumeId: string): SnapshotManifest | undefined {
    return this.#manifests()
      .filter((m) => m.volumeId === volumeId)
      .sort((a, b) => a.endTime.localeCompare(b.endTime))
      .at(-1);
  }

  /**
   * Writes the snapshot's content to `outFile` (a raw disk image, or a tar for a directory volume),
   * decrypting with data keys unwrapped as `callerAccountId`: refused by the key service for an account
   * that neither owns the customer key nor holds a grant on it.
   */
  async restore(
    snapshotId: string,
    outFile: string,
    callerAccountId: string,
  ): Promise<{ bytes: number; format: SnapshotManifest['format'] }> {
    const manifest = this.manifest(snapshotId);
    if (!manifest)
      throw new LocalServiceError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
    const keys = new Map<string, Buffer>();
    for (const [id, wrapped] of Object.entries(manifest.dataKeys)) {
      keys.set(
        id,
        await this.#keys.decrypt(Buffer.from(wrapped.ciphertext, 'base64'), wrapped.context, callerAccountId),
      );
    }
    const tmp = `${outFile}.${process.pid}.restore.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.truncate(manifest.sizeBytes);
      for (const [index, hash] of manifest.blocks.entries()) {
        if (!hash) continue;
        const block = await this.blocks.get(hash, keys);
        await handle.write(block, 0, block.length, index * manifest.blockSize);
      }
      await handle.sync();
    } catch (err) {
      await handle.close();
      await rm(tmp, { force: true });
      throw err;
    }
    await handle.close();
    await rename(tmp, outFile);
    return { bytes: manifest.sizeBytes, format: manifest.format };
  }

  /** Removes blocks that no snapshot references (and leftovers of interrupted writes). */
  async collectGarbage(): Promise<{ removedBlocks: number }> {
    const referenced = new Set<string>();
    for (const m of this.#manifests()) for (const h of m.blocks) if (h) referenced.add(h);
    let removedBlocks = 0;
    for await (const hash of this.blocks.list()) {
      if (referenced.has(hash) || this.#isPinned(hash)) continue;
      await this.blocks.delete(hash);
      removedBlocks++;
    }
    return { removedBlocks };
  }

  // ---------------------------------------------------------------- internals

  #isPinned(hash: string): boolean {
    for (const pinned of this.#pinned) if (pinned.has(hash)) return true;
    return false;
  }

  async #storeBlocks(
    source: AsyncIterable<Buffer>,
    dataKey: BlockKey,
    parent: SnapshotManifest | undefined,
    pinned: Set<string>,
  ): Promise<{
    blocks: Array<string | null>;
    nonZeroBlocks: number;
    changedBlocks: number;
    newContentBlocks: number;
    storedBytes: number;
    foreignKeyIds: Set<string>;
  }> {
    const parentBlocks = parent?.blocks ?? [];
    const parentHashes = new Set(parentBlocks.filter((h): h is string => h !== null));
    const blocks: Array<string | null> = [];
    let nonZeroBlocks = 0;
    let changedBlocks = 0;
    let newContentBlocks = 0;
    let storedBytes = 0;
    const foreignKeyIds = new Set<string>();
    const seen = new Set<string>();
    const pending = new Set<Promise<void>>();
    let failure: unknown;
    const track = (p: Promise<void>) => {
      const tracked = p.catch((err) => {
        failure ??= err;
      });
      pending.add(tracked);
      void tracked.finally(() => pending.delete(tracked));
    };

    for await (const block of source) {
      if (failure) throw failure;
      const index = blocks.length;
      const hash = isZeroBlock(block) ? null : hashBlock(block);
      blocks.push(hash);
      if (hash) pinned.add(hash);
      if ((parentBlocks[index] ?? null) !== hash) changedBlocks++;
      if (!hash) continue;
      nonZeroBlocks++;
      if (parentHashes.has(hash)) continue;
      newContentBlocks++;
      if (seen.has(hash)) continue;
      seen.add(hash);
      if (this.blocks.has(hash)) {
        // Stored by another volume's snapshot: this snapshot needs that volume's data key too.
        track(
          this.blocks.keyIdOf(hash).then((id) => {
            if (id !== dataKey.id) foreignKeyIds.add(id);
          }),
        );
      } else {
        track(
          this.blocks.put(hash, block, dataKey).then((n) => {
            storedBytes += n;
          }),
        );
      }
      while (pending.size >= WRITE_CONCURRENCY) await Promise.race(pending);
    }
    // A device that shrank: the parent's extra positions count as changed.
    for (let i = blocks.length; i < parentBlocks.length; i++) if (parentBlocks[i]) changedBlocks++;
    await Promise.all(pending);
    if (failure) throw failure;
    // Blocks the parent holds keep the parent's keys.
    for (const id of Object.keys(parent?.dataKeys ?? {})) if (id !== dataKey.id) foreignKeyIds.add(id);
    return { blocks, nonZeroBlocks, changedBlocks, newContentBlocks, storedBytes, foreignKeyIds };
  }

  /**
   * A data key by id (a volume's, or the first snapshot's of a direct-API lineage): made once (GenerateDataKey
   * under the customer key), then unwrapped on use.
   */
  async #dataKey(keyId: string, kmsKeyId: string): Promise<BlockKey & { wrapped: WrappedDataKey }> {
    const context = { 'aws:ebs:id': keyId };
    const stored = this.#storedKey(keyId);
    if (stored) {
      const owner = (await this.#keys.describeKey(kmsKeyId)).accountId;
      const key = await this.#keys.decrypt(Buffer.from(stored.ciphertext, 'base64'), stored.context, owner);
      return { id: keyId, key, wrapped: stored };
    }
    const dataKey = await this.#keys.generateDataKey(kmsKeyId, context);
    const wrapped: WrappedDataKey = { ciphertext: dataKey.ciphertext.toString('base64'), context };
    await this.#writeDurable(
      join(this.dir, 'keys', `${keyId}.json`),
      `${JSON.stringify(wrapped, null, 2)}\n`,
    );
    return { id: keyId, key: dataKey.plaintext, wrapped };
  }

  #storedKey(volumeId: string): WrappedDataKey | undefined {
    return readJson<WrappedDataKey | undefined>(join(this.dir, 'keys', `${volumeId}.json`), undefined);
  }

  async #publish(manifest: SnapshotManifest): Promise<void> {
    await this.#writeDurable(this.#manifestPath(manifest.snapshotId), `${JSON.stringify(manifest)}\n`);
  }

  /** Temporary file, fsync, rename, fsync of the directory: the file is absent or whole after a crash. */
  async #writeDurable(path: string, content: string): Promise<void> {
    const dir = join(path, '..');
    await mkdir(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.${++this.#tmpCounter}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
    const dirHandle = await open(dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  #notify(
    snapshotId: string,
    volumeId: string,
    result: 'succeeded' | 'failed',
    cause: string,
    startTime: string,
    endTime: string,
  ): void {
    const arn = snapshotArn(this.region, snapshotId);
    this.#events.emit(
      serviceEvent({
        'detail-type': 'EBS Snapshot Notification',
        source: 'aws.ec2',
        account: this.accountId,
        region: this.region,
        resources: [arn],
        detail: {
          event: 'createSnapshot',
          result,
          cause,
          'request-id': crypto.randomUUID(),
          snapshot_id: arn,
          source: volumeArn(this.region, volumeId),
          startTime,
          endTime,
        },
      }),
    );
  }

  #manifestPath(snapshotId: string): string {
    if (!/^snap-[0-9a-f]{17}$/.test(snapshotId))
      throw new LocalServiceError(
        'InvalidSnapshotID.Malformed',
        `Invalid id: "${snapshotId}" (expecting "snap-...")`,
      );
    return join(this.dir, 'snapshots', `${snapshotId}.json`);
  }

  #manifests(): SnapshotManifest[] {
    return readJsonDir<SnapshotManifest>(join(this.dir, 'snapshots'), /^snap-[0-9a-f]{17}\.json$/);
  }
}

function info(m: SnapshotManifest): SnapshotInfo {
  return {
    snapshotId: m.snapshotId,
    volumeId: m.volumeId,
    state: m.state,
    tags: { ...m.tags },
    deltaBytes: m.deltaBytes,
    ...(m.writtenBytes === undefined ? {} : { writtenBytes: m.writtenBytes }),
    kmsKeyId: m.kmsKeyId,
    volumeSizeGiB: Math.ceil(m.sizeBytes / 2 ** 30),
  };
}

/** A disk image read in BLOCK_SIZE blocks (the last one possibly shorter). */
async function readFileBlocks(
  path: string,
): Promise<{ blocks: AsyncIterable<Buffer>; sizeBytes: () => number }> {
  const handle = await open(path, 'r');
  const size = (await handle.stat()).size;
  async function* blocks(): AsyncGenerator<Buffer> {
    try {
      for (let offset = 0; offset < size; offset += BLOCK_SIZE) {
        const length = Math.min(BLOCK_SIZE, size - offset);
        // A fresh buffer per block: a pending write may still hold the previous one.
        const buf = Buffer.allocUnsafe(length);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(buf, filled, length - filled, offset + filled);
          if (bytesRead === 0)
            throw new Error(`${path}: ended at ${offset + filled} bytes, expected ${size}`);
          filled += bytesRead;
        }
        yield buf;
      }
    } finally {
      await handle.close();
    }
  }
  return { blocks: blocks(), sizeBytes: () => size };
}

/** A directory volume as GNU tar streams it, cut into BLOCK_SIZE blocks. */
function tarBlocks(dir: string): { blocks: AsyncIterable<Buffer>; sizeBytes: () => number } {
  let size = 0;
  async function* blocks(): AsyncGenerator<Buffer> {
    const child = spawn(
      'tar',
      ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--sort=name', '-C', dir, '-cf', '-', '.'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const chunk of child.stdout as Readable) {
      pending.push(chunk as Buffer);
      pendingBytes += (chunk as Buffer).length;
      while (pendingBytes >= BLOCK_SIZE) {
        const all = Buffer.concat(pending);
        yield all.subarray(0, BLOCK_SIZE);
        size += BLOCK_SIZE;
        pending = [all.subarray(BLOCK_SIZE)];
        pendingBytes = all.length - BLOCK_SIZE;
      }
    }
    if (pendingBytes > 0) {
      yield Buffer.concat(pending);
      size += pendingBytes;
    }
    const code = await exited;
    if (code !== 0) throw new Error(`tar of volume directory ${dir} failed (exit ${code}): ${stderr.trim()}`);
  }
  return { blocks: blocks(), sizeBytes: () => size };
}
