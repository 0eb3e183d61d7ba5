import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  ModifyImageAttributeCommand,
  RegisterImageCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2Images } from '#aws/images.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const client = () =>
  new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const noSleep = async () => {};
const ORG = 'arn:aws:organizations::999999999999:organization/o-a1b2c3d4e5';
const OU = 'arn:aws:organizations::999999999999:ou/o-a1b2c3d4e5/ou-ab12-11111111';
const register = {
  name: 'stemcell/web/r1',
  description: 'web r1',
  snapshotId: 'snap-1',
  architecture: 'arm64' as const,
  bootMode: 'uefi' as const,
  rootDeviceName: '/dev/xvda',
  tags: { 'stemcell:stream': 'web' },
  clientToken: 'ignored-by-register-image',
};
const image = (id: string) => ({
  ImageId: id,
  Name: 'stemcell/web/r1',
  State: 'available' as const,
  Architecture: 'arm64' as const,
  BootMode: 'uefi' as const,
  RootDeviceName: '/dev/xvda',
  CreationDate: '2026-11-20T10:00:00.000Z',
  Tags: [{ Key: 'stemcell:stream', Value: 'web' }],
  BlockDeviceMappings: [
    { DeviceName: '/dev/xvda', Ebs: { SnapshotId: 'snap-1', Encrypted: true, KmsKeyId: 'key' } },
  ],
});

describe('Class: Ec2Images', () => {
  it('registers an encrypted-snapshot image with ENA, IMDSv2 only, boot mode and tags at creation', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(RegisterImageCommand).resolves({ ImageId: 'ami-1' });
    // act
    const out = await new Ec2Images({ client: ec2, sleep: noSleep }).register(register);
    // assess
    assert.deepEqual(out, { imageId: 'ami-1', created: true });
    assert.deepEqual(mock.commandCalls(RegisterImageCommand)[0]?.args[0].input, {
      Name: 'stemcell/web/r1',
      Description: 'web r1',
      Architecture: 'arm64',
      RootDeviceName: '/dev/xvda',
      VirtualizationType: 'hvm',
      EnaSupport: true,
      ImdsSupport: 'v2.0',
      BootMode: 'uefi',
      BlockDeviceMappings: [
        {
          DeviceName: '/dev/xvda',
          Ebs: { SnapshotId: 'snap-1', VolumeType: 'gp3', DeleteOnTermination: true },
        },
      ],
      TagSpecifications: [{ ResourceType: 'image', Tags: [{ Key: 'stemcell:stream', Value: 'web' }] }],
    });
  });

  it('maps InvalidAMIName.Duplicate to the existing image (idempotent register)', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(RegisterImageCommand).rejects(awsError('InvalidAMIName.Duplicate'));
    mock.on(DescribeImagesCommand).resolves({ Images: [image('ami-existing')] });
    mock.on(DescribeImageAttributeCommand).resolves({ LaunchPermissions: [] });
    // act
    const out = await new Ec2Images({ client: ec2, sleep: noSleep }).register(register);
    // assess
    assert.deepEqual(out, { imageId: 'ami-existing', created: false });
    assert.deepEqual(mock.commandCalls(DescribeImagesCommand)[0]?.args[0].input, {
      Owners: ['self'],
      Filters: [{ Name: 'name', Values: ['stemcell/web/r1'] }],
      NextToken: undefined,
      MaxResults: undefined,
    });
  });

  it('retries RegisterImage on RequestLimitExceeded', async () => {
    const ec2 = client();
    const mock = mockClient(ec2);
    mock
      .on(RegisterImageCommand)
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .resolves({ ImageId: 'ami-1' });
    assert.deepEqual(await new Ec2Images({ client: ec2, sleep: noSleep }).register(register), {
      imageId: 'ami-1',
      created: true,
    });
    assert.equal(mock.commandCalls(RegisterImageCommand).length, 2);
  });

  it('shares with the organization and OUs by full ARN, and refuses bare ids', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(ModifyImageAttributeCommand).resolves({});
    const images = new Ec2Images({ client: ec2, sleep: noSleep });
    // act
    await images.share('ami-1', { organizationArns: [ORG], ouArns: [OU] });
    // assess
    assert.deepEqual(mock.commandCalls(ModifyImageAttributeCommand)[0]?.args[0].input, {
      ImageId: 'ami-1',
      Attribute: 'launchPermission',
      LaunchPermission: { Add: [{ OrganizationArn: ORG }, { OrganizationalUnitArn: OU }] },
    });
    await assert.rejects(
      images.share('ami-1', { organizationArns: ['o-a1b2c3d4e5'], ouArns: [] }),
      /full organization ARN/,
    );
    await assert.rejects(
      images.share('ami-1', { organizationArns: [], ouArns: ['ou-ab12-11111111'] }),
      /full OU ARN/,
    );
  });

  it('reads an image with its launch permissions, over every page of a tag listing', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock
      .on(DescribeImagesCommand)
      .resolvesOnce({ Images: [image('ami-1')], NextToken: 'n' })
      .resolvesOnce({ Images: [image('ami-2')] });
    mock
      .on(DescribeImageAttributeCommand)
      .resolves({ LaunchPermissions: [{ OrganizationArn: ORG }, { UserId: '123456789012' }] });
    // act
    const listed = await new Ec2Images({ client: ec2, sleep: noSleep }).listByTag('stemcell:stream', 'web');
    // assess
    assert.deepEqual(
      listed.map((i) => i.imageId),
      ['ami-1', 'ami-2'],
    );
    assert.deepEqual(listed[0]?.sharedWith, {
      organizationArns: [ORG],
      ouArns: [],
      accountIds: ['123456789012'],
    });
    assert.equal(listed[0]?.encrypted, true);
    assert.equal(listed[0]?.kmsKeyId, 'key');
    assert.equal(listed[0]?.snapshotId, 'snap-1');
    assert.deepEqual(mock.commandCalls(DescribeImagesCommand)[0]?.args[0].input.Filters, [
      { Name: 'tag:stemcell:stream', Values: ['web'] },
    ]);
  });

  it('deprecates at the given time, and treats a missing image as deregistered', async () => {
    // prepare
    const ec2 = client();
    const mock = mockClient(ec2);
    mock.on(EnableImageDeprecationCommand).resolves({});
    mock.on(DeregisterImageCommand).rejects(awsError('InvalidAMIID.NotFound'));
    mock.on(DescribeImagesCommand).rejects(awsError('InvalidAMIID.NotFound'));
    const images = new Ec2Images({ client: ec2, sleep: noSleep });
    const at = new Date('2030-01-01T00:00:00Z');
    // act
    await images.deprecate('ami-1', at);
    await images.deregister('ami-1');
    // assess
    assert.deepEqual(mock.commandCalls(EnableImageDeprecationCommand)[0]?.args[0].input, {
      ImageId: 'ami-1',
      DeprecateAt: at,
    });
    assert.deepEqual(mock.commandCalls(DeregisterImageCommand)[0]?.args[0].input, { ImageId: 'ami-1' });
    assert.equal(await images.get('ami-1'), undefined);
  });
});
