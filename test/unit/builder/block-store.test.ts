// The snapshot block store (src/local/blocks.ts): content addressing, encryption at rest, tamper detection.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BLOCK_SIZE, BlockStore, hashBlock, isZeroBlock } from '#local/blocks.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function store(): BlockStore {
  const dir = mkdtempSync(join(tmpdir(), 'stemcell-blocks-'));
  dirs.push(dir);
  return new BlockStore(dir);
}
const key = { id: 'vol-0123456789abcdef0', key: randomBytes(32) };

function block(fill: string): Buffer {
  return Buffer.alloc(BLOCK_SIZE, fill);
}

describe('Class: BlockStore', () => {
  it('stores a block once under its hash, encrypted, and gives it back', async () => {
    // prepare
    const s = store();
    const data = block('plaintext-marker ');
    const hash = hashBlock(data);
    // act
    const first = await s.put(hash, data, key);
    const second = await s.put(hash, data, key);
    const back = await s.get(hash, new Map([[key.id, key.key]]));
    // assess
    assert.ok(first > BLOCK_SIZE, 'ciphertext plus header');
    assert.equal(second, 0, 'already stored');
    assert.deepEqual(back, data);
    assert.equal(readFileSync(s.path(hash)).includes('plaintext-marker'), false);
    assert.equal(await s.keyIdOf(hash), key.id);
  });

  it('refuses a tampered block, a block under another name, and the wrong key', async () => {
    // prepare
    const s = store();
    const a = block('a');
    const b = block('b');
    const ha = hashBlock(a);
    const hb = hashBlock(b);
    await s.put(ha, a, key);
    await s.put(hb, b, key);
    const keys = new Map([[key.id, key.key]]);
    // act: swap b's file under a's name, then flip a byte
    writeFileSync(s.path(ha), readFileSync(s.path(hb)));
    // assess
    await assert.rejects(s.get(ha, keys), /does not decrypt/);
    await assert.rejects(s.get(hb, new Map([[key.id, randomBytes(32)]])), /does not decrypt/);
    await assert.rejects(s.get(hb, new Map()), /was not provided/);
    const bytes = readFileSync(s.path(hb));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
    writeFileSync(s.path(hb), bytes);
    await assert.rejects(s.get(hb, keys), /does not decrypt/);
  });

  it('recognises all-zero blocks and rejects malformed hashes', () => {
    // act + assess
    assert.equal(isZeroBlock(Buffer.alloc(BLOCK_SIZE)), true);
    assert.equal(isZeroBlock(Buffer.alloc(1000)), true);
    const almost = Buffer.alloc(BLOCK_SIZE);
    almost[BLOCK_SIZE - 1] = 1;
    assert.equal(isZeroBlock(almost), false);
    assert.throws(() => store().path('../../etc/passwd'), /not a block hash/);
  });
});
