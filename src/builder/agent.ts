// The builder agent on EC2 (`stemcell builder --aws`): long-polls its region's FIFO build queue and runs the
// same worker as local mode over the AWS adapters. Only this file knows it is on AWS; the worker, applier,
// device and boot code do not.
//
// Where a stream's disk lives (docs/architecture.md, "Where a stream's disk lives"):
// - `direct` streams (the default): a disk image on this builder's own disk (<stateDir>/disks), attached through
//   a loop device, exactly as in local mode. A builder that does not have it yet restores it from the stream's
//   last snapshot in the region (ListSnapshotBlocks + GetSnapshotBlock, in parallel). Nothing ties a stream to
//   an Availability Zone, so the region's builders span several and no job waits on one AZ.
// - `create-snapshot` streams (the fallback): an EBS volume per stream and AZ, attached while a job builds. A
//   builder in an AZ without the stream's volume makes a new one there (the whole tree is written once).
// FIFO message groups keep one stream's jobs serial across the fleet either way.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildQueueConsumer, RetryLater } from '#aws/build-queue-consumer.ts';
import { AwsFleetControl } from '#aws/builder-fleet.ts';
import { awsBuilderServices } from '#aws/builder-services.ts';
import { clientSettingsFromEnv } from '#aws/client-env.ts';
import { AwsClients } from '#aws/clients.ts';
import { type InstanceIdentity, instanceIdentity, targetLifecycleState } from '#aws/instance-identity.ts';
import type { QueueMessage, Volumes } from '#ports';
import { DeviceWorkspace } from './device.ts';
import { BuilderLifecycle, withLifecycle } from './fleet.ts';
import { handleBuildMessage, retryDelaySeconds } from './message.ts';
import { recoverMounts } from './quiesce.ts';
import type { BuilderDeps } from './worker.ts';

export { recoverMounts } from './quiesce.ts';

/** The builder's deployment (BuilderDeployment: table, bucket, bus, key) and its own queue, AZ and state. */
export interface AgentConfig {
  homeRegion: string;
  queueUrl: string;
  tableName: string;
  bucket: string;
  /** The central bus in the home region (name or ARN). */
  centralBus: string;
  kmsKeyId: string;
  maxReceiveCount: number;
  /** The builder's own data: mount points, fallback manifests, and the direct streams' disk images. */
  stateDir: string;
  /** The builders' Auto Scaling group and its termination lifecycle hook (region.yml); absent: no fleet. */
  groupName?: string;
  lifecycleHookName?: string;
}

/** Agent settings from the environment written by infra/builder/bootstrap.sh (/etc/stemcell/builder.env). */
export function agentConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const need = (name: string): string => {
    const value = env[name];
    if (!value)
      throw new Error(`builder: environment variable ${name} is not set (see /etc/stemcell/builder.env)`);
    return value;
  };
  const maxReceiveCount = Number(env.STEMCELL_MAX_RECEIVE_COUNT ?? '5');
  if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1) {
    throw new Error(
      `builder: STEMCELL_MAX_RECEIVE_COUNT must be a whole number ≥ 1, got ${env.STEMCELL_MAX_RECEIVE_COUNT}`,
    );
  }
  return {
    homeRegion: need('STEMCELL_HOME_REGION'),
    queueUrl: need('STEMCELL_BUILD_QUEUE_URL'),
    tableName: need('STEMCELL_TABLE'),
    bucket: need('STEMCELL_BUCKET'),
    centralBus: need('STEMCELL_BUS_NAME'),
    kmsKeyId: need('STEMCELL_KMS_KEY_ID'),
    maxReceiveCount,
    stateDir: env.STEMCELL_STATE_DIR ?? '/var/lib/stemcell',
    ...(env.STEMCELL_BUILDER_GROUP ? { groupName: env.STEMCELL_BUILDER_GROUP } : {}),
    ...(env.STEMCELL_LIFECYCLE_HOOK ? { lifecycleHookName: env.STEMCELL_LIFECYCLE_HOOK } : {}),
  };
}

/**
 * The agent's side of one build message (message.ts): resolving deletes it; throwing hands it back to the queue,
 * visible again after the backoff handleBuildMessage() chose (the DLQ after maxReceiveCount).
 */
export function buildMessageHandler(
  deps: BuilderDeps,
  maxReceiveCount: number,
  log: (line: string) => void,
): (message: QueueMessage) => Promise<void> {
  return async (message) => {
    const end = await handleBuildMessage(deps, message, {
      maxReceiveCount,
      log: (line) => log(`builder: ${line}`),
      onStart: (job, attempt) => log(`builder: ${job.stream} ${job.revision} (attempt ${attempt})`),
      onBuilt: (job, outcome) =>
        log(
          outcome.kind === 'built'
            ? `builder: ${job.stream} ${job.revision}: snapshot ${outcome.snapshotId} (${outcome.apply.filesWritten} files written)`
            : `builder: ${job.stream} ${job.revision}: ${outcome.reason}`,
        ),
      onFailed: (job, reason, verdict) =>
        log(`builder: ${job.stream} ${job.revision} failed (${verdict}): ${reason}`),
    });
    if (end.kind === 'retry') throw new RetryLater(end.afterSeconds, end.error);
  };
}

