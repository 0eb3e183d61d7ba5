// Ec2LaunchModel's own mapping, on mocked EC2 and KMS clients: what it sends (as the member, with the member's
// clients), how it reads EC2's and KMS's answers (image fields, Allowed AMIs criteria, instance types), and
// which errors are refusals, which are placement questions, and which it leaves to the caller to retry. The
// behaviour both adapters share is the contract suite's (test/contract/launch-model.contract.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DescribeImagesCommand,
  DescribeInstanceTypesCommand,
  EC2Client,
  GetAllowedImagesSettingsCommand,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, KMSClient, ListGrantsCommand } from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { KmsKeyService } from '#aws/key-service.ts';
import { Ec2LaunchModel } from '#aws/launch-model.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const credentials = { accessKeyId: 'x', secretAccessKey: 'x' };
const KEY = 'arn:aws:kms:eu-west-1:111111111111:key/mrk-0123456789abcdef0123456789abcdef';
const MEMBER = '222222222222';
const IMAGE = 'ami-0123456789abcdef0';

function setup() {
  const ec2 = new EC2Client({ region: 'eu-west-1', credentials });
  const kms = new KMSClient({ region: 'eu-west-1', credentials });
  const ec2Mock = mockClient(ec2);
  const kmsMock = mockClient(kms);
  const asked: string[] = [];
  const model = new Ec2LaunchModel({
    ec2: (account, region) => {
      asked.push(`ec2 ${account} ${region}`);
      return ec2;
    },
    keys: (account, region) => {
      asked.push(`kms ${account} ${region}`);
      return new KmsKeyService({ client: kms });
    },
  });
  return { ec2Mock, kmsMock, view: model.forAccount(MEMBER, 'eu-west-1'), asked };
}

