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
import { BuildQueueConsumer } from '#aws/build-queue-consumer.ts';
import { clientSettingsFromEnv } from '#aws/client-env.ts';
import { AwsClients } from '#aws/clients.ts';
import { EventBridgePublisher } from '#aws/event-bus.ts';
import { instanceIdentity } from '#aws/instance-identity.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { Ec2Volumes } from '#aws/volumes.ts';
import { systemClock } from '#core/deps.ts';
import { BuildJob } from '#events/aws.ts';
import type { QueueMessage } from '#ports';
import { DeviceWorkspace } from './device.ts';
import { recoverMounts } from './quiesce.ts';
import { type BuilderDeps, handleBuildFailure, runBuild } from './worker.ts';

export { recoverMounts } from './quiesce.ts';

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

export function buildMessageHandler(
  deps: BuilderDeps,
  maxReceiveCount: number,
  log: (line: string) => void,
): (message: QueueMessage) => Promise<void> {
  return async (message) => {
    const job = BuildJob.parse(JSON.parse(message.body));
    log(`builder: ${job.stream} ${job.revision} (attempt ${message.receiveCount})`);
    try {
      const outcome = await runBuild(deps, job);
      log(
        outcome.kind === 'built'
          ? `builder: ${job.stream} ${job.revision}: snapshot ${outcome.snapshotId} (${outcome.apply.filesWritten} files written)`
          : `builder: ${job.stream} ${job.revision}: ${outcome.reason}`,
      );
    } catch (err) {
      const verdict = await handleBuildFailure(deps, job, err, {
        receiveCount: message.receiveCount,
        maxReceiveCount,
      });
      log(`builder: ${job.stream} ${job.revision} failed (${verdict}): ${(err as Error).message}`);
      // Throwing returns the message to the queue (redrive to the DLQ after maxReceiveCount).
      if (verdict !== 'done') throw err;
    }
  };
}

export async function runAgent(config: AgentConfig, log: (line: string) => void): Promise<void> {
  const identity = await instanceIdentity();
  checkBuilderZone(config.availabilityZone, identity.availabilityZone, identity.instanceId);
  // Endpoint and retries from the environment (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, ...), as the functions do.
  const clients = new AwsClients({ client: clientSettingsFromEnv() });
  const mountRoot = join(config.stateDir, 'mnt');
  await recoverMounts(mountRoot, log);
  const ec2 = clients.ec2(identity.region);
  const deps: BuilderDeps = {
    region: identity.region,
    availabilityZone: identity.availabilityZone,
    instanceId: identity.instanceId,
    kmsKeyId: config.kmsKeyId,
    objects: new S3ObjectStore({ bucket: config.bucket, client: clients.s3(config.homeRegion) }),
    volumes: new Ec2Volumes({ client: ec2 }),
    snapshots: new EbsSnapshots({ client: ec2 }),
    releases: new DynamoReleaseStore({
      tableName: config.tableName,
      client: clients.dynamodb(config.homeRegion),
    }),
    publisher: new EventBridgePublisher({
      client: clients.eventBridge(config.homeRegion),
      eventBusName: config.centralBus,
    }),
    workspace: new DeviceWorkspace({ mountRoot, log }),
    manifestPath: (volumeId) => join(config.stateDir, 'manifests', `${volumeId}.json`),
    clock: systemClock,
    log,
  };
  const consumer = new BuildQueueConsumer({
    queueUrl: config.queueUrl,
    sqs: clients.sqs(identity.region),
    handleMessage: buildMessageHandler(deps, config.maxReceiveCount, log),
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
