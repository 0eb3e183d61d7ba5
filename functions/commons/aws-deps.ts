// The core's dependencies built from the AWS adapters, once per Lambda container. Only the exported
// `handler` of each function reaches this module (lazily, at the first invocation), so tests and the local
// runtime never touch AWS.
//
// Configuration on AWS: the stemcell.config.yml text (YAML or JSON) comes from the STEMCELL_CONFIG environment
// variable when set (small configs, tests), else from the object STEMCELL_CONFIG_KEY in the tarball bucket
// STEMCELL_BUCKET (what serverless.yml deploys: no 4 KB environment limit, and `stemcell` can update it without
// a redeploy). Read once per container.
//
// Other environment (names as serverless.yml and infra/member.yml set them):
//   STEMCELL_HOME_REGION          the home region (AWS_REGION when absent)
//   STEMCELL_TABLE                DynamoDB release table
//   STEMCELL_BUILD_QUEUE_PREFIX   build queues are <prefix><region>.fifo in this account
//   STEMCELL_MEMBER_ROLE_NAME     role assumed in member accounts (expire reads their launch templates)
//   STEMCELL_SUBSCRIBER_ROLE_ARN  role EventBridge uses to put events on member buses (sync-subscribers)
//   STEMCELL_SUBSCRIBER_DLQ_ARN   SQS queue for events a member bus never accepted (sync-subscribers)
//   STEMCELL_MEMBER_BUS_NAME      the member accounts' bus the subscriber rules target (infra/member.yml BusName)
//   STEMCELL_CENTRAL_BUS_ARN      where member accounts report back (subscriber)
//   STEMCELL_SSM_PREFIX           subscriber: write <prefix><stream>/<region>/image-id when set
//   STEMCELL_INSTANCE_REFRESH     subscriber: "false" turns instance refreshes off
//   STEMCELL_BOOT_CHECK_QUEUE_URL the boot gate's queue (announce asks, boot-check consumes)
//   STEMCELL_SMOKE_PARAMETER      SSM parameter, in each build region, with that region's smoke-instance
//                                 settings as JSON {subnetIds, securityGroupId, instanceTypes?} (infra/region.yml)
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { parse as parseYaml } from 'yaml';
import { CloudWatchAlarms } from '#aws/alarms.ts';
import { SchedulerBakeTimer } from '#aws/bake-timer.ts';
import { AwsClients } from '#aws/clients.ts';
import { EventBridgeBusRules, EventBridgePublisher } from '#aws/event-bus.ts';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';
import { Ec2Images } from '#aws/images.ts';
import { AwsMemberAccounts } from '#aws/member-accounts.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { AwsOrganizationDirectory } from '#aws/organization.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { DynamoRolloutStore } from '#aws/rollout-store.ts';
import { Ec2SmokeInstances, type SmokeInstanceSettings } from '#aws/smoke-instances.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { parseConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';
import {
  type AnnounceDeps,
  type BootCheckDeps,
  type ExpireDeps,
  type Imaging,
  type IngestDeps,
  type ReconcileDeps,
  type RegisterDeps,
  type SubscriberDeps,
  type SubscriberSettings,
  type SyncSubscribersDeps,
  subscriberSettingsFromConfig,
  systemClock,
} from '#core/deps.ts';
import { protectedImages } from '#core/rollout/rollback.ts';
import type { BootChecker, FifoQueue } from '#ports';
import { powertools } from './powertools.ts';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

const homeRegion = () => process.env.STEMCELL_HOME_REGION ?? env('AWS_REGION');

let clients: AwsClients | undefined;
function awsClients(): AwsClients {
  clients ??= new AwsClients({
    ...(process.env.STEMCELL_MEMBER_ROLE_NAME
      ? { memberRoleName: process.env.STEMCELL_MEMBER_ROLE_NAME }
      : {}),
    roleSessionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell',
  });
  return clients;
}

