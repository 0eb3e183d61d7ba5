import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  DetachVolumeCommand,
  EC2Client,
  ModifyVolumeCommand,
  type Volume,
  type VolumeState,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2Volumes, nvmeDeviceLookup } from '#aws/volumes.ts';
import { WaitTimeoutError, waitWithRecheck } from '#aws/waiting.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const client = () =>
  new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const noSleep = async () => {};
const WAIT = { maxWaitTime: 5, minDelay: 1, maxDelay: 1 };
const lookup = async (id: string) => `/dev/test/${id}`;
const volume = (state: VolumeState, extra: Partial<Volume> = {}): Volume => ({
  VolumeId: 'vol-1',
  State: state,
  Size: 4,
  AvailabilityZone: 'eu-west-1a',
  KmsKeyId: 'key',
  Tags: [{ Key: 'stemcell:stream', Value: 'web' }],
  ...extra,
});

describe('Class: Ec2Volumes', () => {
  it('creates a gp3 volume encrypted with the key, tagged at creation, with the client token', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(CreateVolumeCommand).resolves({ VolumeId: 'vol-1' });
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume('available')] });
    const volumes = new Ec2Volumes({ client: ec2, wait: WAIT, sleep: noSleep, deviceLookup: lookup });
    // act
    const created = await volumes.create({
      stream: 'web',
      availabilityZone: 'eu-west-1a',
      sizeGiB: 4,
      kmsKeyId: 'key',
      tags: { 'stemcell:release': 'web#00000001' },
      clientToken: 'tok',
    });
    // assess
    assert.deepEqual(mock.commandCalls(CreateVolumeCommand)[0]?.args[0].input, {
      AvailabilityZone: 'eu-west-1a',
      Size: 4,
      VolumeType: 'gp3',
      Encrypted: true,
      KmsKeyId: 'key',
      ClientToken: 'tok',
      TagSpecifications: [
        {
          ResourceType: 'volume',
          Tags: [
            { Key: 'stemcell:release', Value: 'web#00000001' },
            { Key: 'stemcell:stream', Value: 'web' },
          ],
        },
      ],
    });
    assert.equal(created.volumeId, 'vol-1');
    assert.equal(created.stream, 'web');
  });

  it('backs off and retries CreateVolume on RequestLimitExceeded', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock
      .on(CreateVolumeCommand)
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .resolves({ VolumeId: 'vol-1' });
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume('available')] });
    const sleeps: number[] = [];
    const volumes = new Ec2Volumes({
      client: ec2,
      wait: WAIT,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      deviceLookup: lookup,
    });
    // act
    await volumes.create({
      stream: 'web',
      availabilityZone: 'a',
      sizeGiB: 1,
      kmsKeyId: 'k',
      tags: {},
      clientToken: 't',
    });
    // assess
    assert.equal(mock.commandCalls(CreateVolumeCommand).length, 3);
    assert.equal(sleeps.length, 2);
  });

  it('finds the stream volume with tag, AZ and live-state filters over every page', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock
      .on(DescribeVolumesCommand)
      .resolvesOnce({ Volumes: [volume('in-use', { VolumeId: 'vol-busy' })], NextToken: 'n' })
      .resolvesOnce({ Volumes: [volume('available', { VolumeId: 'vol-free' })] });
    const volumes = new Ec2Volumes({ client: ec2, wait: WAIT, sleep: noSleep, deviceLookup: lookup });
    // act
    const found = await volumes.findForStream('web', 'eu-west-1a');
    // assess
    assert.equal(found?.volumeId, 'vol-free');
    assert.deepEqual(mock.commandCalls(DescribeVolumesCommand)[0]?.args[0].input.Filters, [
      { Name: 'tag:stemcell:stream', Values: ['web'] },
      { Name: 'availability-zone', Values: ['eu-west-1a'] },
      { Name: 'status', Values: ['creating', 'available', 'in-use'] },
    ]);
    assert.equal(mock.commandCalls(DescribeVolumesCommand)[1]?.args[0].input.NextToken, 'n');
  });

  it('attaches on a free device name, retrying IncorrectState, and finds the device by volume id', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    let attached = false;
    mock
      .on(DescribeVolumesCommand)
      .callsFake(() => ({ Volumes: [volume(attached ? 'in-use' : 'available')] }));
    mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        { Instances: [{ BlockDeviceMappings: [{ DeviceName: '/dev/xvda' }, { DeviceName: '/dev/sdf' }] }] },
      ],
    });
    mock
      .on(AttachVolumeCommand)
      .rejectsOnce(awsError('IncorrectState'))
      .callsFake(() => {
        attached = true;
        return { State: 'attaching' };
      });
    const seen: string[] = [];
    const volumes = new Ec2Volumes({
      client: ec2,
      wait: WAIT,
      sleep: noSleep,
      deviceLookup: async (id, requested) => {
        seen.push(id, requested);
        return '/dev/nvme1n1';
      },
    });
    // act
    const attachment = await volumes.attach('vol-1', 'i-1');
    // assess
    assert.deepEqual(attachment, { kind: 'block', devicePath: '/dev/nvme1n1' });
    assert.equal(mock.commandCalls(AttachVolumeCommand).length, 2);
    assert.deepEqual(mock.commandCalls(AttachVolumeCommand)[1]?.args[0].input, {
      VolumeId: 'vol-1',
      InstanceId: 'i-1',
      Device: '/dev/sdg',
    });
    assert.deepEqual(seen, ['vol-1', '/dev/sdg']);
  });

  it('detaches only when attached to this instance, retrying IncorrectState', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    let detached = false;
    mock.on(DescribeVolumesCommand).callsFake(() => ({
      Volumes: [
        detached
          ? volume('available')
          : volume('in-use', { Attachments: [{ InstanceId: 'i-1', State: 'attached', Device: '/dev/sdf' }] }),
      ],
    }));
    mock
      .on(DetachVolumeCommand)
      .rejectsOnce(awsError('IncorrectState'))
      .callsFake(() => {
        detached = true;
        return {};
      });
    const volumes = new Ec2Volumes({ client: ec2, wait: WAIT, sleep: noSleep, deviceLookup: lookup });
    // act
    await volumes.detach('vol-1', 'i-1');
    await volumes.detach('vol-1', 'i-1');
    // assess
    assert.equal(
      mock.commandCalls(DetachVolumeCommand).length,
      2,
      'one retry, and nothing for the second call',
    );
  });

  it('fails with WaitTimeoutError naming the volume when it never reaches the state, even after a re-check', async () => {
    // prepare
    const stuck = client();
    const mock = mockClient(stuck);
    mock.on(CreateVolumeCommand).resolves({ VolumeId: 'vol-2' });
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume('creating', { VolumeId: 'vol-2' })] });
    const never = new Ec2Volumes({
      client: stuck,
      wait: { maxWaitTime: 2, minDelay: 1, maxDelay: 1 },
      sleep: noSleep,
      deviceLookup: lookup,
    });
    const input = {
      stream: 'web',
      availabilityZone: 'a',
      sizeGiB: 1,
      kmsKeyId: 'k',
      tags: {},
      clientToken: 't',
    };
    // act / assess
    await assert.rejects(never.create(input), (err: unknown) => {
      assert.ok(err instanceof WaitTimeoutError);
      assert.match(err.message, /vol-2 becoming available: still creating/);
      return true;
    });
  });

  it('grows with ModifyVolume and waits for optimizing; a volume already big enough is left alone', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeVolumesCommand).resolves({ Volumes: [volume('in-use')] });
    mock.on(ModifyVolumeCommand).resolves({});
    mock
      .on(DescribeVolumesModificationsCommand)
      .resolvesOnce({ VolumesModifications: [{ ModificationState: 'modifying' }] })
      .resolves({ VolumesModifications: [{ ModificationState: 'optimizing' }] });
    const volumes = new Ec2Volumes({ client: ec2, wait: WAIT, sleep: noSleep, deviceLookup: lookup });
    // act
    await volumes.grow('vol-1', 8);
    await volumes.grow('vol-1', 4);
    // assess
    assert.deepEqual(
      mock.commandCalls(ModifyVolumeCommand).map((c) => c.args[0].input),
      [{ VolumeId: 'vol-1', Size: 8 }],
    );
    assert.equal(mock.commandCalls(DescribeVolumesModificationsCommand).length, 2);
  });
});

