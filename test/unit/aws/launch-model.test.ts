// Ec2LaunchModel on mocked EC2 and KMS clients: a dry run EC2 accepts, then the key from the owner's side.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, KMSClient, ListGrantsCommand } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { Ec2LaunchModel } from '#aws/launch-model.ts';
import type { ImageInfo, Images, LaunchRequest } from '#ports';
import { awsError } from '#test/support/fake-aws/common.ts';

const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const KEY = 'arn:aws:kms:eu-west-1:111111111111:key/mrk-0123456789abcdef0123456789abcdef';
const MEMBER = '222222222222';
const ROLE = `arn:aws:iam::${MEMBER}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
const request: LaunchRequest = {
  accountId: MEMBER,
  region: 'eu-west-1',
  imageId: 'ami-0123456789abcdef0',
  instanceType: 't3.micro',
  via: 'auto-scaling',
};
const image: ImageInfo = {
  imageId: request.imageId,
  name: 'stemcell/web/r1',
  state: 'available',
  snapshotId: 'snap-1',
  architecture: 'x86_64',
  bootMode: 'uefi',
  encrypted: true,
  kmsKeyId: KEY,
  tags: {},
  createdAt: '2026-11-20T10:00:00.000Z',
  sharedWith: {
    organizationArns: ['arn:aws:organizations::111111111111:organization/o-abcdefghij'],
    ouArns: [],
    accountIds: [],
  },
};

function setup(found: ImageInfo | null = image) {
  const ec2 = new EC2Client({ region: 'eu-west-1', credentials });
  const kms = new KMSClient({ region: 'eu-west-1', credentials });
  const ec2Mock = mockClient(ec2);
  const kmsMock = mockClient(kms);
  const images = { get: async () => found ?? undefined } as unknown as Images;
  const model = new Ec2LaunchModel({ memberEc2: () => ec2, images: () => images, ownerKms: () => kms });
  kmsMock.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'k', Arn: KEY, KeyState: 'Enabled' } });
  return { ec2Mock, kmsMock, model };
}

describe('Class: Ec2LaunchModel', () => {
  it('is launchable when the dry run passes and the Auto Scaling role holds its grant', async () => {
    // prepare
    const { ec2Mock, kmsMock, model } = setup();
    ec2Mock.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded'));
    kmsMock.on(ListGrantsCommand).resolves({
      Grants: [
        {
          Operations: [
            'Decrypt',
            'CreateGrant',
            'GenerateDataKeyWithoutPlaintext',
            'ReEncryptFrom',
            'ReEncryptTo',
          ],
        },
      ],
    });
    // act
    const verdict = await model.check(request);
    // assess
    assert.deepEqual(verdict, { launchable: true });
    const run = ec2Mock.commandCalls(RunInstancesCommand)[0]?.args[0].input;
    assert.equal(run?.DryRun, true);
    assert.equal(run?.ImageId, request.imageId);
    assert.equal(run?.InstanceType, 't3.micro');
    assert.equal(kmsMock.commandCalls(ListGrantsCommand)[0]?.args[0].input.GranteePrincipal, ROLE);
  });

  it('names the missing grant operations when the dry run passes but the key would refuse EBS', async () => {
    const { ec2Mock, kmsMock, model } = setup();
    ec2Mock.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded'));
    kmsMock.on(ListGrantsCommand).resolves({ Grants: [] });
    const verdict = await model.check(request);
    assert.equal(verdict.launchable, false);
    assert.match(
      verdict.launchable ? '' : verdict.reason,
      /Auto Scaling role of 222222222222 has no grant for Decrypt, CreateGrant/,
    );
    // A launch by the account itself goes through the key policy, not a grant.
    assert.deepEqual(await model.check({ ...request, via: 'account' }), { launchable: true });
  });

  it("puts EC2's refusal beside the image's facts; a disabled key refuses too", async () => {
    const { ec2Mock, kmsMock, model } = setup();
    ec2Mock
      .on(RunInstancesCommand)
      .rejectsOnce(awsError('InvalidAMIID.NotFound', "The image id '[ami-0123456789abcdef0]' does not exist"))
      .rejectsOnce(awsError('DryRunOperation', 'Request would have succeeded'));
    const refused = await model.check(request);
    kmsMock.on(DescribeKeyCommand).resolves({ KeyMetadata: { KeyId: 'k', Arn: KEY, KeyState: 'Disabled' } });
    const disabled = await model.check(request);
    assert.equal(refused.launchable, false);
    assert.match(
      refused.launchable ? '' : refused.reason,
      /InvalidAMIID\.NotFound.*shared with arn:aws:organizations/,
    );
    assert.match(disabled.launchable ? '' : disabled.reason, /is Disabled/);
  });

  it('says the image does not exist when even its owner cannot find it', async () => {
    const { ec2Mock, model } = setup(null);
    ec2Mock.on(RunInstancesCommand).rejects(awsError('InvalidAMIID.NotFound', 'no such image'));
    const verdict = await model.check(request);
    assert.match(
      verdict.launchable ? '' : verdict.reason,
      /^image ami-0123456789abcdef0 does not exist in eu-west-1/,
    );
  });
});
