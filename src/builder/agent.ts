// The builder agent on EC2 (`stemcell builder --aws`): long-polls its region's FIFO build queue and runs the
// same worker as local mode over the AWS adapters. Only this file knows it is on AWS; the worker, applier,
// device and boot code do not.
//
// Volume affinity policy: a region's builders all run in one Availability Zone (infra/region.yml
// BuilderSubnetId), so every stream's volume lives there and every job finds its stream's volume. A volume is
// attached only while a job of its stream builds (FIFO message groups keep one stream's jobs serial across the
// fleet), then detached, so any builder can take the stream's next job. Its apply manifest is on the volume
// (volume/state.ts), so that builder applies incrementally too. A builder started in another AZ would write
// every stream's tree again onto new volumes there: it refuses to start (checkBuilderZone).
import { join } from 'node:path';
import { BuildQueueConsumer, RetryLater } from '#aws/build-queue-consumer.ts';
import { AwsFleetControl } from '#aws/builder-fleet.ts';
import { awsBuilderServices } from '#aws/builder-services.ts';
import { clientSettingsFromEnv } from '#aws/client-env.ts';
import { AwsClients } from '#aws/clients.ts';
import { instanceIdentity, targetLifecycleState } from '#aws/instance-identity.ts';
import type { QueueMessage } from '#ports';
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
  stateDir: string;
  /** The AZ the region's stream volumes are pinned to (region.yml BuilderAvailabilityZone). */
  availabilityZone: string;
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
    availabilityZone: need('STEMCELL_AVAILABILITY_ZONE'),
    ...(env.STEMCELL_BUILDER_GROUP ? { groupName: env.STEMCELL_BUILDER_GROUP } : {}),
    ...(env.STEMCELL_LIFECYCLE_HOOK ? { lifecycleHookName: env.STEMCELL_LIFECYCLE_HOOK } : {}),
  };
}

/** Refuses to run in an AZ other than the one the region's stream volumes are pinned to. */
export function checkBuilderZone(pinned: string, actual: string, instanceId: string): void {
  if (pinned === actual) return;
  throw new Error(
    `builder ${instanceId} runs in ${actual}, but this region's stream volumes live in ${pinned} ` +
      `(STEMCELL_AVAILABILITY_ZONE): here it would write every stream's tree again onto a new volume. ` +
      `Launch builders only in ${pinned}'s subnet (infra/region.yml BuilderSubnetId).`,
  );
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

export async function runAgent(config: AgentConfig, log: (line: string) => void): Promise<void> {
  const identity = await instanceIdentity();
  checkBuilderZone(config.availabilityZone, identity.availabilityZone, identity.instanceId);
  // Endpoint and retries from the environment (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), as the functions do.
  const clients = new AwsClients({ client: clientSettingsFromEnv() });
  const mountRoot = join(config.stateDir, 'mnt');
  await recoverMounts(mountRoot, log);
  const deps: BuilderDeps = {
    ...awsBuilderServices(clients, config, identity.region),
    region: identity.region,
    availabilityZone: identity.availabilityZone,
    instanceId: identity.instanceId,
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
  await new Promise<void>((resolve) => {
    // Scale-in or shutdown: stop polling, finish the job in hand (never snapshot half-applied content).
    const stop = (signal: string) => {
      log(`builder: ${signal}: finishing the job in hand, then exiting`);
      void consumer.stop().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
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
  });
}
