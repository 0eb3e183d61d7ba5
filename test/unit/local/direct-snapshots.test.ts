// The local store's EBS direct APIs keep EBS's rules, so the builder meets locally what it meets on AWS: a child
// takes its parent's key, a block is whole and checksummed, completion checks the count and the LINEAR checksum,
// a snapshot whose writer is gone ends in error, a retry with the same ClientToken gets the same snapshot.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { BLOCK_SIZE, linearChecksum } from '#builder/snapshot/digests.ts';
import { createLocalEbs } from '#local/ebs.ts';
import { LocalKeyService } from '#local/key-service.ts';
import type { LocalSnapshots } from '#local/snapshots.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest();

describe('Class: LocalSnapshots, EBS direct APIs', () => {
  let dir: string;
  let snapshots: LocalSnapshots;
  let now = Date.parse('2026-12-07T10:00:00Z');
  let keyArn: string;

  let make: () => LocalSnapshots;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'stemcell-direct-'));
    now = Date.parse('2026-12-07T10:00:00Z');
    const clock = { now: () => new Date(now) };
    const keys = new LocalKeyService(join(dir, 'kms'), {
      accountId: '111111111111',
      region: 'eu-west-1',
      clock,
    });
    keyArn = keys.createKey({ alias: 'alias/stemcell' }).arn;
    // A store over the region's folder, as one process has it.
    make = () =>
      createLocalEbs({
        dir: join(dir, 'ebs'),
        region: 'eu-west-1',
        accountId: '111111111111',
        keys,
        events: { emit: () => assert.fail('no event follows a direct-API snapshot') },
        backend: 'directory',
        clock,
      }).snapshots;
    snapshots = make();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const start = (more: Partial<Parameters<LocalSnapshots['start']>[0]> = {}) =>
    snapshots.start({
      volumeSizeGiB: 1,
      kmsKeyId: keyArn,
      description: 'd',
      tags: { 'stemcell:stream': 'web', 'stemcell:release': 'web#00000001' },
      clientToken: 't1',
      timeoutMinutes: 60,
      ...more,
    });
  const put = async (id: string, index: number, fill: number) => {
    const data = Buffer.alloc(BLOCK_SIZE, fill);
    await snapshots.putBlock(id, index, data, sha(data).toString('base64'));
    return sha(data);
  };

  it('a first snapshot, then a child that takes its key and its blocks; the restore is the parent with the puts laid over', async () => {
    // act
    const first = await start();
    const again = await start();
    const c1 = new Map([
      [0, await put(first.snapshotId, 0, 1)],
      [5, await put(first.snapshotId, 5, 2)],
    ]);
    assert.equal(
      await snapshots.complete(first.snapshotId, { changedBlocksCount: 2, checksum: linearChecksum(c1) }),
      'completed',
    );
    const child = await start({ parentSnapshotId: first.snapshotId, kmsKeyId: undefined, clientToken: 't2' });
    const c2 = new Map([
      [5, await put(child.snapshotId, 5, 3)],
      [7, await put(child.snapshotId, 7, 0)],
    ]);
    await snapshots.complete(child.snapshotId, { changedBlocksCount: 2, checksum: linearChecksum(c2) });

    // assess
    assert.equal(again.snapshotId, first.snapshotId, 'the same ClientToken gives the same snapshot');
    const m = snapshots.manifest(child.snapshotId);
    assert.equal(m?.parentId, first.snapshotId);
    assert.equal(m?.kmsKeyId, keyArn);
    assert.equal(m?.putBlocks, 2);
    const blocks = [];
    for await (const b of snapshots.listBlocks(child.snapshotId)) blocks.push(b.index);
    assert.deepEqual(blocks, [0, 5], 'block 0 from the parent, 5 put again, 7 all zero');
    const five = await snapshots.getBlock(child.snapshotId, { index: 5, token: m?.blocks[5] as string });
    assert.ok(five.data.equals(Buffer.alloc(BLOCK_SIZE, 3)));
    const out = join(dir, 'restored.raw');
    await snapshots.restore(child.snapshotId, out, '111111111111');
    const disk = readFileSync(out);
    const at = (i: number) => disk.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
    assert.ok(at(0).equals(Buffer.alloc(BLOCK_SIZE, 1)), 'block 0 from the parent');
    assert.ok(at(5).equals(Buffer.alloc(BLOCK_SIZE, 3)), 'block 5 as the child put it');
    assert.ok(at(7).equals(Buffer.alloc(BLOCK_SIZE)), 'block 7 all zero');
  });

  it('refuses what EBS refuses: Encrypted with a parent, a short block, a wrong checksum, an index past the volume, a put after completion', async () => {
    const first = await start();
    await snapshots.complete(first.snapshotId, {
      changedBlocksCount: 0,
      checksum: linearChecksum(new Map()),
    });
    await assert.rejects(
      start({ parentSnapshotId: first.snapshotId, clientToken: 'x' }),
      /ParentSnapshotId and Encrypted/,
    );
    const open = await start({ clientToken: 't3' });
    const data = Buffer.alloc(BLOCK_SIZE, 1);
    await assert.rejects(
      snapshots.putBlock(open.snapshotId, 0, data.subarray(1), sha(data).toString('base64')),
      /bytes, not/,
    );
    await assert.rejects(
      snapshots.putBlock(open.snapshotId, 0, data, sha(Buffer.alloc(1)).toString('base64')),
      /checksum/,
    );
    await assert.rejects(
      snapshots.putBlock(open.snapshotId, 2048, data, sha(data).toString('base64')),
      /outside/,
    );
    await assert.rejects(
      snapshots.putBlock(first.snapshotId, 0, data, sha(data).toString('base64')),
      /is completed/,
    );
  });

  it('a wrong count or aggregate puts the snapshot in error, and no manifest is published', async () => {
    const a = await start();
    const digest = await put(a.snapshotId, 1, 9);
    await assert.rejects(
      snapshots.complete(a.snapshotId, {
        changedBlocksCount: 2,
        checksum: linearChecksum(new Map([[1, digest]])),
      }),
      /ChangedBlocksCount 2, but 1/,
    );
    const b = await start({ clientToken: 'b' });
    await put(b.snapshotId, 1, 9);
    await put(b.snapshotId, 2, 8);
    await assert.rejects(
      snapshots.complete(b.snapshotId, {
        changedBlocksCount: 2,
        checksum: linearChecksum(new Map([[1, digest]])),
      }),
      /aggregated checksum/,
    );
    assert.equal((await snapshots.get(a.snapshotId))?.state, 'error');
    assert.equal((await snapshots.get(b.snapshotId))?.state, 'error');
    assert.equal(snapshots.manifest(b.snapshotId), undefined);
  });

  it('a snapshot whose writer is gone is pending, then in error after its timeout, and can be deleted', async () => {
    // prepare: one process starts a snapshot and dies; another looks at the same folder
    const a = await start({ timeoutMinutes: 10 });
    const other = make();
    // act + assess
    const [seen] = await other.findByTags({ 'stemcell:release': 'web#00000001' });
    assert.equal(seen?.state, 'pending');
    now += 11 * 60_000;
    assert.equal((await other.get(a.snapshotId))?.state, 'error');
    const data = Buffer.alloc(BLOCK_SIZE, 1);
    await assert.rejects(other.putBlock(a.snapshotId, 0, data, sha(data).toString('base64')), /is error/);
    await other.delete(a.snapshotId);
    assert.equal(await other.get(a.snapshotId), undefined);
  });
});
