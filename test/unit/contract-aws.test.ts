// The shared port contracts (test/contract/) over the AWS adapters, against moto 5.2.1 (an AWS emulator nobody
// here wrote) on 127.0.0.1, with its gaps filled as AWS documents them (test/support/moto/patches/). One server
// for the file; each case gets resources of its own (fresh names, fresh accounts), so cases share nothing.
import { after, before } from 'node:test';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  CreateLaunchTemplateCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import {
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  DescribeCreateAccountStatusCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { EventBridgeBusRules, EventBridgePublisher } from '#aws/event-bus.ts';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';
import { Ec2Images } from '#aws/images.ts';
import { KmsKeyService } from '#aws/key-service.ts';
import { AwsMemberAccounts } from '#aws/member-accounts.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { AwsOrganizationDirectory } from '#aws/organization.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { Ec2Volumes } from '#aws/volumes.ts';
import {
  busRulesContract,
  CONTRACT_SOURCE,
  eventPublisherContract,
} from '#test/contract/event-bus.contract.ts';
import { fifoQueueContract } from '#test/contract/fifo-queue.contract.ts';
import { keyServiceContract } from '#test/contract/key-service.contract.ts';
import { memberAccountsContract } from '#test/contract/member-accounts.contract.ts';
import { objectStoreContract } from '#test/contract/object-store.contract.ts';
import { organizationContract } from '#test/contract/organization.contract.ts';
import { releaseStoreContract } from '#test/contract/release-store.contract.ts';
import { volumesContract } from '#test/contract/volumes.contract.ts';
import { HOME_ACCOUNT, MotoAccounts } from '#test/support/moto/accounts.ts';
import { type MotoServer, startMoto } from '#test/support/moto/server.ts';

const REGION = 'eu-west-1';
let moto: MotoServer;
let aws: MotoAccounts;
let n = 0;
/** A name no other case uses. */
const fresh = (prefix: string) => `${prefix}-${process.pid}-${++n}`;
/** An account no other case uses: moto makes one of any 12-digit id reached through STS. */
const freshAccount = () => String(300000000000 + process.pid * 100 + ++n).slice(-12);
const home = <T>(ctor: new (config: ReturnType<MotoAccounts['config']>) => T) =>
  aws.client(ctor, HOME_ACCOUNT, REGION);
const noSleep = async () => {};

before(async () => {
  moto = await startMoto();
  aws = new MotoAccounts(moto.endpoint);
});
after(async () => {
  await moto?.stop();
});

objectStoreContract('AWS S3 on moto', async () => {
  const bucket = fresh('stemcell-tarballs');
  const s3 = home(S3Client);
  await s3.send(
    new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: REGION } }),
  );
  return { store: new S3ObjectStore({ bucket, client: s3 }) };
});