/** What the builder's host supplies: where direct streams' disks live, and for a test host its identity. */
export interface AgentHost {
  /**
   * Where direct streams keep their disks on this builder (the CLI passes the same disk-image volumes local
   * mode uses, over <stateDir>/disks).
   */
  diskImages: (region: string) => Volumes;
  /** Who and where this builder is. @defaultValue read from IMDSv2 */
  identity?: InstanceIdentity;
  /** The EBS volumes port over the region's EC2 client. @defaultValue Ec2Volumes (NVMe device lookup) */
  volumes?: (ec2: ReturnType<AwsClients['ec2']>) => Volumes;
}

export interface RunningAgent {
  instanceId: string;
  /** Resolves when the agent stopped on its own: its lifecycle hook said the instance terminates. */
  finished: Promise<void>;
  /** Stops polling; resolves once the job in hand is finished (never a half-applied snapshot). */
  stop(): Promise<void>;
}

/** Starts polling the region's build queue; the agent runs until stop() or its instance terminates. */
export async function startAgent(
  config: AgentConfig,
  log: (line: string) => void,
  host: AgentHost,
): Promise<RunningAgent> {
  const identity = host.identity ?? (await instanceIdentity());
  // Endpoint and retries from the environment (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), as the functions do.
  const clients = new AwsClients({ client: clientSettingsFromEnv() });
  const mountRoot = join(config.stateDir, 'mnt');
  await recoverMounts(mountRoot, log);
  // Where a volume without a state partition keeps its apply manifest (BuilderDeps.manifestPath).
  await mkdir(join(config.stateDir, 'manifests'), { recursive: true });
  const deps: BuilderDeps = {
    ...awsBuilderServices(clients, config, identity.region),
    ...(host.volumes ? { volumes: host.volumes(clients.ec2(identity.region)) } : {}),
    region: identity.region,
    availabilityZone: identity.availabilityZone,
    instanceId: identity.instanceId,
    diskImages: host.diskImages(identity.region),
    workspace: new DeviceWorkspace({ mountRoot, log }),
    manifestPath: (volumeId) => join(config.stateDir, 'manifests', `${volumeId}.json`),
    log,
  };
  const lifecycle =
    config.groupName && config.lifecycleHookName
      ? new BuilderLifecycle(
          new AwsFleetControl({
            autoScaling: clients.autoScaling(identity.region),
            cloudwatch: clients.cloudwatch(identity.region),
            sqs: clients.sqs(identity.region),
            instanceId: identity.instanceId,
            groupName: config.groupName,
            hookName: config.lifecycleHookName,
            queueUrl: config.queueUrl,
          }),
          log,
        )
      : undefined;
  const handle = buildMessageHandler(
    lifecycle ? withLifecycle(deps, lifecycle) : deps,
    config.maxReceiveCount,
    log,
  );
  const consumer = new BuildQueueConsumer({
    queueUrl: config.queueUrl,
    sqs: clients.sqs(identity.region),
    handleMessage: lifecycle ? lifecycle.wrap(handle) : handle,
    retryDelaySeconds: (receiveCount) => retryDelaySeconds(receiveCount),
    visibilityTimeoutSeconds: 60,
    onError: (err, message) =>
      log(`builder: queue error${message ? ` on ${message.messageId}` : ''}: ${err.message}`),
  });
  consumer.start();
  log(`builder: ${identity.instanceId} in ${identity.availabilityZone} polling ${config.queueUrl}`);
  const timers: NodeJS.Timeout[] = [];
  const finished = new Promise<void>((resolve) => {
    if (!lifecycle) return;
    // The backlog metric each minute, and the termination hook seen through IMDS every 5 seconds.
    const metric = setInterval(() => {
      lifecycle.publishBacklog().catch((e: Error) => log(`builder: backlog metric: ${e.message}`));
    }, 60_000);
    const watch = setInterval(() => {
      void targetLifecycleState().then((state) => {
        if (state !== 'Terminated' || lifecycle.draining) return;
        clearInterval(watch);
        clearInterval(metric);
        log('builder: terminating (lifecycle hook): no new job');
        void Promise.all([consumer.stop(), lifecycle.terminating()]).then(() => resolve());
      });
    }, 5_000);
    timers.push(metric, watch);
  });
  return {
    instanceId: identity.instanceId,
    finished,
    stop: async () => {
      for (const timer of timers) clearInterval(timer);
      await consumer.stop();
    },
  };
}

export async function runAgent(
  config: AgentConfig,
  log: (line: string) => void,
  host: AgentHost,
): Promise<void> {
  const agent = await startAgent(config, log, host);
  await new Promise<void>((resolve) => {
    // Scale-in or shutdown: stop polling, finish the job in hand (never snapshot half-applied content).
    const stop = (signal: string) => {
      log(`builder: ${signal}: finishing the job in hand, then exiting`);
      void agent.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    void agent.finished.then(resolve);
  });
}
