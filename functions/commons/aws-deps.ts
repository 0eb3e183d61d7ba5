// The core's dependencies built from the AWS adapters, once per Lambda container. Only the exported
// `handler` of each function reaches this module (lazily, at the first invocation), so tests and the local
// runtime never touch AWS.
//
// Configuration on AWS: the stemcell.config.yml text (YAML or JSON) comes from the STEMCELL_CONFIG environment
// variable when set (small configs, tests), else from the object STEMCELL_CONFIG_KEY in the tarball bucket
// STEMCELL_BUCKET (what serverless.yml deploys: no 4 KB environment limit, and `stemcell` can update it without
// a redeploy). Read once per container.
//
// Every other variable, and the SDK client settings (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), is declared in
// env.ts and parsed once per container, with what each function requires.
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { parse as parseYaml } from 'yaml';
import { CloudWatchAlarms } from '#aws/alarms.ts';
import { SchedulerBakeTimer } from '#aws/bake-timer.ts';
import { clientSettings } from '#aws/client-env.ts';
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
  type SweepDeps,
  type SyncSubscribersDeps,
  subscriberSettingsFromConfig,
  systemClock,
} from '#core/deps.ts';
import { protectedImages } from '#core/rollout/rollback.ts';
import type { BootChecker, FifoQueue } from '#ports';
import { type EnvOf, type FunctionEnv, type FunctionName, parseFunctionEnv } from './env.ts';
import { powertools } from './powertools.ts';

const parsedEnv = new Map<FunctionName, FunctionEnv>();
/** The function's environment, parsed at its first use (a container runs one function). */
function environment<F extends FunctionName>(fn: F): EnvOf<F> {
  let found = parsedEnv.get(fn);
  if (!found) {
    found = parseFunctionEnv(fn);
    parsedEnv.set(fn, found);
  }
  return found as EnvOf<F>;
}

const homeRegion = (e: FunctionEnv) => e.STEMCELL_HOME_REGION ?? e.AWS_REGION;

let clients: AwsClients | undefined;
/** The one AwsClients of the container: every SDK client gets the settings the environment gives. */
function awsClients(e: FunctionEnv): AwsClients {
  clients ??= new AwsClients({
    ...(e.STEMCELL_MEMBER_ROLE_NAME ? { memberRoleName: e.STEMCELL_MEMBER_ROLE_NAME } : {}),
    roleSessionName: e.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell',
    client: clientSettings(e),
  });
  return clients;
}

/** The deployment names the real resources: its bucket, bus, key and region win over the file's defaults. */
function withDeployment(config: StemcellConfig, e: FunctionEnv): StemcellConfig {
  return {
    ...config,
    ...(e.STEMCELL_HOME_REGION ? { homeRegion: e.STEMCELL_HOME_REGION } : {}),
    ...(e.STEMCELL_BUCKET ? { bucket: e.STEMCELL_BUCKET } : {}),
    ...(e.STEMCELL_BUS_NAME ? { busName: e.STEMCELL_BUS_NAME } : {}),
    ...(e.STEMCELL_KMS_KEY_ID ? { kmsKeyId: e.STEMCELL_KMS_KEY_ID } : {}),
  };
}

let config: Promise<StemcellConfig> | undefined;
/** The function's stemcell config, read once per container. */
export function awsConfig(e: FunctionEnv): Promise<StemcellConfig> {
  config ??= (async () => withDeployment(await readConfig(e), e))();
  config.catch(() => {
    config = undefined;
  });
  return config;
}

async function readConfig(e: FunctionEnv): Promise<StemcellConfig> {
  if (e.STEMCELL_CONFIG) return parseConfig(parseYaml(e.STEMCELL_CONFIG), 'STEMCELL_CONFIG');
  // env.ts requires both for every function that reads its config from the bucket.
  const bucket = e.STEMCELL_BUCKET as string;
  const key = e.STEMCELL_CONFIG_KEY as string;
  const out = await awsClients(e)
    .s3(homeRegion(e))
    .send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = await out.Body?.transformToString('utf8');
  if (!text) throw new Error(`s3://${bucket}/${key} is empty`);
  return parseConfig(parseYaml(text), `s3://${bucket}/${key}`);
}

const imagingByRegion = new Map<string, Imaging>();
function imagingFor(e: FunctionEnv): (region: string) => Imaging {
  return (region) => {
    let found = imagingByRegion.get(region);
    if (!found) {
      const client = awsClients(e).ec2(region);
      found = { images: new Ec2Images({ client }), snapshots: new EbsSnapshots({ client }) };
      imagingByRegion.set(region, found);
    }
    return found;
  };
}

async function base(e: EnvOf<'register'>) {
  const cfg = await awsConfig(e);
  const region = homeRegion(e);
  return {
    config: cfg,
    clock: systemClock,
    logger: powertools.logger,
    releases: new DynamoReleaseStore({ tableName: e.STEMCELL_TABLE, client: awsClients(e).dynamodb(region) }),
    events: new EventBridgePublisher({
      client: awsClients(e).eventBridge(region),
      eventBusName: cfg.busName,
    }),
  };
}

