// The EBS direct-API adapter against an AWS we did not write: moto_server on 127.0.0.1, through the real SDK
// clients and HTTP. It proves the requests are well formed where it counts — a 512 KiB PutSnapshotBlock body with
// its checksum headers, tags at StartSnapshot found again by DescribeSnapshots filters, the blocks read back. moto
// ignores ParentSnapshotId, Encrypted, KmsKeyArn and the checksums, and reports 512-byte blocks, so the semantics
// are proven locally (test/integration/volumes/direct-snapshots.test.ts) and on the wire with mocks
// (snapshots-direct.test.ts). moto is the one setup installs (test/support/moto/server.ts refuses any other
// version, and fails loudly where there is none: a missing emulator is a broken machine, not a case to skip).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { type MotoServer, startMoto } from '#test/support/moto/server.ts';

describe('EbsSnapshots on moto_server (EBS direct APIs over HTTP)', () => {
  let moto: MotoServer | undefined;
  let endpoint = '';

  before(async () => {
    moto = await startMoto();
    endpoint = moto.endpoint;
  });
  after(async () => {
    await moto?.stop();
  });

  it('starts a tagged snapshot, puts a 512 KiB block with its checksum, completes it, finds it by tags, reads the block back, deletes it', async () => {
    // prepare
    const config = { region: 'eu-west-1', endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } };
    const snapshots = new EbsSnapshots({ client: new EC2Client(config), ebs: new EBSClient(config) });
    const data = Buffer.alloc(512 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    const checksum = createHash('sha256').update(data).digest('base64');

    // act
    const started = await snapshots.start({
      volumeSizeGiB: 1,
      kmsKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/mrk-0123',
      description: 'stemcell moto 1',
      tags: {
        'stemcell:stream': 'moto',
        'stemcell:release': 'moto#00000001',
        'stemcell:region': 'eu-west-1',
      },
      clientToken: 'moto#00000001:eu-west-1:1.1',
      timeoutMinutes: 60,
    });
    await snapshots.putBlock(started.snapshotId, 3, data, checksum);
    const state = await snapshots.complete(started.snapshotId, {
      changedBlocksCount: 1,
      checksum: createHash('sha256').update(createHash('sha256').update(data).digest()).digest('base64'),
    });
    const found = await snapshots.findByTags({
      'stemcell:release': 'moto#00000001',
      'stemcell:region': 'eu-west-1',
    });
    const listed = [];
    for await (const ref of snapshots.listBlocks(started.snapshotId)) listed.push(ref);
    const block = listed[0] ? await snapshots.getBlock(started.snapshotId, listed[0]) : undefined;
    await snapshots.delete(started.snapshotId);

    // assess
    assert.match(started.snapshotId, /^snap-[0-9a-f]+$/);
    assert.equal(state, 'completed');
    assert.deepEqual(
      found.map((s) => [s.snapshotId, s.tags['stemcell:stream']]),
      [[started.snapshotId, 'moto']],
    );
    assert.deepEqual(
      listed.map((b) => b.index),
      [3],
    );
    assert.ok(block?.data.equals(data), 'the block comes back as it was put');
    assert.equal(block?.checksum, checksum);
    assert.equal(await snapshots.get(started.snapshotId), undefined, 'deleted');
  });
});
