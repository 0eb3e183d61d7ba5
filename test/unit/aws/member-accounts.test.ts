import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeInstanceRefreshesCommand,
  StartInstanceRefreshCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateVersionCommand,
  EC2Client,
  ModifyLaunchTemplateCommand,
} from '@aws-sdk/client-ec2';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { AwsMemberAccounts } from '#aws/member-accounts.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const creds = { accessKeyId: 'x', secretAccessKey: 'x' };
function setup() {
  const ec2 = new EC2Client({ region: 'eu-west-1', credentials: creds });
  const autoScaling = new AutoScalingClient({ region: 'eu-west-1', credentials: creds });
  const ssm = new SSMClient({ region: 'eu-west-1', credentials: creds });
  const calls: string[] = [];
  const members = new AwsMemberAccounts({
    clients: (accountId, region) => {
      calls.push(`${accountId}/${region}`);
      return { ec2, autoScaling, ssm };
    },
    sleep: async () => {},
  });
  return { ec2: mockClient(ec2), asg: mockClient(autoScaling), ssm: mockClient(ssm), members, calls };
}

describe('Class: AwsMemberAccounts', () => {
  it('creates clients once per account and region', () => {
    const { members, calls } = setup();
    const a = members.forAccount('100000000001', 'eu-west-1');
    assert.equal(members.forAccount('100000000001', 'eu-west-1'), a);
    members.forAccount('100000000001', 'us-east-1');
    assert.deepEqual(calls, ['100000000001/eu-west-1', '100000000001/us-east-1']);
  });

  it('creates a launch template version from the source with only the image changed, with the client token', async () => {
    // prepare
    const { ec2, members } = setup();
    ec2
      .on(CreateLaunchTemplateVersionCommand)
      .rejectsOnce(awsError('RequestLimitExceeded'))
      .resolves({
        LaunchTemplateVersion: {
          VersionNumber: 5,
          VersionDescription: 'd',
          LaunchTemplateData: { ImageId: 'ami-2' },
        },
      });
    ec2.on(ModifyLaunchTemplateCommand).resolves({});
    const account = members.forAccount('100000000001', 'eu-west-1');
    // act
    const v = await account.createLaunchTemplateVersion('lt-1', {
      sourceVersion: 4,
      imageId: 'ami-2',
      versionDescription: 'd',
      clientToken: 'web#00000002/lt-1',
    });
    await account.setDefaultVersion('lt-1', 5);
    // assess
    assert.deepEqual(v, { versionNumber: 5, imageId: 'ami-2', versionDescription: 'd' });
    assert.deepEqual(ec2.commandCalls(CreateLaunchTemplateVersionCommand)[1]?.args[0].input, {
      LaunchTemplateId: 'lt-1',
      SourceVersion: '4',
      VersionDescription: 'd',
      LaunchTemplateData: { ImageId: 'ami-2' },
      ClientToken: 'web#00000002/lt-1',
    });
    assert.deepEqual(ec2.commandCalls(ModifyLaunchTemplateCommand)[0]?.args[0].input, {
      LaunchTemplateId: 'lt-1',
      DefaultVersion: '5',
    });
  });

  it('writes the SSM parameter as an aws:ec2:image String, overwriting', async () => {
    const { ssm, members } = setup();
    ssm.on(PutParameterCommand).resolves({ Version: 2 });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-2', Version: 2 } });
    await members.forAccount('100000000001', 'eu-west-1').putParameter('/stemcell/web', 'ami-2');
    assert.deepEqual(ssm.commandCalls(PutParameterCommand)[0]?.args[0].input, {
      Name: '/stemcell/web',
      Value: 'ami-2',
      Type: 'String',
      DataType: 'aws:ec2:image',
      Overwrite: true,
    });
  });

  it("confirms the parameter by reading it back, waiting out SSM's asynchronous image validation", async () => {
    // prepare: the new version shows on the third read
    const { ssm, members } = setup();
    ssm.on(PutParameterCommand).resolves({ Version: 3 });
    ssm
      .on(GetParameterCommand)
      .rejectsOnce(awsError('ParameterNotFound'))
      .resolvesOnce({ Parameter: { Value: 'ami-1', Version: 2 } })
      .resolves({ Parameter: { Value: 'ami-2', Version: 3 } });
    // act
    await members.forAccount('100000000001', 'eu-west-1').putParameter('/stemcell/web', 'ami-2');
    // assess
    assert.equal(ssm.commandCalls(GetParameterCommand).length, 3);
  });

  it('fails, naming the parameter, when SSM never writes it (image validation without ec2:DescribeImages)', async () => {
    // prepare: SSM accepts the call, its validation drops the write, the old value stays
    const { ssm, members } = setup();
    ssm.on(PutParameterCommand).resolves({ Version: 2 });
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: 'ami-1', Version: 1 } });
    // act + assess
    await assert.rejects(
      members.forAccount('100000000001', 'eu-west-1').putParameter('/stemcell/web', 'ami-2'),
      /SSM parameter \/stemcell\/web in eu-west-1 was not written with ami-2.*ec2:DescribeImages/,
    );
  });

  it('lists tagged groups over every page and reads their launch template, mixed instances included', async () => {
    // prepare
    const { asg, members } = setup();
    asg
      .on(DescribeAutoScalingGroupsCommand)
      .resolvesOnce({
        AutoScalingGroups: [
          { AutoScalingGroupName: 'a', LaunchTemplate: { LaunchTemplateId: 'lt-a' } } as never,
        ],
        NextToken: 'n',
      })
      .resolvesOnce({
        AutoScalingGroups: [
          {
            AutoScalingGroupName: 'b',
            MixedInstancesPolicy: {
              LaunchTemplate: {
                LaunchTemplateSpecification: { LaunchTemplateId: 'lt-b', Version: '$Latest' },
              },
            },
          } as never,
        ],
      });
    // act
    const groups = await members.forAccount('1', 'eu-west-1').listAutoScalingGroups('stemcell:stream', 'web');
    // assess
    assert.deepEqual(groups, [
      { name: 'a', launchTemplateId: 'lt-a', launchTemplateVersion: '$Default', tags: {} },
      { name: 'b', launchTemplateId: 'lt-b', launchTemplateVersion: '$Latest', tags: {} },
    ]);
    assert.deepEqual(asg.commandCalls(DescribeAutoScalingGroupsCommand)[0]?.args[0].input.Filters, [
      { Name: 'tag:stemcell:stream', Values: ['web'] },
    ]);
  });

  it('sees a refresh as running while Pending, InProgress, Cancelling, RollbackInProgress or Baking', async () => {
    const { asg, members } = setup();
    const account = members.forAccount('1', 'eu-west-1');
    for (const [status, expected] of [
      ['Pending', true],
      ['InProgress', true],
      ['Baking', true],
      ['Successful', false],
      ['Cancelled', false],
    ] as const) {
      asg.on(DescribeInstanceRefreshesCommand).resolves({ InstanceRefreshes: [{ Status: status }] });
      assert.equal(await account.instanceRefreshInProgress('g'), expected, status);
    }
  });

  it('starts a rolling refresh that skips instances already on the template', async () => {
    const { asg, members } = setup();
    asg.on(StartInstanceRefreshCommand).resolves({ InstanceRefreshId: 'r-1' });
    const out = await members.forAccount('1', 'eu-west-1').startInstanceRefresh('g');
    assert.deepEqual(out, { instanceRefreshId: 'r-1' });
    assert.deepEqual(asg.commandCalls(StartInstanceRefreshCommand)[0]?.args[0].input, {
      AutoScalingGroupName: 'g',
      Strategy: 'Rolling',
      Preferences: { MinHealthyPercentage: 90, SkipMatching: true },
    });
  });
});
