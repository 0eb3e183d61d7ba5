// The local snapshot block store: 512 KiB blocks, content-addressed by the sha256 of their plaintext, stored
// once per region however many snapshots (of however many volumes) hold them, encrypted at rest with
// AES-256-GCM under the data key of the volume that first stored them.
//
// On-disk block: "SCB1" | key-id length (1 B) | key id | iv (12 B) | tag (16 B) | ciphertext.
// The block's hash is the GCM additional data, so a block file moved under another name fails to decrypt.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '#builder/volume/exec.ts';

export const BLOCK_SIZE = 512 * 1024;
const MAGIC = Buffer.from('SCB1');
const HASH_PATTERN = /^[0-9a-f]{64}$/;

export interface BlockKey {
  /** Names the data key in snapshot manifests (the volume id it was made for). */
  id: string;
  key: Buffer;
}

export function hashBlock(plaintext: Buffer): string {
  return createHash('sha256').update(plaintext).digest('hex');
}

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
/** All-zero blocks are never stored: a snapshot records them as holes. */
export function isZeroBlock(block: Buffer): boolean {
  return block.length === BLOCK_SIZE ? block.equals(ZERO_BLOCK) : block.every((b) => b === 0);
}

export class BlockStore {
  readonly dir: string;
  #tmpCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  path(hash: string): string {
    if (!HASH_PATTERN.test(hash)) throw new Error(`block store: ${JSON.stringify(hash)} is not a block hash`);
    return join(this.dir, hash.slice(0, 2), hash);
  }

  has(hash: string): boolean {
    return existsSync(this.path(hash));
  }

  /**
   * Stores a block under its hash unless it is already there; returns the bytes written (0 when present).
   * Written to a temporary name and renamed, so a block file is whole or absent; durability comes from
   * sync() before the snapshot that references it is published.
   */
  async put(hash: string, plaintext: Buffer, key: BlockKey): Promise<number> {
    const target = this.path(hash);
    if (existsSync(target)) return 0;
    const id = Buffer.from(key.id);
    if (id.length > 255) throw new Error(`block store: key id ${key.id} is longer than 255 bytes`);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.key, iv);
    cipher.setAAD(Buffer.from(hash));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const record = Buffer.concat([MAGIC, Buffer.from([id.length]), id, iv, cipher.getAuthTag(), sealed]);
    await mkdir(join(this.dir, hash.slice(0, 2)), { recursive: true });
    const tmp = `${target}.${process.pid}.${++this.#tmpCounter}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(record);
    } finally {
      await handle.close();
    }
    await rename(tmp, target);
    return record.length;
  }

  /** The key id a stored block was encrypted under (read from its header). */
  async keyIdOf(hash: string): Promise<string> {
    const handle = await open(this.path(hash), 'r');
    try {
      const head = Buffer.alloc(MAGIC.length + 1 + 255);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      return parseHeader(head.subarray(0, bytesRead), hash).keyId;
    } finally {
      await handle.close();
    }
  }

  /** Decrypts a block and checks it against its hash. `keys` maps key ids to plaintext data keys. */
  async get(hash: string, keys: ReadonlyMap<string, Buffer>): Promise<Buffer> {
    const record = await readFile(this.path(hash));
    const { keyId, body } = parseHeader(record, hash);
    const key = keys.get(keyId);
    if (!key) throw new Error(`block ${hash}: encrypted under data key ${keyId}, which was not provided`);
    const iv = body.subarray(0, 12);
    const tag = body.subarray(12, 28);
    let plaintext: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(hash));
      decipher.setAuthTag(tag);
      plaintext = Buffer.concat([decipher.update(body.subarray(28)), decipher.final()]);
    } catch {
      throw new Error(`block ${hash}: does not decrypt (corrupt, or the wrong data key ${keyId})`);
    }
    if (hashBlock(plaintext) !== hash) throw new Error(`block ${hash}: content does not match its hash`);
    return plaintext;
  }

  async delete(hash: string): Promise<void> {
    await rm(this.path(hash), { force: true });
  }

  /** Every stored block hash; leftover temporary files of an interrupted write are removed on the way. */
  async *list(): AsyncGenerator<string> {
    const prefixes = await readdir(this.dir).catch(() => [] as string[]);
    for (const prefix of prefixes) {
      for (const name of await readdir(join(this.dir, prefix)).catch(() => [] as string[])) {
        if (HASH_PATTERN.test(name)) yield name;
        else if (name.endsWith('.tmp')) await rm(join(this.dir, prefix, name), { force: true });
      }
    }
  }

  /** Makes every block written so far durable (syncfs of the store's filesystem). */
  async sync(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await run('sync', ['--file-system', this.dir]);
  }
}

function parseHeader(record: Buffer, hash: string): { keyId: string; body: Buffer } {
  if (record.length < MAGIC.length + 1 || !record.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error(`block ${hash}: not a stemcell block file`);
  const idLength = record[MAGIC.length] as number;
  const idStart = MAGIC.length + 1;
  return {
    keyId: record.subarray(idStart, idStart + idLength).toString(),
    body: record.subarray(idStart + idLength),
  };
}
