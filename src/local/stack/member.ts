// infra/member.yml, locally, in each member account: its default bus with the rules that put "Image Ready" (and
// Auto Scaling's refresh ends) on the account's FIFO queue, the subscriber consuming that queue as Lambda's SQS
// event source does, and the custom resource's grant on the customer key for the account's Auto Scaling role.
import { join } from 'node:path';
import { INSTANCE_REFRESH_END_PATTERN, INSTANCE_REFRESH_MESSAGE_GROUP } from '#events/aws.ts';
import type { Powertools } from '#functions/commons/powertools.ts';
import { createHandler as createSubscriber } from '#functions/subscriber/handler.ts';
import type { EventPublisher } from '#ports';
import { eventBusArn, type LocalEventBus } from '../event-bus.ts';
import { LocalFifoQueue } from '../fifo-queue.ts';
import { AUTO_SCALING_GRANT_OPERATIONS, autoScalingRoleArn } from '../key-policy.ts';
import type { LambdaHost, SqsHandler } from './lambda.ts';
import type { LocalRuntime } from './runtime.ts';
import type { LocalServices } from './services.ts';

const SUBSCRIBER_VISIBILITY_SECONDS = 2;

export interface MemberProgress {
  kind: 'account-updated';
  accountId: string;
  region: string;
  stream: string;
  sequence: number;
}

export interface MemberStacksOptions {
  services: LocalServices;
  lambda: LambdaHost;
  runtime: LocalRuntime;
  tools: Powertools;
  onProgress?: (event: MemberProgress) => void;
  /** Test hook: runs before a member account's subscriber handles a batch. */
  beforeSubscriber?: (accountId: string) => Promise<void>;
}

export class MemberStacks {
  /** Each member account's FIFO queue between its bus rule and its subscriber. */
  readonly queues = new Map<string, LocalFifoQueue>();
  readonly #buses = new Map<string, LocalEventBus>();
  readonly #options: MemberStacksOptions;

  constructor(options: MemberStacksOptions) {
    this.#options = options;
  }

  /**
   * The member account's default bus, with the rule that puts "Image Ready" on the account's FIFO queue
   * (MessageGroupId = stream), and the subscriber consuming it, so deliveries for one account and stream never
   * run at once. The subscriber starts once the runtime runs.
   */
  bus(accountId: string): LocalEventBus {
    let bus = this.#buses.get(accountId);
    if (bus) return bus;
    const { services, lambda } = this.#options;
    const home = services.homeRegion;
    // The management account's default bus is the home bus that already exists.
    bus =
      services.registry.resolve(eventBusArn(home, accountId, 'default')) ??
      services.bus(accountId, home, 'default');
    const queueDir = join(services.dataDir, 'queues', 'members', accountId);
    const queueOptions = { accountId, region: home, clock: services.clock };
    const queue = new LocalFifoQueue(queueDir, 'stemcell-subscriber.fifo', {
      ...queueOptions,
      deadLetterQueue: new LocalFifoQueue(queueDir, 'stemcell-subscriber-dlq.fifo', queueOptions),
      maxReceiveCount: 5,
    });
    bus.addRule(
      'stemcell-subscriber',
      // An Image Ready with an audience (rollout waves) is for the accounts it lists.
      {
        source: ['stemcell'],
        'detail-type': ['Image Ready'],
        $or: [{ detail: { audience: [accountId] } }, { detail: { audience: [{ exists: false }] } }],
      },
      async (event) => {
        const detail = event.detail as { stream: string };
        await queue.send(JSON.stringify(event), detail.stream, event.id);
      },
    );
    // InstanceRefreshEndsToSubscriber: how refreshes ended, in their own message group.
    bus.addRule('stemcell-instance-refresh-ends', INSTANCE_REFRESH_END_PATTERN, async (event) => {
      await queue.send(JSON.stringify(event), INSTANCE_REFRESH_MESSAGE_GROUP, event.id);
    });
    this.#buses.set(accountId, bus);
    this.queues.set(accountId, queue);
    if (lambda.running) this.#startSubscriber(accountId, bus, queue);
    return bus;
  }

  /**
   * The custom resource: a grant on the customer key for the account's Auto Scaling service-linked role, created
   * by the member itself (the key policy allows exactly this grant).
   */
  async grantKeyToAutoScaling(accountId: string): Promise<void> {
    const { services } = this.#options;
    if (accountId === services.managementAccountId) return;
    await services.keys.createGrantAs(
      `arn:aws:sts::${accountId}:assumed-role/stemcell-key-grant/stemcell-key-grant`,
      services.config.kmsKeyId,
      autoScalingRoleArn(accountId),
      AUTO_SCALING_GRANT_OPERATIONS,
    );
  }

  /** Lambda's SQS event source for one account's subscriber: batches of up to 10, in group order. */
  #startSubscriber(accountId: string, bus: LocalEventBus, queue: LocalFifoQueue): void {
    const { lambda, runtime, tools, onProgress, beforeSubscriber } = this.#options;
    // The progress line follows the reports the subscriber sends back, one per launch template it handled.
    const events: EventPublisher = {
      async publish(entries) {
        await bus.publish(entries);
        for (const e of entries) {
          // A refresh's end is a second report of a template already counted.
          if (e.detailType !== 'Launch Template Updated' || (e.detail as { refresh?: unknown }).refresh)
            continue;
          const d = e.detail as { region: string; stream: string; sequence: number };
          onProgress?.({
            kind: 'account-updated',
            accountId,
            region: d.region,
            stream: d.stream,
            sequence: d.sequence,
          });
        }
      },
    };
    const subscriber: SqsHandler = createSubscriber(runtime.member(accountId, events).subscriber(), tools);
    lambda.eventSource(
      queue,
      `stemcell-subscriber-${accountId}`,
      beforeSubscriber
        ? async (event, context) => {
            await beforeSubscriber(accountId);
            return subscriber(event, context);
          }
        : subscriber,
      { visibilityTimeoutSeconds: SUBSCRIBER_VISIBILITY_SECONDS },
    );
  }
}