/** The deployment names the real resources: its bucket, bus, key and region win over the file's defaults. */
function withDeployment(config: StemcellConfig): StemcellConfig {
  const e = process.env;
  return {
    ...config,
    ...(e.STEMCELL_HOME_REGION ? { homeRegion: e.STEMCELL_HOME_REGION } : {}),
    ...(e.STEMCELL_BUCKET ? { bucket: e.STEMCELL_BUCKET } : {}),
    ...(e.STEMCELL_BUS_NAME ? { busName: e.STEMCELL_BUS_NAME } : {}),
    ...(e.STEMCELL_KMS_KEY_ID ? { kmsKeyId: e.STEMCELL_KMS_KEY_ID } : {}),
  };
}

let config: Promise<StemcellConfig> | undefined;
export function awsConfig(): Promise<StemcellConfig> {
  config ??= (async () => withDeployment(await readConfig()))();
  config.catch(() => {
    config = undefined;
  });
  return config;
}

async function readConfig(): Promise<StemcellConfig> {
  const inline = process.env.STEMCELL_CONFIG;
  if (inline) return parseConfig(parseYaml(inline), 'STEMCELL_CONFIG');
  const bucket = env('STEMCELL_BUCKET');
  const key = env('STEMCELL_CONFIG_KEY');
  const out = await awsClients()
    .s3(homeRegion())
    .send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = await out.Body?.transformToString('utf8');
  if (!text) throw new Error(`s3://${bucket}/${key} is empty`);
  return parseConfig(parseYaml(text), `s3://${bucket}/${key}`);
}

const imagingByRegion = new Map<string, Imaging>();
function imaging(region: string): Imaging {
  let found = imagingByRegion.get(region);
  if (!found) {
    const client = awsClients().ec2(region);
    found = { images: new Ec2Images({ client }), snapshots: new EbsSnapshots({ client }) };
    imagingByRegion.set(region, found);
  }
  return found;
}

async function base() {
  const cfg = await awsConfig();
  const region = homeRegion();
  return {
    config: cfg,
    clock: systemClock,
    logger: powertools.logger,
    releases: new DynamoReleaseStore({
      tableName: env('STEMCELL_TABLE'),
      client: awsClients().dynamodb(region),
    }),
    events: new EventBridgePublisher({ client: awsClients().eventBridge(region), eventBusName: cfg.busName }),
  };
}

let accountId: Promise<string> | undefined;
function ownAccountId(): Promise<string> {
  accountId ??= awsClients()
    .sts(homeRegion())
    .send(new GetCallerIdentityCommand({}))
    .then((identity) => {
      if (!identity.Account) throw new Error('STS GetCallerIdentity returned no account');
      return identity.Account;
    });
  accountId.catch(() => {
    accountId = undefined;
  });
  return accountId;
}

/** Queues named <STEMCELL_BUILD_QUEUE_PREFIX><region><suffix>.fifo in this account, one client per region. */
async function regionQueues(suffix: string): Promise<(region: string) => FifoQueue> {
  const prefix = env('STEMCELL_BUILD_QUEUE_PREFIX');
  const account = await ownAccountId();
  const queues = new Map<string, FifoQueue>();
  return (region) => {
    let queue = queues.get(region);
    if (!queue) {
      queue = new SqsFifoQueue({
        queueUrl: `https://sqs.${region}.amazonaws.com/${account}/${prefix}${region}${suffix}.fifo`,
        client: awsClients().sqs(region),
      });
      queues.set(region, queue);
    }
    return queue;
  };
}

export async function awsIngestDeps(): Promise<IngestDeps> {
  const b = await base();
  return {
    ...b,
    buildQueue: await regionQueues(''),
    objects: new S3ObjectStore({ bucket: b.config.bucket, client: awsClients().s3(homeRegion()) }),
  };
}

export async function awsRegisterDeps(): Promise<RegisterDeps> {
  return { ...(await base()), imaging };
}

