import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  EC2Client,
  GetConsoleOutputCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2SmokeInstances } from '#aws/smoke-instances.ts';
import { BootHostError } from '#core/model/errors.ts';
import type { BootCheckRequest, ObjectStore } from '#ports';
import { awsError } from '#test/support/fake-aws/common.ts';

const client = () =>
  new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const clock = { now: () => new Date('2026-11-20T10:02:00.000Z') };
const settings = { subnetIds: ['subnet-a', 'subnet-b'], securityGroupId: 'sg-1' };
const request: BootCheckRequest = {
  checkId: 'boot-web-00000001-eu-west-1',
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  architecture: 'arm64',
  bootMode: 'uefi',
  marker: 'login:',
  timeoutSeconds: 180,
  tags: { 'stemcell:stream': 'web', 'stemcell:boot-check': 'boot-web-00000001-eu-west-1' },
};
const instance = (state: string) => ({
  Reservations: [
    {
      Instances: [
        {
          InstanceId: 'i-1',
          State: { Name: state as never },
          LaunchTime: new Date('2026-11-20T10:00:00.000Z'),
        },
      ],
    },
  ],
});
const consoleText = (text: string) => ({ Output: Buffer.from(text).toString('base64') });

describe('Class: Ec2SmokeInstances', () => {
  it('launches one IMDSv2-only instance without key pair, tagged at launch, idempotent by client token', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    mock.on(RunInstancesCommand).resolves({});
    // act
    await new Ec2SmokeInstances({ client: ec2, settings, clock }).start(request);
    // assess
    const [call] = mock.commandCalls(RunInstancesCommand);
    const input = call?.args[0].input;
    assert.equal(input?.ImageId, request.imageId);
    assert.equal(input?.InstanceType, 't4g.micro', 'a small arm64 type');
    assert.equal(input?.KeyName, undefined);
    assert.equal(input?.IamInstanceProfile, undefined);
    assert.deepEqual(input?.MetadataOptions, {
      HttpTokens: 'required',
      HttpEndpoint: 'enabled',
      HttpPutResponseHopLimit: 1,
    });
    assert.deepEqual(input?.SecurityGroupIds, ['sg-1']);
    assert.equal(input?.SubnetId, 'subnet-a');
    assert.match(input?.ClientToken ?? '', /^boot-web-00000001-eu-west-1/);
    const instanceTags = input?.TagSpecifications?.find((t) => t.ResourceType === 'instance')?.Tags;
    assert.ok(instanceTags?.some((t) => t.Key === 'stemcell:boot-check' && t.Value === request.checkId));
    assert.ok(input?.TagSpecifications?.some((t) => t.ResourceType === 'volume'));
  });

  it('does not launch a second instance for a check that has one', async () => {
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves(instance('running'));
    await new Ec2SmokeInstances({ client: ec2, settings, clock }).start(request);
    assert.equal(mock.commandCalls(RunInstancesCommand).length, 0);
  });

  it('tries the next subnet when one has no capacity', async () => {
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    mock
      .on(RunInstancesCommand, { SubnetId: 'subnet-a' })
      .rejects(awsError('InsufficientInstanceCapacity'))
      .on(RunInstancesCommand, { SubnetId: 'subnet-b' })
      .resolves({});
    await new Ec2SmokeInstances({ client: ec2, settings, clock }).start(request);
    assert.deepEqual(
      mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input.SubnetId),
      ['subnet-a', 'subnet-b'],
    );
  });

  it("turns no capacity in any subnet, and the account's instance limits, into a host condition, never the image's fault", async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves({ Reservations: [] });
    mock.on(RunInstancesCommand).rejects(awsError('InsufficientInstanceCapacity'));
    const checker = new Ec2SmokeInstances({ client: ec2, settings, clock });
    // act
    const noCapacity = await checker.start(request).catch((err: Error) => err);
    mock.on(RunInstancesCommand).rejects(awsError('InstanceLimitExceeded'));
    const limit = await checker.start(request).catch((err: Error) => err);
    mock.on(RunInstancesCommand).rejects(awsError('InvalidAMIID.Malformed'));
    const other = await checker.start(request).catch((err: Error) => err);
    // assess
    assert.ok(noCapacity instanceof BootHostError);
    assert.match(
      noCapacity.message,
      /no t4g\.micro capacity in any builder subnet \(InsufficientInstanceCapacity/,
    );
    assert.ok(limit instanceof BootHostError);
    assert.match(limit.message, /t4g\.micro not launched \(InstanceLimitExceeded/);
    assert.ok(other instanceof Error && !(other instanceof BootHostError), 'an error of the image stays one');
    assert.equal(
      mock.commandCalls(RunInstancesCommand).length,
      2 + 1 + 1,
      'every subnet tried for capacity only',
    );
  });

  it('counts the wait of a launched, still pending instance from its launch', async () => {
    // prepare
    const ec2 = client();
    mockClient(ec2).on(DescribeInstancesCommand).resolves(instance('pending'));
    // act
    const seen = await new Ec2SmokeInstances({ client: ec2, settings, clock }).observe(request);
    // assess
    assert.deepEqual(seen, { state: 'waiting', since: '2026-11-20T10:00:00.000Z' });
  });

  it('sees the marker in the latest console output, else passes on both status checks ok', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves(instance('running'));
    mock.on(GetConsoleOutputCommand).resolves(consoleText('Debian GNU/Linux 12 web ttyS0\n\nweb login: '));
    const checker = new Ec2SmokeInstances({ client: ec2, settings, clock });
    // act
    const seen = await checker.observe(request);
    mock.on(GetConsoleOutputCommand).resolves(consoleText('[    2.0] booting\n'));
    mock.on(DescribeInstanceStatusCommand).resolves({
      InstanceStatuses: [
        { SystemStatus: { Status: 'initializing' }, InstanceStatus: { Status: 'initializing' } },
      ],
    });
    const booting = await checker.observe(request);
    mock.on(DescribeInstanceStatusCommand).resolves({
      InstanceStatuses: [{ SystemStatus: { Status: 'ok' }, InstanceStatus: { Status: 'ok' } }],
    });
    const statusOk = await checker.observe(request);
    mock.on(DescribeInstanceStatusCommand).resolves({
      InstanceStatuses: [{ SystemStatus: { Status: 'ok' }, InstanceStatus: { Status: 'impaired' } }],
    });
    const impaired = await checker.observe(request);
    // assess
    assert.equal(seen.state, 'marker-seen');
    assert.equal(seen.state === 'marker-seen' && seen.seconds, 120);
    assert.deepEqual(mock.commandCalls(GetConsoleOutputCommand)[0]?.args[0].input, {
      InstanceId: 'i-1',
      Latest: true,
    });
    assert.equal(booting.state, 'booting');
    assert.equal(statusOk.state, 'marker-seen');
    assert.equal(impaired.state, 'stopped');
  });

  it('terminates the instance on stop even when keeping the console fails, and says where it is kept', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves(instance('running'));
    mock.on(GetConsoleOutputCommand).resolves(consoleText('Kernel panic - not syncing: VFS\n'));
    mock.on(TerminateInstancesCommand).resolves({});
    const puts: string[] = [];
    const store = {
      bucket: 'tarballs',
      put: async (key: string) => {
        puts.push(key);
        return { bucket: 'tarballs', key, etag: '"e"', size: 1, metadata: {} };
      },
    } as unknown as ObjectStore;
    const failing = {
      ...store,
      put: async () => Promise.reject(new Error('S3 down')),
    } as unknown as ObjectStore;
    // act
    const kept = await new Ec2SmokeInstances({ client: ec2, settings, clock, consoleStore: store }).stop(
      request,
    );
    await assert.rejects(
      new Ec2SmokeInstances({ client: ec2, settings, clock, consoleStore: failing }).stop(request),
      /S3 down/,
    );
    // assess
    assert.equal(kept.consoleLog, `s3://tarballs/boot-checks/${request.checkId}.console.log`);
    assert.deepEqual(kept.lastLines, ['Kernel panic - not syncing: VFS']);
    assert.equal(mock.commandCalls(TerminateInstancesCommand).length, 2, 'terminated both times');
  });

  it('sweeps smoke instances older than the cut-off only', async () => {
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: 'i-old', LaunchTime: new Date('2026-11-20T08:00:00.000Z') },
            { InstanceId: 'i-new', LaunchTime: new Date('2026-11-20T10:01:00.000Z') },
          ],
        },
      ],
    });
    mock.on(TerminateInstancesCommand).resolves({});
    const swept = await new Ec2SmokeInstances({ client: ec2, settings, clock }).sweep(3600);
    assert.deepEqual(swept, ['i-old']);
    assert.deepEqual(mock.commandCalls(TerminateInstancesCommand)[0]?.args[0].input.InstanceIds, ['i-old']);
    const filters = mock.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters;
    assert.ok(filters?.some((f) => f.Name === 'tag-key' && f.Values?.includes('stemcell:boot-check')));
  });
});