let accountId: Promise<string> | undefined;
function ownAccountId(e: FunctionEnv): Promise<string> {
  accountId ??= awsClients(e)
    .sts(homeRegion(e))
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

/**
 * The region stacks' queues named <STEMCELL_BUILD_QUEUE_PREFIX><region><suffix>.fifo in this account, one per
 * region. Their URLs come from SQS (GetQueueUrl, in the queue's region): region stacks are deployed after this
 * one, in any number of regions, so no URL of theirs can be in this function's environment.
 */
function regionQueues(e: EnvOf<'ingest'>, suffix: string): (region: string) => FifoQueue {
  const queues = new Map<string, FifoQueue>();
  return (region) => {
    let queue = queues.get(region);
    if (!queue) {
      queue = new SqsFifoQueue({
        queueName: `${e.STEMCELL_BUILD_QUEUE_PREFIX}${region}${suffix}.fifo`,
        client: awsClients(e).sqs(region),
      });
      queues.set(region, queue);
    }
    return queue;
  };
}

export async function awsIngestDeps(): Promise<IngestDeps> {
  const e = environment('ingest');
  const b = await base(e);
  return {
    ...b,
    buildQueue: regionQueues(e, ''),
    objects: new S3ObjectStore({ bucket: b.config.bucket, client: awsClients(e).s3(homeRegion(e)) }),
  };
}

export async function awsRegisterDeps(): Promise<RegisterDeps> {
  const e = environment('register');
  return { ...(await base(e)), imaging: imagingFor(e) };
}

/** announce's deps without the bake timer: what reads releases, rollouts and pins (late joiners) needs. */
async function announceReadDeps(e: EnvOf<'register'>): Promise<AnnounceDeps> {
  const region = homeRegion(e);
  const queueUrl = e.STEMCELL_BOOT_CHECK_QUEUE_URL;
  return {
    ...(await base(e)),
    imaging: imagingFor(e),
    organization: new AwsOrganizationDirectory({ client: awsClients(e).organizations() }),
    defaultBootCheckMode: 'instance',
    ...(queueUrl ? { bootChecks: new SqsFifoQueue({ queueUrl, client: awsClients(e).sqs(region) }) } : {}),
    rollouts: new DynamoRolloutStore({ tableName: e.STEMCELL_TABLE, client: awsClients(e).dynamodb(region) }),
    alarms: new CloudWatchAlarms({ client: (r) => awsClients(e).cloudwatch(r) }),
  };
}

async function announceDeps(e: EnvOf<'announce'>): Promise<AnnounceDeps> {
  return {
    ...(await announceReadDeps(e)),
    timer: new SchedulerBakeTimer({
      client: awsClients(e).scheduler(homeRegion(e)),
      targetArn: e.STEMCELL_BAKE_TARGET_ARN,
      roleArn: e.STEMCELL_BAKE_ROLE_ARN,
      ...(e.STEMCELL_BAKE_DLQ_ARN ? { deadLetterArn: e.STEMCELL_BAKE_DLQ_ARN } : {}),
    }),
  };
}

export function awsAnnounceDeps(): Promise<AnnounceDeps> {
  return announceDeps(environment('announce'));
}

const smokeByRegion = new Map<string, Promise<BootChecker>>();
/** The smoke-instance checker of a build region, with the settings its region stack published in SSM. */
function smokeInstances(
  e: EnvOf<'boot-check'>,
  region: string,
  consoleStore: S3ObjectStore,
): Promise<BootChecker> {
  let found = smokeByRegion.get(region);
  if (!found) {
    found = (async () => {
      const name = e.STEMCELL_SMOKE_PARAMETER;
      const out = await awsClients(e)
        .ssm(region)
        .send(new GetParameterCommand({ Name: name }));
      const settings = JSON.parse(out.Parameter?.Value ?? '{}') as SmokeInstanceSettings;
      if (!Array.isArray(settings.subnetIds) || !settings.securityGroupId)
        throw new Error(
          `SSM ${name} in ${region}: expected {"subnetIds": [...], "securityGroupId": "sg-..."}`,
        );
      return new Ec2SmokeInstances({ client: awsClients(e).ec2(region), settings, consoleStore });
    })();
    found.catch(() => smokeByRegion.delete(region));
    smokeByRegion.set(region, found);
  }
  return found;
}

export async function awsBootCheckDeps(): Promise<BootCheckDeps> {
  const e = environment('boot-check');
  const deps = await announceDeps(e);
  const consoleStore = new S3ObjectStore({
    bucket: deps.config.bucket,
    client: awsClients(e).s3(homeRegion(e)),
  });
  return {
    ...deps,
    bootChecker(region, mode) {
      if (mode !== 'instance')
        throw new Error(`boot check mode ${mode} runs in local mode only; on AWS: instance`);
      // The checker is built lazily; every method waits for its settings.
      const checker = smokeInstances(e, region, consoleStore);
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
  const e = environment('reconcile');
  return {
    ...(await announceDeps(e)),
    buildDeadLetters: regionQueues(e, '-dlq'),
    ownAccountId: await ownAccountId(e),
    ...(e.STEMCELL_MEMBER_BUS_NAME ? { memberBusName: e.STEMCELL_MEMBER_BUS_NAME } : {}),
  };
}

export async function awsSyncSubscribersDeps(): Promise<SyncSubscribersDeps> {
  const e = environment('sync-subscribers');
  const cfg = await awsConfig(e);
  const memberBus = e.STEMCELL_MEMBER_BUS_NAME ? { memberBusName: e.STEMCELL_MEMBER_BUS_NAME } : {};
  return {
    config: cfg,
    clock: systemClock,
    logger: powertools.logger,
    organization: new AwsOrganizationDirectory({ client: awsClients(e).organizations() }),
    ownAccountId: await ownAccountId(e),
    ...memberBus,
    // Late joiners: the reconciler's delivery of the newest images, with this function's role.
    // Waves and pins decide what a joiner may hear (it reads rollout items); it never starts a bake timer.
    catchUp: { ...(await announceReadDeps(e)), ownAccountId: await ownAccountId(e), ...memberBus },
    rules: new EventBridgeBusRules({
      eventBusName: cfg.busName,
      client: awsClients(e).eventBridge(homeRegion(e)),
      ...(e.STEMCELL_SUBSCRIBER_ROLE_ARN ? { targetRoleArn: e.STEMCELL_SUBSCRIBER_ROLE_ARN } : {}),
      ...(e.STEMCELL_SUBSCRIBER_DLQ_ARN ? { deadLetterArn: e.STEMCELL_SUBSCRIBER_DLQ_ARN } : {}),
    }),
  };
}

export async function awsExpireDeps(): Promise<ExpireDeps> {
  const e = environment('expire');
  const region = homeRegion(e);
  const stores = {
    releases: new DynamoReleaseStore({ tableName: e.STEMCELL_TABLE, client: awsClients(e).dynamodb(region) }),
    rollouts: new DynamoRolloutStore({ tableName: e.STEMCELL_TABLE, client: awsClients(e).dynamodb(region) }),
  };
  return {
    protectedImages: (stream, r) => protectedImages(stores, stream, r),
    config: await awsConfig(e),
    clock: systemClock,
    logger: powertools.logger,
    imaging: imagingFor(e),
    organization: new AwsOrganizationDirectory({ client: awsClients(e).organizations() }),
    // The home account's own launch templates are read directly; only other accounts need the member role.
    members: new AwsMemberAccounts({
      clients: awsClients(e).with({
        ownAccountId: await ownAccountId(e),
        roleSessionName: e.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell-expire',
        ...(e.STEMCELL_MEMBER_ROLE_NAME ? { memberRoleName: e.STEMCELL_MEMBER_ROLE_NAME } : {}),
      }),
    }),
  };
}

/** expire's grace period from EXPIRE_GRACE_HOURS, when set. */
export function awsExpireGraceMs(): number | undefined {
  const hours = environment('expire').EXPIRE_GRACE_HOURS;
  return hours === undefined ? undefined : hours * 3_600_000;
}

/** In a member account: its own id from STS, its settings from its own deployment. */
export async function awsSubscriberDeps(): Promise<SubscriberDeps> {
  const e = environment('subscriber');
  const account = await ownAccountId(e);
  let settings: (stream: string) => SubscriberSettings;
  if (e.STEMCELL_CONFIG) {
    settings = subscriberSettingsFromConfig(await awsConfig(e));
  } else {
    const prefix = e.STEMCELL_SSM_PREFIX;
    const instanceRefresh = e.STEMCELL_INSTANCE_REFRESH !== 'false';
    settings = () => ({
      instanceRefresh,
      ...(prefix ? { ssmParameter: `${prefix}{stream}/{region}/image-id` } : {}),
    });
  }
  return {
    accountId: account,
    // The subscriber acts in its own account: no role to assume.
    members: new AwsMemberAccounts({ clients: awsClients(e).with({ ownAccountId: account }) }),
    centralBus: e.STEMCELL_CENTRAL_BUS_ARN,
    events: new EventBridgePublisher({ client: awsClients(e).eventBridge(homeRegion(e)) }),
    settings,
    clock: systemClock,
    logger: powertools.logger,
  };
}

/** The sweeper: every build region's smoke instances, no settings needed (it only lists and terminates). */
export async function awsSweepDeps(): Promise<SweepDeps> {
  const e = environment('sweep-smoke-instances');
  const cfg = await awsConfig(e);
  return {
    config: cfg,
    sweeper: (region) =>
      new Ec2SmokeInstances({
        client: awsClients(e).ec2(region),
        settings: { subnetIds: [], securityGroupId: '' },
      }),
  };
}