describe('Function: nvmeDeviceLookup()', () => {
  it('resolves the by-id link named after the volume id serial', async () => {
    // prepare
    const resolved: string[] = [];
    const find = nvmeDeviceLookup({
      list: async () => [
        'nvme-Amazon_Elastic_Block_Store_vol0aaa',
        'nvme-Amazon_Elastic_Block_Store_vol0123abc',
      ],
      resolve: async (p) => {
        resolved.push(p);
        if (!p.startsWith('/dev/disk/by-id/')) throw new Error('ENOENT');
        return '/dev/nvme2n1';
      },
      sleep: noSleep,
    });
    // act
    const device = await find('vol-0123abc', '/dev/sdf');
    // assess
    assert.equal(device, '/dev/nvme2n1');
    assert.deepEqual(resolved, ['/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123abc']);
  });

  it('waits for udev, bounded, and names the volume when the device never shows up', async () => {
    // prepare
    let lists = 0;
    const find = nvmeDeviceLookup({
      list: async () => {
        lists++;
        return [];
      },
      resolve: async () => {
        throw new Error('ENOENT');
      },
      sleep: noSleep,
      timeoutMs: 2000,
    });
    // act / assess
    await assert.rejects(
      find('vol-9', '/dev/sdf'),
      /vol-9: no device .*nvme-Amazon_Elastic_Block_Store_vol9/,
    );
    assert.equal(lists, 5);
  });
});

describe('Function: waitWithRecheck()', () => {
  const timeout = () => Object.assign(new Error('{"state":"TIMEOUT"}'), { name: 'TimeoutError' });
  const limits = { maxWaitTime: 60 };

  it('accepts a timed-out wait when the re-check finds the state reached', async () => {
    // prepare
    let rechecks = 0;
    // act
    await waitWithRecheck(
      'snapshot snap-1 completing',
      limits,
      async () => {
        throw timeout();
      },
      async () => {
        rechecks++;
        return { reached: true, state: 'completed' };
      },
    );
    // assess
    assert.equal(rechecks, 1);
  });

  it('fails a timed-out wait whose re-check still misses, naming the last state', async () => {
    await assert.rejects(
      waitWithRecheck(
        'snapshot snap-1 completing',
        limits,
        async () => {
          throw timeout();
        },
        async () => ({ reached: false, state: 'pending' }),
      ),
      /snapshot snap-1 completing: still pending after waiting 60s/,
    );
  });

  it('rethrows a waiter failure without re-checking', async () => {
    let rechecks = 0;
    await assert.rejects(
      waitWithRecheck(
        'x',
        limits,
        async () => {
          throw new Error('{"state":"FAILURE"}');
        },
        async () => {
          rechecks++;
          return { reached: true, state: 'ok' };
        },
      ),
      /FAILURE/,
    );
    assert.equal(rechecks, 0);
  });
});
