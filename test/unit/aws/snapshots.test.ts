import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CreateSnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const client = () =>
  new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const noSleep = async () => {};
const input = {
  description: 'stemcell web r1',
  tags: { 'stemcell:stream': 'web' },
  clientToken: 'web#00000001/eu-west-1',
};

describe('Class: EbsSnapshots', () => {
  it('creates a snapshot tagged at creation, the client token among the tags', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    mock
      .on(CreateSnapshotCommand)
      .resolves({ SnapshotId: 'snap-1', VolumeId: 'vol-1', State: 'pending', KmsKeyId: 'k' });
    // act
    const snap = await new EbsSnapshots({ client: ec2, sleep: noSleep }).create('vol-1', input);
    // assess
    assert.deepEqual(mock.commandCalls(DescribeSnapshotsCommand)[0]?.args[0].input, {
      OwnerIds: ['self'],
      Filters: [{ Name: 'tag:stemcell:client-token', Values: ['web#00000001/eu-west-1'] }],
      NextToken: undefined,
      MaxResults: undefined,
    });
    assert.deepEqual(mock.commandCalls(CreateSnapshotCommand)[0]?.args[0].input, {
      VolumeId: 'vol-1',
      Description: 'stemcell web r1',
      TagSpecifications: [
        {
          ResourceType: 'snapshot',
          Tags: [
            { Key: 'stemcell:stream', Value: 'web' },
            { Key: 'stemcell:client-token', Value: 'web#00000001/eu-west-1' },
          ],
        },
      ],
    });
    assert.equal(snap.snapshotId, 'snap-1');
    assert.equal(snap.state, 'pending');
  });

  it('returns the snapshot a previous attempt made with the same token (redelivery)', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock
      .on(DescribeSnapshotsCommand)
      .resolves({ Snapshots: [{ SnapshotId: 'snap-old', VolumeId: 'vol-1', State: 'completed' }] });
    // act
    const snap = await new EbsSnapshots({ client: ec2, sleep: noSleep }).create('vol-1', input);
    // assess
    assert.equal(snap.snapshotId, 'snap-old');
    assert.equal(mock.commandCalls(CreateSnapshotCommand).length, 0);
  });

  it('backs off on ConcurrentSnapshotLimitExceeded and RequestLimitExceeded, bounded', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    mock
      .on(CreateSnapshotCommand)
      .rejectsOnce(awsError('ConcurrentSnapshotLimitExceeded'))
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .resolves({ SnapshotId: 'snap-1' });
    const slept: number[] = [];
    // act
    const snap = await new EbsSnapshots({ client: ec2, sleep: async (ms) => void slept.push(ms) }).create(
      'vol-1',
      input,
    );
    // assess
    assert.equal(snap.snapshotId, 'snap-1');
    assert.equal(slept.length, 2);

    // prepare: the limit never clears
    const stuck = client();
    const stuckMock = mockClient(stuck);
    stuckMock.on(DescribeSnapshotsCommand).resolves({ Snapshots: [] });
    stuckMock.on(CreateSnapshotCommand).rejects(awsError('ConcurrentSnapshotLimitExceeded'));
    // act / assess
    await assert.rejects(new EbsSnapshots({ client: stuck, sleep: noSleep }).create('vol-1', input), {
      name: 'ConcurrentSnapshotLimitExceeded',
    });
    assert.equal(stuckMock.commandCalls(CreateSnapshotCommand).length, 8);
  });

  it('maps NotFound to undefined on get and to success on delete', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeSnapshotsCommand).rejects(awsError('InvalidSnapshot.NotFound'));
    mock.on(DeleteSnapshotCommand).rejects(awsError('InvalidSnapshot.NotFound'));
    const snapshots = new EbsSnapshots({ client: ec2, sleep: noSleep });
    // act / assess
    assert.equal(await snapshots.get('snap-x'), undefined);
    await snapshots.delete('snap-x');
    assert.deepEqual(mock.commandCalls(DeleteSnapshotCommand)[0]?.args[0].input, { SnapshotId: 'snap-x' });
  });
});
