// The direct-API snapshot writer (src/builder/snapshot/writer.ts) over the AWS adapter, checked on the wire:
// the order and content of StartSnapshot / PutSnapshotBlock / CompleteSnapshot, the checksums, the retries of
// the early "does not exist" window and of throttling, and the delete of a snapshot that fails midway.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import { DeleteSnapshotCommand, DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { BLOCK_SIZE } from '#builder/snapshot/digests.ts';
import type { ChangedBlock } from '#builder/snapshot/scan.ts';
import { type DirectSnapshotError, writeDirectSnapshot } from '#builder/snapshot/writer.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const SNAP = 'snap-0123456789abcdef0';

function clients() {
  const ec2 = new EC2Client({ region: 'eu-west-1', credentials });
  const ebs = new EBSClient({ region: 'eu-west-1', credentials });
  return { ec2, ebs, ec2Mock: mockClient(ec2), ebsMock: mockClient(ebs) };
}

function block(index: number, fill: number): ChangedBlock {
  const data = Buffer.alloc(BLOCK_SIZE, fill);
  return { index, data, checksum: createHash('sha256').update(data).digest() };
}

async function* blocks(list: ChangedBlock[]): AsyncGenerator<ChangedBlock> {
  yield* list;
}

/** A clock the sleeps advance: the early window is measured on it. */
function virtualTime() {
  let now = 1_000_000;
  const slept: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
    slept,
  };
}

const input = {
  volumeSizeGiB: 4,
  parentSnapshotId: 'snap-0aaaaaaaaaaaaaaaa',
  description: 'stemcell web r2 (sequence 2)',
  tags: { 'stemcell:stream': 'web', 'stemcell:release': 'web#00000002' },
  clientToken: 'web#00000002:eu-west-1:1.0',
};

