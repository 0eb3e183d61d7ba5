// The AWS services a function's dependencies are made of, over one container's clients: the release table, the
// central bus, EC2/EBS per region, the region stacks' queues, the boot gate's queue and smoke instances, the bake
// timer, alarms and Organizations. The counterpart of src/local/stack/services.ts.
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import { CloudWatchAlarms } from '#aws/alarms.ts';
import { SchedulerBakeTimer } from '#aws/bake-timer.ts';
import { EventBridgePublisher } from '#aws/event-bus.ts';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';
import { Ec2Images } from '#aws/images.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { AwsOrganizationDirectory } from '#aws/organization.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { DynamoRolloutStore } from '#aws/rollout-store.ts';
import { Ec2SmokeInstances, type SmokeInstanceSettings } from '#aws/smoke-instances.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import type { Imaging } from '#core/deps.ts';
import type { BootChecker, FifoQueue } from '#ports';
import type { EnvOf } from '../env.ts';
import type { AwsContainer } from './container.ts';

/** Made once per key; a failed promise is dropped so that the next call tries again. */
function perKey<T>(make: (key: string) => T): (key: string) => T {
  const made = new Map<string, T>();
  return (key) => {
    let found = made.get(key);
    if (found === undefined) {
      found = make(key);
      if (found instanceof Promise) found.catch(() => made.delete(key));
      made.set(key, found);
    }
    return found;
  };
}

export class AwsServices {
  readonly #container: AwsContainer;

  constructor(container: AwsContainer) {
    this.#container = container;
  }

  get #clients() {
    return this.#container.clients;
  }

  get #home(): string {
    return this.#container.homeRegion;
  }

  releases(tableName: string): DynamoReleaseStore {
    return new DynamoReleaseStore({ tableName, client: this.#clients.dynamodb(this.#home) });
  }

  rollouts(tableName: string): DynamoRolloutStore {
    return new DynamoRolloutStore({ tableName, client: this.#clients.dynamodb(this.#home) });
  }

  /** The central bus (name or ARN); without one, the entries name their bus (the subscriber's reports). */
  publisher(eventBusName?: string): EventBridgePublisher {
    return new EventBridgePublisher({
      client: this.#clients.eventBridge(this.#home),
      ...(eventBusName ? { eventBusName } : {}),
    });
  }

  bucket(bucket: string): S3ObjectStore {
    return new S3ObjectStore({ bucket, client: this.#clients.s3(this.#home) });
  }

  organization(): AwsOrganizationDirectory {
    return new AwsOrganizationDirectory({ client: this.#clients.organizations() });
  }

  alarms(): CloudWatchAlarms {
    return new CloudWatchAlarms({ client: (r) => this.#clients.cloudwatch(r) });
  }

  /** EC2/EBS of a region: images and snapshots. */
  readonly imaging = perKey((region): Imaging => {
    const client = this.#clients.ec2(region);
    return { images: new Ec2Images({ client }), snapshots: new EbsSnapshots({ client }) };
  });

  /**
   * The region stacks' queues named <STEMCELL_BUILD_QUEUE_PREFIX><region><suffix>.fifo in this account, one per
   * region. Their URLs come from SQS (GetQueueUrl, in the queue's region): region stacks are deployed after this
   * one, in any number of regions, so no URL of theirs can be in this function's environment.
   */
  regionQueues(prefix: string, suffix: '' | '-dlq'): (region: string) => FifoQueue {
    return perKey(
      (region) =>
        new SqsFifoQueue({
          queueName: `${prefix}${region}${suffix}.fifo`,
          client: this.#clients.sqs(region),
        }),
    );
  }

  /** The boot gate's queue (announce sends, boot-check consumes), when the deployment has one. */
  bootChecks(queueUrl: string | undefined): { bootChecks?: FifoQueue } {
    return queueUrl
      ? { bootChecks: new SqsFifoQueue({ queueUrl, client: this.#clients.sqs(this.#home) }) }
      : {};
  }

  bakeTimer(e: EnvOf<'announce'>): SchedulerBakeTimer {
    return new SchedulerBakeTimer({
      client: this.#clients.scheduler(this.#home),
      targetArn: e.STEMCELL_BAKE_TARGET_ARN,
      roleArn: e.STEMCELL_BAKE_ROLE_ARN,
      ...(e.STEMCELL_BAKE_DLQ_ARN ? { deadLetterArn: e.STEMCELL_BAKE_DLQ_ARN } : {}),
    });
  }

  /** The smoke-instance boot checker of each build region, with the settings its region stack put in SSM. */
  smokeInstances(parameter: string, consoleStore: S3ObjectStore): (region: string) => BootChecker {
    const checkers = perKey(async (region): Promise<BootChecker> => {
      const out = await this.#clients.ssm(region).send(new GetParameterCommand({ Name: parameter }));
      const settings = JSON.parse(out.Parameter?.Value ?? '{}') as SmokeInstanceSettings;
      if (!Array.isArray(settings.subnetIds) || !settings.securityGroupId)
        throw new Error(
          `SSM ${parameter} in ${region}: expected {"subnetIds": [...], "securityGroupId": "sg-..."}`,
        );
      return new Ec2SmokeInstances({ client: this.#clients.ec2(region), settings, consoleStore });
    });
    // The checker is built lazily; every method waits for its settings.
    return (region) => ({
      mode: 'instance',
      start: async (r) => (await checkers(region)).start(r),
      observe: async (r) => (await checkers(region)).observe(r),
      stop: async (r) => (await checkers(region)).stop(r),
    });
  }

  /** A region's smoke instances to sweep: no settings needed, the sweeper only lists and terminates. */
  smokeSweeper(region: string): Ec2SmokeInstances {
    return new Ec2SmokeInstances({
      client: this.#clients.ec2(region),
      settings: { subnetIds: [], securityGroupId: '' },
    });
  }
}