describe('Class: Ec2LaunchModel', () => {
  it("asks with the account's own EC2 and KMS clients of the region", () => {
    const { asked, view } = setup();
    assert.deepEqual(asked, [`ec2 ${MEMBER} eu-west-1`, `kms ${MEMBER} eu-west-1`]);
    assert.equal(view.accountId, MEMBER);
  });

  it("reads DescribeImages: owner, root snapshot's encryption and key, boot mode, deprecation, EC2's verdict", async () => {
    // prepare
    const { ec2Mock, view } = setup();
    ec2Mock.on(DescribeImagesCommand, { ImageIds: [IMAGE] }).resolves({
      Images: [
        {
          ImageId: IMAGE,
          Name: 'stemcell/web/r1',
          OwnerId: '111111111111',
          State: 'available',
          Architecture: 'arm64',
          BootMode: 'uefi-preferred',
          RootDeviceName: '/dev/xvda',
          BlockDeviceMappings: [
            { DeviceName: '/dev/sdb', Ebs: { Encrypted: false } },
            { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, KmsKeyId: KEY } },
          ],
          CreationDate: '2026-11-20T10:00:00.000Z',
          DeprecationTime: '2027-11-20T10:00:00.000Z',
          ImageAllowed: false,
        },
      ],
    });
    // act
    const image = await view.describeImage(IMAGE);
    // assess
    assert.deepEqual(image, {
      imageId: IMAGE,
      name: 'stemcell/web/r1',
      ownerId: '111111111111',
      state: 'available',
      architecture: 'arm64',
      bootMode: 'none',
      encrypted: true,
      kmsKeyId: KEY,
      createdAt: '2026-11-20T10:00:00.000Z',
      deprecatedAt: '2027-11-20T10:00:00.000Z',
      allowed: false,
    });
  });

  it('sees no image where EC2 says not found, unavailable or malformed, or lists nothing; rethrows the rest', async () => {
    const { ec2Mock, view } = setup();
    for (const code of ['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable', 'InvalidAMIID.Malformed']) {
      ec2Mock.on(DescribeImagesCommand).rejects(awsError(code));
      assert.equal(await view.describeImage(IMAGE), undefined, code);
    }
    ec2Mock.on(DescribeImagesCommand).resolves({ Images: [] });
    assert.equal(await view.describeImage(IMAGE), undefined);
    ec2Mock.on(DescribeImagesCommand).rejects(awsError('RequestLimitExceeded'));
    await assert.rejects(view.describeImage(IMAGE), { name: 'RequestLimitExceeded' });
  });

  it("describes the key and unions its grantee's grants over every page; KMS's refusals come back in its words", async () => {
    // prepare
    const { kmsMock, view } = setup();
    const role = `arn:aws:iam::${MEMBER}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    kmsMock.on(DescribeKeyCommand, { KeyId: KEY }).resolves({
      KeyMetadata: { KeyId: 'k', Arn: KEY, AWSAccountId: '111111111111', KeyState: 'Disabled' },
    });
    kmsMock
      .on(ListGrantsCommand, { KeyId: KEY, GranteePrincipal: role })
      .resolvesOnce({
        Grants: [{ Operations: ['Decrypt', 'CreateGrant'] }],
        Truncated: true,
        NextMarker: 'm',
      })
      .resolvesOnce({ Grants: [{ Operations: ['Decrypt', 'DescribeKey'] }], Truncated: false });
    // act
    const key = await view.describeKey(KEY);
    const ops = await view.grantedOperations(KEY, role);
    kmsMock
      .on(DescribeKeyCommand)
      .rejects(awsError('AccessDeniedException', 'not authorized to perform kms:DescribeKey'));
    kmsMock.on(ListGrantsCommand).rejects(awsError('NotFoundException', 'no such key'));
    const denied = await view.describeKey(KEY);
    const gone = await view.grantedOperations(KEY, role);
    kmsMock.on(DescribeKeyCommand).rejects(awsError('ThrottlingException'));
    // assess
    assert.deepEqual(key, { keyId: 'k', arn: KEY, accountId: '111111111111', state: 'Disabled' });
    assert.deepEqual(ops, ['CreateGrant', 'Decrypt', 'DescribeKey']);
    assert.deepEqual(denied, { denied: 'AccessDeniedException: not authorized to perform kms:DescribeKey' });
    assert.deepEqual(gone, { denied: 'NotFoundException: no such key' });
    await assert.rejects(view.describeKey(KEY), { name: 'ThrottlingException' });
  });

  it('reads the Allowed AMIs setting: its state, each criterion, and what only EC2 can judge', async () => {
    // prepare
    const { ec2Mock, view } = setup();
    ec2Mock.on(GetAllowedImagesSettingsCommand).resolves({
      State: 'enabled',
      ManagedBy: 'declarative-policy',
      ImageCriteria: [
        { ImageProviders: ['amazon', '111111111111'] },
        {
          ImageNames: ['stemcell/*'],
          MarketplaceProductCodes: ['abc'],
          CreationDateCondition: { MaximumDaysSinceCreated: 30 },
          DeprecationTimeCondition: { MaximumDaysSinceDeprecated: 0 },
          ImageWatermarks: [{}],
          ScanResultCondition: {},
        },
      ],
    });
    // act
    const settings = await view.allowedImages();
    ec2Mock.on(GetAllowedImagesSettingsCommand).resolves({ State: 'disabled' });
    const off = await view.allowedImages();
    ec2Mock.on(GetAllowedImagesSettingsCommand).resolves({});
    const unsaid = await view.allowedImages();
    // assess
    assert.deepEqual(settings, {
      state: 'enabled',
      managedBy: 'declarative-policy',
      criteria: [
        { imageProviders: ['amazon', '111111111111'] },
        {
          imageNames: ['stemcell/*'],
          marketplaceProductCodes: ['abc'],
          maximumDaysSinceCreated: 30,
          maximumDaysSinceDeprecated: 0,
          opaque: ['image watermarks', 'Amazon Inspector scan results'],
        },
      ],
    });
    assert.deepEqual(off, { state: 'disabled', criteria: [] });
    assert.deepEqual(unsaid, { state: 'disabled', criteria: [] });
    // where EC2 has no Allowed AMIs at all, nothing restricts; anything else is not an answer
    ec2Mock.on(GetAllowedImagesSettingsCommand).rejects(awsError('InvalidAction'));
    assert.deepEqual(await view.allowedImages(), { state: 'disabled', criteria: [] });
    ec2Mock.on(GetAllowedImagesSettingsCommand).rejects(awsError('UnauthorizedOperation'));
    await assert.rejects(view.allowedImages(), { name: 'UnauthorizedOperation' });
  });

  it('describes an instance type by its architectures and boot modes; none for a type EC2 does not have', async () => {
    // prepare
    const { ec2Mock, view } = setup();
    ec2Mock.on(DescribeInstanceTypesCommand, { InstanceTypes: ['t2.micro'] }).resolves({
      InstanceTypes: [
        {
          ProcessorInfo: { SupportedArchitectures: ['i386', 'x86_64'] },
          SupportedBootModes: ['legacy-bios'],
        },
      ],
    });
    ec2Mock
      .on(DescribeInstanceTypesCommand, { InstanceTypes: ['mac2.metal'] })
      .resolves({ InstanceTypes: [{ ProcessorInfo: { SupportedArchitectures: ['arm64_mac'] } }] });
    ec2Mock
      .on(DescribeInstanceTypesCommand, { InstanceTypes: ['zz9.nano' as never] })
      .rejects(awsError('InvalidInstanceType'));
    // act + assess
    assert.deepEqual(await view.describeInstanceType('t2.micro'), {
      architectures: ['x86_64'],
      bootModes: ['legacy-bios'],
    });
    assert.deepEqual(await view.describeInstanceType('mac2.metal'), {
      architectures: [],
      bootModes: ['legacy-bios', 'uefi'],
    });
    assert.equal(await view.describeInstanceType('zz9.nano'), undefined);
  });

  it('dry-runs the image on the instance type: DryRunOperation is allowed; a refusal keeps the code', async () => {
    // prepare
    const { ec2Mock, view } = setup();
    const input = { imageId: IMAGE, instanceType: 't3.micro', via: 'auto-scaling' as const };
    ec2Mock.on(RunInstancesCommand).rejects(awsError('DryRunOperation', 'Request would have succeeded'));
    // act
    const ok = await view.dryRun(input);
    const sent = ec2Mock.commandCalls(RunInstancesCommand)[0]?.args[0].input;
    ec2Mock
      .on(RunInstancesCommand)
      .rejects(awsError('UnauthorizedOperation', 'Encoded authorization failure'));
    const refused = await view.dryRun(input);
    // assess
    assert.deepEqual(ok, { allowed: true });
    assert.deepEqual(sent, {
      DryRun: true,
      ImageId: IMAGE,
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
    });
    assert.deepEqual(refused, {
      allowed: false,
      code: 'UnauthorizedOperation',
      message: 'Encoded authorization failure',
    });
  });

  it("counts a dry run with nowhere to place the instance as allowed, with a note; retries are the caller's", async () => {
    // prepare
    const { ec2Mock, view } = setup();
    const input = { imageId: IMAGE, instanceType: 't3.micro', via: 'account' as const };
    ec2Mock.on(RunInstancesCommand).rejects(awsError('VPCIdNotSpecified', 'No default VPC for this user'));
    // act
    const placement = await view.dryRun(input);
    ec2Mock.on(RunInstancesCommand).rejects(awsError('RequestLimitExceeded'));
    const throttled = view.dryRun(input);
    const fault = Object.assign(awsError('InternalError'), { $fault: 'server' });
    // assess
    assert.deepEqual(placement, {
      allowed: true,
      note: 'the dry run had no network to place the instance: VPCIdNotSpecified: No default VPC for this user',
    });
    await assert.rejects(throttled, { name: 'RequestLimitExceeded' });
    ec2Mock.on(RunInstancesCommand).rejects(fault);
    await assert.rejects(view.dryRun(input), { name: 'InternalError' });
  });

  it('refuses, and says so, should EC2 ever launch although asked for a dry run', async () => {
    const { ec2Mock, view } = setup();
    ec2Mock.on(RunInstancesCommand).resolves({ Instances: [{ InstanceId: 'i-1' }] });
    assert.deepEqual(await view.dryRun({ imageId: IMAGE, instanceType: 't3.micro', via: 'account' }), {
      allowed: false,
      code: 'NotADryRun',
      message: `RunInstances as ${MEMBER} did not honour DryRun: terminate what it launched`,
    });
  });
});