describe('EBS direct-API snapshots on the wire (EbsSnapshots + writeDirectSnapshot)', () => {
  it('starts on the parent, puts each changed block with its checksum, completes with the count and LINEAR checksum, waits for completed', async () => {
    // prepare
    const { ec2, ebs, ec2Mock, ebsMock } = clients();
    const t = virtualTime();
    const order: string[] = [];
    ebsMock.on(StartSnapshotCommand).callsFake(() => {
      order.push('start');
      return { SnapshotId: SNAP, BlockSize: BLOCK_SIZE, Status: 'pending' };
    });
    ebsMock.on(PutSnapshotBlockCommand).callsFake((i) => {
      order.push(`put ${i.BlockIndex}`);
      return {};
    });
    ebsMock.on(CompleteSnapshotCommand).callsFake(() => {
      order.push('complete');
      return { Status: 'pending' };
    });
    ec2Mock
      .on(DescribeSnapshotsCommand)
      .resolvesOnce({ Snapshots: [{ SnapshotId: SNAP, State: 'pending' }] })
      .resolves({ Snapshots: [{ SnapshotId: SNAP, State: 'completed' }] });
    const changed = [block(7, 1), block(2, 2), block(40, 3)];
    const snapshots = new EbsSnapshots({ client: ec2, ebs, sleep: t.sleep, now: t.now });

    // act
    const result = await writeDirectSnapshot(snapshots, input, blocks(changed), {
      concurrency: 1,
      sleep: t.sleep,
    });

    // assess
    assert.deepEqual(ebsMock.commandCalls(StartSnapshotCommand)[0]?.args[0].input, {
      VolumeSize: 4,
      ParentSnapshotId: 'snap-0aaaaaaaaaaaaaaaa',
      Description: 'stemcell web r2 (sequence 2)',
      ClientToken: 'web#00000002:eu-west-1:1.0',
      Timeout: 60,
      Tags: [
        { Key: 'stemcell:stream', Value: 'web' },
        { Key: 'stemcell:release', Value: 'web#00000002' },
      ],
    });
    assert.deepEqual(order, ['start', 'put 7', 'put 2', 'put 40', 'complete']);
    for (const [n, b] of changed.entries()) {
      const sent = ebsMock.commandCalls(PutSnapshotBlockCommand)[n]?.args[0].input;
      assert.equal(sent?.SnapshotId, SNAP);
      assert.equal(sent?.BlockIndex, b.index);
      assert.equal(sent?.DataLength, BLOCK_SIZE);
      assert.equal(sent?.ChecksumAlgorithm, 'SHA256');
      assert.equal(sent?.Checksum, createHash('sha256').update(b.data).digest('base64'));
      assert.ok(Buffer.from(sent?.BlockData as Uint8Array).equals(b.data));
    }
    // LINEAR: the SHA-256 of the blocks' SHA-256 digests in ascending block order (2, 7, 40), base64.
    const linear = createHash('sha256')
      .update(Buffer.concat([changed[1], changed[0], changed[2]].map((b) => (b as ChangedBlock).checksum)))
      .digest('base64');
    assert.deepEqual(ebsMock.commandCalls(CompleteSnapshotCommand)[0]?.args[0].input, {
      SnapshotId: SNAP,
      ChangedBlocksCount: 3,
      Checksum: linear,
      ChecksumAlgorithm: 'SHA256',
      ChecksumAggregationMethod: 'LINEAR',
    });
    assert.equal(ec2Mock.commandCalls(DescribeSnapshotsCommand).length, 2, 'polled until completed');
    assert.equal(result.snapshotId, SNAP);
    assert.equal(result.changedBlocks, 3);
    assert.equal(result.checksum, linear);
  });

  it('a first snapshot is Encrypted with the stream key, and names no parent', async () => {
    // prepare
    const { ec2, ebs, ebsMock } = clients();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'completed' });
    const { parentSnapshotId: _parent, ...first } = input;
    const key = 'arn:aws:kms:eu-west-1:111111111111:key/mrk-0123';

    // act
    const result = await writeDirectSnapshot(
      new EbsSnapshots({ client: ec2, ebs }),
      { ...first, kmsKeyId: key },
      blocks([]),
    );

    // assess
    const sent = ebsMock.commandCalls(StartSnapshotCommand)[0]?.args[0].input;
    assert.equal(sent?.Encrypted, true);
    assert.equal(sent?.KmsKeyArn, key);
    assert.equal(sent?.ParentSnapshotId, undefined);
    assert.equal(result.changedBlocks, 0);
    // An empty put list still completes, with the checksum of nothing.
    assert.equal(
      ebsMock.commandCalls(CompleteSnapshotCommand)[0]?.args[0].input.Checksum,
      createHash('sha256').digest('base64'),
    );
  });

  it('retries "does not exist" while the snapshot is young, with coldsnap-like growing waits', async () => {
    // prepare
    const { ec2, ebs, ebsMock } = clients();
    const t = virtualTime();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    const notYet = awsError('ResourceNotFoundException', `The snapshot '${SNAP}' does not exist.`);
    ebsMock
      .on(PutSnapshotBlockCommand)
      .rejectsOnce(notYet)
      .rejectsOnce(notYet)
      .rejectsOnce(notYet)
      .resolves({});
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'completed' });

    // act
    const result = await writeDirectSnapshot(
      new EbsSnapshots({ client: ec2, ebs, sleep: t.sleep, now: t.now }),
      input,
      blocks([block(0, 9)]),
      { sleep: t.sleep },
    );

    // assess
    assert.equal(result.changedBlocks, 1);
    assert.equal(ebsMock.commandCalls(PutSnapshotBlockCommand).length, 4);
    assert.deepEqual(t.slept, [2000, 4000, 6000]);
  });

  it('"does not exist" after the early window is final: the snapshot is deleted and the error says so', async () => {
    // prepare
    const { ec2, ebs, ec2Mock, ebsMock } = clients();
    const t = virtualTime();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    ebsMock
      .on(PutSnapshotBlockCommand)
      .rejects(awsError('ResourceNotFoundException', `The snapshot '${SNAP}' does not exist.`));
    ec2Mock.on(DeleteSnapshotCommand).resolves({});

    // act
    const failed = writeDirectSnapshot(
      new EbsSnapshots({ client: ec2, ebs, sleep: t.sleep, now: t.now, retry: { notFoundWindowMs: 30_000 } }),
      input,
      blocks([block(3, 1)]),
      { sleep: t.sleep },
    );

    // assess
    await assert.rejects(failed, (err: DirectSnapshotError) => {
      assert.equal(err.snapshotId, SNAP);
      assert.match(
        err.message,
        /snap-0123456789abcdef0 .* failed while putting blocks: .*block 3: ResourceNotFoundException.*; deleted/,
      );
      return true;
    });
    assert.ok(t.now() - 1_000_000 >= 30_000, 'waited out the window');
    assert.ok(t.now() - 1_000_000 < 60_000, 'and no longer');
    assert.deepEqual(ec2Mock.commandCalls(DeleteSnapshotCommand)[0]?.args[0].input, { SnapshotId: SNAP });
    assert.equal(ebsMock.commandCalls(CompleteSnapshotCommand).length, 0, 'never completed');
  });

  it('retries throttling with backoff, and gives up after the set attempts', async () => {
    // prepare
    const { ec2, ebs, ec2Mock, ebsMock } = clients();
    const t = virtualTime();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    const throttled = awsError('RequestThrottledException', 'Rate exceeded');
    ebsMock
      .on(PutSnapshotBlockCommand, { BlockIndex: 1 })
      .rejectsOnce(throttled)
      .rejectsOnce(throttled)
      .resolves({});
    ebsMock.on(PutSnapshotBlockCommand, { BlockIndex: 2 }).rejects(throttled);
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'completed' });
    ec2Mock.on(DeleteSnapshotCommand).resolves({});
    const snapshots = new EbsSnapshots({
      client: ec2,
      ebs,
      sleep: t.sleep,
      now: t.now,
      retry: { attempts: 4 },
    });

    // act
    const ok = await writeDirectSnapshot(snapshots, input, blocks([block(1, 1)]), { sleep: t.sleep });
    const failed = writeDirectSnapshot(snapshots, input, blocks([block(2, 1)]), { sleep: t.sleep });

    // assess
    assert.equal(ok.changedBlocks, 1);
    await assert.rejects(
      failed,
      /failed while putting blocks: PutSnapshotBlock .* block 2: RequestThrottledException: Rate exceeded; deleted/,
    );
    const calls = ebsMock.commandCalls(PutSnapshotBlockCommand);
    assert.equal(calls.filter((c) => c.args[0].input.BlockIndex === 1).length, 3);
    assert.equal(calls.filter((c) => c.args[0].input.BlockIndex === 2).length, 4);
    assert.ok(
      t.slept.every((ms) => ms <= 10_000),
      'backoff capped',
    );
  });

  it('a block that fails midway stops the puts, deletes the snapshot, and never completes it', async () => {
    // prepare
    const { ec2, ebs, ec2Mock, ebsMock } = clients();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    ebsMock
      .on(PutSnapshotBlockCommand)
      .resolves({})
      .on(PutSnapshotBlockCommand, { BlockIndex: 5 })
      .rejects(awsError('ValidationException', 'The checksum does not match'));
    ec2Mock.on(DeleteSnapshotCommand).resolves({});
    const many = Array.from({ length: 40 }, (_, i) => block(i, i + 1));

    // act
    const failed = writeDirectSnapshot(new EbsSnapshots({ client: ec2, ebs }), input, blocks(many), {
      concurrency: 2,
    });

    // assess
    await assert.rejects(failed, /block 5: ValidationException: The checksum does not match; deleted/);
    assert.ok(ebsMock.commandCalls(PutSnapshotBlockCommand).length < 40, 'stopped putting');
    assert.equal(ebsMock.commandCalls(CompleteSnapshotCommand).length, 0);
    assert.equal(ec2Mock.commandCalls(DeleteSnapshotCommand).length, 1);
  });

  it('a snapshot that EBS puts in error after completion is deleted', async () => {
    // prepare
    const { ec2, ebs, ec2Mock, ebsMock } = clients();
    const t = virtualTime();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    ebsMock.on(PutSnapshotBlockCommand).resolves({});
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'pending' });
    ec2Mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [{ SnapshotId: SNAP, State: 'error' }] });
    ec2Mock.on(DeleteSnapshotCommand).resolves({});

    // act
    const failed = writeDirectSnapshot(new EbsSnapshots({ client: ec2, ebs }), input, blocks([block(0, 1)]), {
      sleep: t.sleep,
    });

    // assess
    await assert.rejects(
      failed,
      /failed while waiting for completed: EBS reports the snapshot in error state; deleted/,
    );
    assert.equal(ec2Mock.commandCalls(DeleteSnapshotCommand).length, 1);
  });

  it('bounds the puts in flight', async () => {
    // prepare
    const { ec2, ebs, ebsMock } = clients();
    ebsMock.on(StartSnapshotCommand).resolves({ SnapshotId: SNAP, BlockSize: BLOCK_SIZE });
    let inFlight = 0;
    let most = 0;
    ebsMock.on(PutSnapshotBlockCommand).callsFake(async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      return {};
    });
    ebsMock.on(CompleteSnapshotCommand).resolves({ Status: 'completed' });

    // act
    await writeDirectSnapshot(
      new EbsSnapshots({ client: ec2, ebs }),
      input,
      blocks(Array.from({ length: 30 }, (_, i) => block(i, 1))),
      { concurrency: 4 },
    );

    // assess
    assert.equal(most, 4);
  });

  it('reads a snapshot back: ListSnapshotBlocks pages, GetSnapshotBlock data and checksum', async () => {
    // prepare
    const { ec2, ebs, ebsMock } = clients();
    const data = Buffer.alloc(BLOCK_SIZE, 5);
    ebsMock
      .on(ListSnapshotBlocksCommand)
      .resolvesOnce({ Blocks: [{ BlockIndex: 0, BlockToken: 't0' }], NextToken: 'n' })
      .resolves({ Blocks: [{ BlockIndex: 9, BlockToken: 't9' }] });
    ebsMock.on(GetSnapshotBlockCommand).callsFake(() => ({
      // The SDK's streaming body, reduced to what the adapter calls.
      BlockData: { transformToByteArray: async () => new Uint8Array(data) } as never,
      Checksum: createHash('sha256').update(data).digest('base64'),
      DataLength: BLOCK_SIZE,
    }));
    const snapshots = new EbsSnapshots({ client: ec2, ebs });

    // act
    const listed = [];
    for await (const b of snapshots.listBlocks(SNAP)) listed.push(b);
    const got = await snapshots.getBlock(SNAP, { index: 9, token: 't9' });

    // assess
    assert.deepEqual(listed, [
      { index: 0, token: 't0' },
      { index: 9, token: 't9' },
    ]);
    assert.deepEqual(ebsMock.commandCalls(GetSnapshotBlockCommand)[0]?.args[0].input, {
      SnapshotId: SNAP,
      BlockIndex: 9,
      BlockToken: 't9',
    });
    assert.ok(got.data.equals(data));
  });
});