fifoQueueContract('AWS SQS on moto', async () => {
  const sqs = home(SQSClient);
  const out = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${fresh('stemcell-build')}.fifo`,
      Attributes: { FifoQueue: 'true' },
    }),
  );
  return { queue: new SqsFifoQueue({ queueUrl: out.QueueUrl ?? '', client: sqs }) };
});

eventPublisherContract('AWS EventBridge on moto', async () => {
  const events = home(EventBridgeClient);
  const sqs = home(SQSClient);
  const bus = fresh('stemcell');
  const queue = fresh('observer');
  await events.send(new CreateEventBusCommand({ Name: bus }));
  const url = (await sqs.send(new CreateQueueCommand({ QueueName: queue }))).QueueUrl ?? '';
  await events.send(
    new PutRuleCommand({
      Name: 'observe',
      EventBusName: bus,
      EventPattern: JSON.stringify({ source: [CONTRACT_SOURCE] }),
    }),
  );
  await events.send(
    new PutTargetsCommand({
      Rule: 'observe',
      EventBusName: bus,
      Targets: [{ Id: 'queue', Arn: `arn:aws:sqs:${REGION}:${HOME_ACCOUNT}:${queue}` }],
    }),
  );
  const seen: { source: string; detailType: string; detail: unknown }[] = [];
  return {
    publisher: new EventBridgePublisher({ client: events, eventBusName: bus, sleep: noSleep }),
    async published() {
      for (;;) {
        const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }));
        if (!out.Messages?.length) return seen;
        for (const m of out.Messages) {
          const e = JSON.parse(m.Body ?? '{}');
          seen.push({ source: e.source, detailType: e['detail-type'], detail: e.detail });
        }
        await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: url,
            Entries: out.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
          }),
        );
      }
    },
    // EventBridge fails an entry now and then (InternalFailure); the launcher makes the next ones fail so.
    failNext: (detailType, times) => {
      void moto.api('put-events-failures', { detailType, times });
    },
  };
});

busRulesContract('AWS EventBridge on moto', async () => {
  const events = home(EventBridgeClient);
  const bus = fresh('stemcell');
  await events.send(new CreateEventBusCommand({ Name: bus }));
  return { rules: new EventBridgeBusRules({ eventBusName: bus, client: events }) };
});

keyServiceContract('AWS KMS on moto', async () => {
  const kms = home(KMSClient);
  const key = await kms.send(new CreateKeyCommand({ MultiRegion: true, Description: 'contract' }));
  return {
    keys: new KmsKeyService({ client: kms, clientForAccount: (id) => aws.client(KMSClient, id, REGION) }),
    keyId: key.KeyMetadata?.Arn ?? '',
    ownerAccountId: HOME_ACCOUNT,
    otherAccountId: freshAccount(),
  };
});

organizationContract('AWS Organizations on moto', async (fixture) => {
  // An Organization of its own: a fresh management account, its OUs and accounts (ids as Organizations gives them).
  const management = freshAccount();
  const org = aws.client(OrganizationsClient, management, 'us-east-1');
  const created = (await org.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' }))).Organization;
  const root = (await org.send(new ListRootsCommand({}))).Roots?.[0]?.Id ?? '';
  const ids: Record<string, string> = {
    [fixture.organizationId]: created?.Id ?? '',
    [fixture.managementAccountId]: management,
  };
  for (const ou of fixture.ous) {
    const made = await org.send(new CreateOrganizationalUnitCommand({ ParentId: root, Name: ou.name }));
    ids[ou.id] = made.OrganizationalUnit?.Id ?? '';
  }
  for (const a of fixture.accounts) {
    const request = await org.send(
      new CreateAccountCommand({ AccountName: a.name, Email: `${a.name}@example.com` }),
    );
    const status = await org.send(
      new DescribeCreateAccountStatusCommand({ CreateAccountRequestId: request.CreateAccountStatus?.Id }),
    );
    ids[a.id] = status.CreateAccountStatus?.AccountId ?? '';
    await org.send(
      new MoveAccountCommand({ AccountId: ids[a.id], SourceParentId: root, DestinationParentId: ids[a.ou] }),
    );
  }
  return { org: new AwsOrganizationDirectory({ client: org }), ids };
});

releaseStoreContract('AWS DynamoDB on moto', async () => {
  const dynamodb = home(DynamoDBClient);
  const tableName = fresh('stemcell-releases');
  // The release table's key schema (serverless.yml ReleaseTable).
  await dynamodb.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
    }),
  );
  return { store: new DynamoReleaseStore({ tableName, client: dynamodb }) };
});

memberAccountsContract('AWS EC2 + Auto Scaling + SSM on moto', async (fixture) => {
  // The member account the contract names is, here, an account of the case's own (no case sees another's).
  const account = freshAccount();
  const region = fixture.region;
  const ec2 = aws.client(EC2Client, account, region);
  const lt = await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: fixture.launchTemplate.name,
      LaunchTemplateData: { ImageId: fixture.launchTemplate.imageId, InstanceType: 't3.micro' },
      TagSpecifications: [
        {
          ResourceType: 'launch-template',
          Tags: [{ Key: 'stemcell:stream', Value: fixture.launchTemplate.stream }],
        },
      ],
    }),
  );
  await ec2.send(
    new CreateLaunchTemplateCommand({
      LaunchTemplateName: fixture.untaggedTemplate.name,
      LaunchTemplateData: { ImageId: fixture.untaggedTemplate.imageId },
    }),
  );
  await aws.client(AutoScalingClient, account, region).send(
    new CreateAutoScalingGroupCommand({
      AutoScalingGroupName: fixture.autoScalingGroup,
      LaunchTemplate: { LaunchTemplateId: lt.LaunchTemplate?.LaunchTemplateId ?? '', Version: '$Default' },
      MinSize: 0,
      MaxSize: 1,
      DesiredCapacity: 0,
      AvailabilityZones: [`${region}a`],
      Tags: [{ Key: 'stemcell:stream', Value: fixture.launchTemplate.stream, PropagateAtLaunch: true }],
    }),
  );
  // A refresh runs long enough for the case to see it running.
  await moto.api('refresh-outcomes', {
    outcomes: [{ account, region, group: fixture.autoScalingGroup, status: 'Successful', seconds: 60 }],
  });
  const ssm = aws.client(SSMClient, account, region);
  return {
    members: new AwsMemberAccounts({
      clients: (_id, r) => ({
        ec2: aws.client(EC2Client, account, r),
        autoScaling: aws.client(AutoScalingClient, account, r),
        ssm: aws.client(SSMClient, account, r),
      }),
      sleep: noSleep,
    }),
    readParameter: async (name) =>
      (await ssm.send(new GetParameterCommand({ Name: name })).catch(() => undefined))?.Parameter?.Value,
  };
});

volumesContract('AWS EC2 on moto', async () => {
  // An account of the case's own: one stream's volumes and images never meet another case's.
  const account = freshAccount();
  const ec2 = aws.client(EC2Client, account, REGION);
  const kms = aws.client(KMSClient, account, REGION);
  const availabilityZone = `${REGION}a`;
  const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.1.0.0/16' }))).Vpc?.VpcId ?? '';
  const subnet =
    (
      await ec2.send(
        new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.1.1.0/24', AvailabilityZone: availabilityZone }),
      )
    ).Subnet?.SubnetId ?? '';
  // The builder the volumes attach to.
  const run = await ec2.send(
    new RunInstancesCommand({
      ImageId: 'ami-0b5c1a3d2e4f60718',
      InstanceType: 't3.micro',
      MinCount: 1,
      MaxCount: 1,
      SubnetId: subnet,
    }),
  );
  const key = await kms.send(new CreateKeyCommand({ MultiRegion: true }));
  return {
    volumes: new Ec2Volumes({
      client: ec2,
      wait: { maxWaitTime: 5, minDelay: 1, maxDelay: 1 },
      sleep: noSleep,
      deviceLookup: async (volumeId) =>
        `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`,
    }),
    snapshots: new EbsSnapshots({ client: ec2, sleep: noSleep }),
    images: new Ec2Images({ client: ec2, sleep: noSleep }),
    kmsKeyId: key.KeyMetadata?.Arn ?? '',
    availabilityZone,
    instanceId: run.Instances?.[0]?.InstanceId ?? '',
    organizationArn: 'arn:aws:organizations::999999999999:organization/o-a1b2c3d4e5',
    ouArn: 'arn:aws:organizations::999999999999:ou/o-a1b2c3d4e5/ou-ab12-11111111',
  };
});