/** announce's deps without the bake timer: what reads releases, rollouts and pins (late joiners) needs. */
async function announceReadDeps(): Promise<AnnounceDeps> {
  const region = homeRegion();
  const queueUrl = process.env.STEMCELL_BOOT_CHECK_QUEUE_URL;
  return {
    ...(await base()),
    imaging,
    organization: new AwsOrganizationDirectory({ client: awsClients().organizations() }),
    defaultBootCheckMode: 'instance',
    ...(queueUrl ? { bootChecks: new SqsFifoQueue({ queueUrl, client: awsClients().sqs(region) }) } : {}),
    rollouts: new DynamoRolloutStore({
      tableName: env('STEMCELL_TABLE'),
      client: awsClients().dynamodb(region),
    }),
    alarms: new CloudWatchAlarms({ client: (r) => awsClients().cloudwatch(r) }),
  };
}

export async function awsAnnounceDeps(): Promise<AnnounceDeps> {
  return {
    ...(await announceReadDeps()),
    timer: new SchedulerBakeTimer({
      client: awsClients().scheduler(homeRegion()),
      targetArn: env('STEMCELL_BAKE_TARGET_ARN'),
      roleArn: env('STEMCELL_BAKE_ROLE_ARN'),
      ...(process.env.STEMCELL_BAKE_DLQ_ARN ? { deadLetterArn: process.env.STEMCELL_BAKE_DLQ_ARN } : {}),
    }),
  };
}

const smokeByRegion = new Map<string, Promise<BootChecker>>();
/** The smoke-instance checker of a build region, with the settings its region stack published in SSM. */
function smokeInstances(region: string, consoleStore: S3ObjectStore): Promise<BootChecker> {
  let found = smokeByRegion.get(region);
  if (!found) {
    found = (async () => {
      const name = env('STEMCELL_SMOKE_PARAMETER');
      const out = await awsClients()
        .ssm(region)
        .send(new GetParameterCommand({ Name: name }));
      const settings = JSON.parse(out.Parameter?.Value ?? '{}') as SmokeInstanceSettings;
      if (!Array.isArray(settings.subnetIds) || !settings.securityGroupId)
        throw new Error(
          `SSM ${name} in ${region}: expected {"subnetIds": [...], "securityGroupId": "sg-..."}`,
        );
      return new Ec2SmokeInstances({ client: awsClients().ec2(region), settings, consoleStore });
    })();
    found.catch(() => smokeByRegion.delete(region));
    smokeByRegion.set(region, found);
  }
  return found;
}

export async function awsBootCheckDeps(): Promise<BootCheckDeps> {
  const deps = await awsAnnounceDeps();
  const consoleStore = new S3ObjectStore({
    bucket: deps.config.bucket,
    client: awsClients().s3(homeRegion()),
  });
  return {
    ...deps,
    bootChecker(region, mode) {
      if (mode !== 'instance')
        throw new Error(`boot check mode ${mode} runs in local mode only; on AWS: instance`);
      // The checker is built lazily; every method waits for its settings.
      const checker = smokeInstances(region, consoleStore);
      return {
        mode: 'instance',
        start: async (r) => (await checker).start(r),
        observe: async (r) => (await checker).observe(r),
        stop: async (r) => (await checker).stop(r),
      };
    },
  };
}

export async function awsReconcileDeps(): Promise<ReconcileDeps> {
  return {
    ...(await awsAnnounceDeps()),
    buildDeadLetters: await regionQueues('-dlq'),
    ownAccountId: await ownAccountId(),
    ...(process.env.STEMCELL_MEMBER_BUS_NAME ? { memberBusName: process.env.STEMCELL_MEMBER_BUS_NAME } : {}),
  };
}

