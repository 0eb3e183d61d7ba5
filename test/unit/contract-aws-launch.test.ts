// The launch-model contract (test/contract/launch-model.contract.ts) over the AWS adapters, on the in-memory
// EC2 and KMS fakes (test/support/fake-aws/), not moto: moto shows no image shared with an Organization to a
// member account, has no GetAllowedImagesSettings of its own, and its dry run judges nothing. Every other
// AWS contract runs on moto (contract-aws.test.ts).

import { CreateSnapshotCommand, CreateVolumeCommand } from '@aws-sdk/client-ec2';
import { Ec2Images } from '#aws/images.ts';
import { KmsKeyService } from '#aws/key-service.ts';
import { Ec2LaunchModel } from '#aws/launch-model.ts';
import { autoScalingRoleArn } from '#core/images/launchable.ts';
import { AUTO_SCALING_GRANT_OPERATIONS } from '#local/key-policy.ts';
import { launchModelContract } from '#test/contract/launch-model.contract.ts';
import { ACCOUNT } from '#test/support/fake-aws/common.ts';
import { FakeEc2 } from '#test/support/fake-aws/ec2.ts';
import { FakeKms } from '#test/support/fake-aws/kms.ts';

const noSleep = async () => {};

launchModelContract('AWS EC2 + KMS', async () => {
  const ec2 = new FakeEc2();
  const kms = new FakeKms();
  const member = '222222222222';
  const organizationArn = `arn:aws:organizations::${ACCOUNT}:organization/o-a1b2c3d4e5`;
  ec2.accounts.membership = (id) =>
    id === member || id === ACCOUNT
      ? { organizationArn, ouArns: [`arn:aws:organizations::${ACCOUNT}:root/o-a1b2c3d4e5/r-ab12`] }
      : undefined;
  kms.grants.set('grant-asg', {
    grantee: autoScalingRoleArn(member),
    operations: AUTO_SCALING_GRANT_OPERATIONS,
  });
  // The publisher's side: an encrypted snapshot, registered twice, one image shared with the Organization.
  const owner = ec2.client(ACCOUNT);
  const volume = await owner.send(
    new CreateVolumeCommand({ AvailabilityZone: 'eu-west-1a', Size: 1, Encrypted: true, KmsKeyId: kms.arn }),
  );
  const snapshot = await owner.send(new CreateSnapshotCommand({ VolumeId: volume.VolumeId }));
  const images = new Ec2Images({ client: owner, sleep: noSleep });
  const register = (name: string) =>
    images.register({
      name,
      description: name,
      snapshotId: snapshot.SnapshotId ?? '',
      architecture: 'x86_64',
      bootMode: 'uefi',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: name,
    });
  const shared = await register('stemcell/web/r1');
  const unshared = await register('stemcell/web/r1-private');
  await images.share(shared.imageId, { organizationArns: [organizationArn], ouArns: [] });
  return {
    launch: new Ec2LaunchModel({
      ec2: (id) => ec2.client(id),
      keys: (id) => new KmsKeyService({ client: kms.client(id) }),
    }),
    region: 'eu-west-1',
    publisher: ACCOUNT,
    member,
    sharedImage: shared.imageId,
    privateImage: unshared.imageId,
    keyArn: kms.arn,
    revokeGrant: async (id) => kms.revokeGrants(autoScalingRoleArn(id)),
    setAllowedImages: async (id, settings) =>
      ec2.accounts.setAllowedImages(id, {
        State: settings.state,
        ImageCriteria: settings.criteria.map((c) => ({
          ...(c.imageProviders ? { ImageProviders: c.imageProviders } : {}),
        })),
      }),
    denyLaunches: async (id, statement) => ec2.accounts.denyLaunches(id, statement),
  };
});
