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
import { join } from 'node:path';
import { BuildQueueConsumer, RetryLater } from '#aws/build-queue-consumer.ts';
import { awsBuilderServices } from '#aws/builder-services.ts';
import { clientSettingsFromEnv } from '#aws/client-env.ts';
import { AwsClients } from '#aws/clients.ts';
import { instanceIdentity } from '#aws/instance-identity.ts';
import type { QueueMessage, Volumes } from '#ports';
import { DeviceWorkspace } from './device.ts';
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

/**
 * Runs the agent. `diskImages`: where direct streams keep their disks on this builder (the CLI passes the same
 * disk-image volumes local mode uses, over <stateDir>/disks).
 */
export async function runAgent(
  config: AgentConfig,
  log: (line: string) => void,
  diskImages: (region: string) => Volumes,
): Promise<void> {
  const identity = await instanceIdentity();
  // Endpoint and retries from the environment (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), as the functions do.
  const clients = new AwsClients({ client: clientSettingsFromEnv() });
  const mountRoot = join(config.stateDir, 'mnt');
  await recoverMounts(mountRoot, log);
  const deps: BuilderDeps = {
    ...awsBuilderServices(clients, config, identity.region),
    region: identity.region,
    availabilityZone: identity.availabilityZone,
    instanceId: identity.instanceId,
    diskImages: diskImages(identity.region),
    workspace: new DeviceWorkspace({ mountRoot, log }),
    manifestPath: (volumeId) => join(config.stateDir, 'manifests', `${volumeId}.json`),
    log,
  };
  const consumer = new BuildQueueConsumer({
    queueUrl: config.queueUrl,
    sqs: clients.sqs(identity.region),
    handleMessage: buildMessageHandler(deps, config.maxReceiveCount, log),
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
  });
}