export async function awsSyncSubscribersDeps(): Promise<SyncSubscribersDeps> {
  const cfg = await awsConfig();
  return {
    config: cfg,
    clock: systemClock,
    logger: powertools.logger,
    organization: new AwsOrganizationDirectory({ client: awsClients().organizations() }),
    ownAccountId: await ownAccountId(),
    ...(process.env.STEMCELL_MEMBER_BUS_NAME ? { memberBusName: process.env.STEMCELL_MEMBER_BUS_NAME } : {}),
    // Late joiners: the reconciler's delivery of the newest images, with this function's role.
    // Waves and pins decide what a joiner may hear (it reads rollout items); it never starts a bake timer.
    catchUp: {
      ...(await announceReadDeps()),
      ownAccountId: await ownAccountId(),
      ...(process.env.STEMCELL_MEMBER_BUS_NAME
        ? { memberBusName: process.env.STEMCELL_MEMBER_BUS_NAME }
        : {}),
    },
    rules: new EventBridgeBusRules({
      eventBusName: cfg.busName,
      client: awsClients().eventBridge(homeRegion()),
      ...(process.env.STEMCELL_SUBSCRIBER_ROLE_ARN
        ? { targetRoleArn: process.env.STEMCELL_SUBSCRIBER_ROLE_ARN }
        : {}),
      ...(process.env.STEMCELL_SUBSCRIBER_DLQ_ARN
        ? { deadLetterArn: process.env.STEMCELL_SUBSCRIBER_DLQ_ARN }
        : {}),
    }),
  };
}

export async function awsExpireDeps(): Promise<ExpireDeps> {
  const stores = {
    releases: new DynamoReleaseStore({
      tableName: env('STEMCELL_TABLE'),
      client: awsClients().dynamodb(homeRegion()),
    }),
    rollouts: new DynamoRolloutStore({
      tableName: env('STEMCELL_TABLE'),
      client: awsClients().dynamodb(homeRegion()),
    }),
  };
  return {
    protectedImages: (stream, region) => protectedImages(stores, stream, region),
    config: await awsConfig(),
    clock: systemClock,
    logger: powertools.logger,
    imaging,
    organization: new AwsOrganizationDirectory({ client: awsClients().organizations() }),
    // The home account's own launch templates are read directly; only other accounts need the member role.
    members: new AwsMemberAccounts({
      clients: new AwsClients({
        ownAccountId: await ownAccountId(),
        roleSessionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell-expire',
        ...(process.env.STEMCELL_MEMBER_ROLE_NAME
          ? { memberRoleName: process.env.STEMCELL_MEMBER_ROLE_NAME }
          : {}),
      }),
    }),
  };
}

/** In a member account: its own id from STS, its settings from its own deployment. */
export async function awsSubscriberDeps(): Promise<SubscriberDeps> {
  const account = await ownAccountId();
  let settings: (stream: string) => SubscriberSettings;
  if (process.env.STEMCELL_CONFIG) {
    settings = subscriberSettingsFromConfig(await awsConfig());
  } else {
    const prefix = process.env.STEMCELL_SSM_PREFIX;
    const instanceRefresh = process.env.STEMCELL_INSTANCE_REFRESH !== 'false';
    settings = () => ({
      instanceRefresh,
      ...(prefix ? { ssmParameter: `${prefix}{stream}/{region}/image-id` } : {}),
    });
  }
  return {
    accountId: account,
    // The subscriber acts in its own account: no role to assume.
    members: new AwsMemberAccounts({ clients: new AwsClients({ ownAccountId: account }) }),
    centralBus: env('STEMCELL_CENTRAL_BUS_ARN'),
    events: new EventBridgePublisher({ client: awsClients().eventBridge(homeRegion()) }),
    settings,
    clock: systemClock,
    logger: powertools.logger,
  };
}

/** The sweeper: every build region's smoke instances, no settings needed (it only lists and terminates). */
export async function awsSweepDeps(): Promise<import('../sweep-smoke-instances/handler.ts').SweepDeps> {
  const cfg = await awsConfig();
  return {
    config: cfg,
    sweeper: (region) =>
      new Ec2SmokeInstances({
        client: awsClients().ec2(region),
        settings: { subnetIds: [], securityGroupId: '' },
      }),
  };
}
