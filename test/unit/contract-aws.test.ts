// The shared port contracts (test/contract/) over the AWS adapters, on stateful in-memory fakes of the AWS
// APIs (test/support/fake-aws/). No AWS account, no network.

import { CreateSnapshotCommand, CreateVolumeCommand } from '@aws-sdk/client-ec2';
import { EventBridgeBusRules, EventBridgePublisher } from '#aws/event-bus.ts';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';
import { Ec2Images } from '#aws/images.ts';
import { KmsKeyService } from '#aws/key-service.ts';
import { Ec2LaunchModel } from '#aws/launch-model.ts';
import { AwsMemberAccounts } from '#aws/member-accounts.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { AwsOrganizationDirectory } from '#aws/organization.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { Ec2Volumes } from '#aws/volumes.ts';
import { autoScalingRoleArn } from '#core/images/launchable.ts';
import { AUTO_SCALING_GRANT_OPERATIONS } from '#local/key-policy.ts';
import { busRulesContract, eventPublisherContract } from '#test/contract/event-bus.contract.ts';
import { fifoQueueContract } from '#test/contract/fifo-queue.contract.ts';
import { keyServiceContract } from '#test/contract/key-service.contract.ts';
import { launchModelContract } from '#test/contract/launch-model.contract.ts';
import { memberAccountsContract } from '#test/contract/member-accounts.contract.ts';
import { objectStoreContract } from '#test/contract/object-store.contract.ts';
import { organizationContract } from '#test/contract/organization.contract.ts';
import { releaseStoreContract } from '#test/contract/release-store.contract.ts';
import { volumesContract } from '#test/contract/volumes.contract.ts';
import { FakeAutoScaling } from '#test/support/fake-aws/autoscaling.ts';
import { ACCOUNT } from '#test/support/fake-aws/common.ts';
import { FakeDynamoTable } from '#test/support/fake-aws/dynamodb.ts';
import { FakeEc2 } from '#test/support/fake-aws/ec2.ts';
import { FakeEventBridge } from '#test/support/fake-aws/eventbridge.ts';
import { FakeKms } from '#test/support/fake-aws/kms.ts';
import { FakeOrganizations } from '#test/support/fake-aws/organizations.ts';
import { FakeS3 } from '#test/support/fake-aws/s3.ts';
import { FakeSqsFifo } from '#test/support/fake-aws/sqs.ts';
import { FakeSsm } from '#test/support/fake-aws/ssm.ts';

const noSleep = async () => {};

objectStoreContract('AWS S3', async () => ({
  store: new S3ObjectStore({ bucket: 'stemcell-tarballs', client: new FakeS3().client() }),
}));

fifoQueueContract('AWS SQS', async () => ({
  queue: new SqsFifoQueue({
    queueUrl: 'https://sqs.eu-west-1.amazonaws.com/111111111111/stemcell-build-eu-west-1.fifo',
    client: new FakeSqsFifo().client(),
  }),
}));

eventPublisherContract('AWS EventBridge', async () => {
  const fake = new FakeEventBridge();
  return {
    publisher: new EventBridgePublisher({ client: fake.client(), eventBusName: 'stemcell', sleep: noSleep }),
    published: async () =>
      fake.delivered.map((e) => ({
        source: e.Source ?? '',
        detailType: e.DetailType ?? '',
        detail: JSON.parse(e.Detail ?? 'null'),
      })),
    failNext: (detailType, times) => fake.failNext.set(detailType, times),
  };
});

busRulesContract('AWS EventBridge', async () => ({
  rules: new EventBridgeBusRules({ eventBusName: 'stemcell', client: new FakeEventBridge().client() }),
}));

keyServiceContract('AWS KMS', async () => {
  const fake = new FakeKms();
  return {
    keys: new KmsKeyService({ client: fake.client(), clientForAccount: (id) => fake.client(id) }),
    keyId: fake.keyId,
    ownerAccountId: ACCOUNT,
    otherAccountId: '222222222222',
  };
});

organizationContract('AWS Organizations', async (fixture) => {
  const fake = new FakeOrganizations({
    id: fixture.organizationId,
    managementAccountId: fixture.managementAccountId,
    rootId: 'r-ab12',
    ous: Object.fromEntries(fixture.ous.map((o) => [o.id, 'r-ab12'])),
    accounts: fixture.accounts.map((a) => ({ id: a.id, name: a.name, parent: a.ou })),
  });
  return { org: new AwsOrganizationDirectory({ client: fake.client() }) };
});

releaseStoreContract('AWS DynamoDB', async () => ({
  store: new DynamoReleaseStore({ tableName: 'stemcell-releases', client: new FakeDynamoTable().client() }),
}));

memberAccountsContract('AWS EC2 + Auto Scaling + SSM', async (fixture) => {
  const ec2 = new FakeEc2();
  const asg = new FakeAutoScaling();
  const ssm = new FakeSsm();
  const lt = ec2.addLaunchTemplate(
    fixture.launchTemplate.name,
    { 'stemcell:stream': fixture.launchTemplate.stream },
    fixture.launchTemplate.imageId,
  );
  ec2.addLaunchTemplate(fixture.untaggedTemplate.name, {}, fixture.untaggedTemplate.imageId);
  asg.addGroup(fixture.autoScalingGroup, { 'stemcell:stream': fixture.launchTemplate.stream }, lt.id);
  const clients = { ec2: ec2.client(), autoScaling: asg.client(), ssm: ssm.client() };
  return {
    members: new AwsMemberAccounts({ clients: () => clients, sleep: noSleep }),
    readParameter: async (name) => ssm.parameters.get(name),
  };
});

volumesContract('AWS EC2', async () => {
  const ec2 = new FakeEc2();
  const client = ec2.client();
  const wait = { maxWaitTime: 5, minDelay: 1, maxDelay: 1 };
  return {
    volumes: new Ec2Volumes({
      client,
      wait,
      sleep: noSleep,
      deviceLookup: async (volumeId) =>
        `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`,
    }),
    snapshots: new EbsSnapshots({ client, sleep: noSleep }),
    images: new Ec2Images({ client, sleep: noSleep }),
    kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/mrk-0123456789abcdef0123456789abcdef',
    availabilityZone: 'eu-west-1a',
    instanceId: 'i-0123456789abcdef0',
    organizationArn: 'arn:aws:organizations::999999999999:organization/o-a1b2c3d4e5',
    ouArn: 'arn:aws:organizations::999999999999:ou/o-a1b2c3d4e5/ou-ab12-11111111',
  };
});

// The member's side through the Ec2LaunchModel, on the EC2 and KMS fakes: moto shows no shared image to
// another account, has no GetAllowedImagesSettings and its dry run judges nothing (test/support/fake-aws/ec2-launch.ts).
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
