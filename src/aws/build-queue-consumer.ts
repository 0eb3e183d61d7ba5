// Runs the builder's region queue with sqs-consumer: long polling, one message at a time, a visibility
// heartbeat while a build runs, delete on success, and the message left for redelivery when the handler
// throws. stop() (on SIGTERM, i.e. Auto Scaling scale-in) stops polling and resolves once the message in
// hand has finished, so a half-done build is never abandoned mid-step.
import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import { Consumer } from 'sqs-consumer';
import type { QueueMessage } from '#ports';

export interface BuildQueueConsumerOptions {
  queueUrl: string;
  sqs: SQSClient;
  /**
   * Resolve: done, the message is deleted. Throw: the message returns to the queue (and the DLQ in time), after
   * the RetryLater's delay when it throws one.
   */
  handleMessage: (message: QueueMessage) => Promise<void>;
  /**
   * Seconds before a message whose handler threw (other than RetryLater) is visible again, by its receive count:
   * the builder's backoff (src/builder/message.ts), never the whole visibility timeout.
   */
  retryDelaySeconds(receiveCount: number): number;
  /** Seconds a received message stays hidden; extended by the heartbeat while the handler runs. */
  visibilityTimeoutSeconds?: number;
  heartbeatSeconds?: number;
  waitTimeSeconds?: number;
  onError?: (err: Error, message?: QueueMessage) => void;
}

export function toQueueMessage(m: Message): QueueMessage {
  return {
    messageId: m.MessageId ?? '',
    body: m.Body ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1'),
    groupId: m.Attributes?.MessageGroupId ?? '',
  };
}

/** Thrown by a handler that knows when its message should be seen again (its own backoff). */
export class RetryLater extends Error {
  override readonly name = 'RetryLater';
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number, cause: Error) {
    super(cause.message, { cause });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export class BuildQueueConsumer {
  readonly #consumer: Consumer;
  #stopping: Promise<void> | undefined;

  constructor(options: BuildQueueConsumerOptions) {
    const visibility = options.visibilityTimeoutSeconds ?? 300;
    const heartbeat = options.heartbeatSeconds ?? Math.max(1, Math.floor(visibility / 3));
    if (heartbeat >= visibility) {
      throw new Error(
        `heartbeatSeconds (${heartbeat}) must be below visibilityTimeoutSeconds (${visibility})`,
      );
    }
    const onError = options.onError;
    // Delays handlers asked for (RetryLater), by message id, until the message is handed back.
    const asked = new Map<string, number>();
    this.#consumer = Consumer.create({
      queueUrl: options.queueUrl,
      sqs: options.sqs,
      batchSize: 1,
      waitTimeSeconds: options.waitTimeSeconds ?? 20,
      visibilityTimeout: visibility,
      heartbeatInterval: heartbeat,
      messageSystemAttributeNames: ['ApproximateReceiveCount', 'MessageGroupId'],
      suppressFifoWarning: true,
      // Without it sqs-consumer emits 'stopped' at once, mid-build; with it, stop() waits (checking each
      // second) until the message in hand is handled and deleted or handed back. A build has no upper bound
      // here: the heartbeat keeps it hidden, and Auto Scaling's lifecycle hook bounds the wait.
      pollingCompleteWaitTimeMs: Number.MAX_SAFE_INTEGER,
      // A failed build comes back after the delay its handler asked for, else after a backoff that grows with
      // its receive count; never after the whole timeout.
      terminateVisibilityTimeout: (messages) => {
        const message = toQueueMessage(messages[0] ?? {});
        const delay = asked.get(message.messageId);
        asked.delete(message.messageId);
        return delay ?? options.retryDelaySeconds(message.receiveCount);
      },
      handleMessage: async (message) => {
        try {
          await options.handleMessage(toQueueMessage(message));
        } catch (err) {
          if (err instanceof RetryLater && message.MessageId)
            asked.set(message.MessageId, err.retryAfterSeconds);
          throw err;
        }
        return message;
      },
    });
    if (onError) {
      const report = (err: Error, m: Message | Message[] | undefined) =>
        onError(err, m && !Array.isArray(m) ? toQueueMessage(m) : undefined);
      this.#consumer.on('error', report);
      this.#consumer.on('processing_error', report);
      this.#consumer.on('timeout_error', report);
    }
  }

  start(): void {
    this.#consumer.start();
  }

  get running(): boolean {
    return this.#consumer.status.isRunning;
  }

  /** Stops polling; resolves when the in-flight message (if any) has been handled. */
  stop(): Promise<void> {
    this.#stopping ??= new Promise<void>((resolve) => {
      if (!this.#consumer.status.isRunning) {
        resolve();
        return;
      }
      this.#consumer.once('stopped', () => resolve());
      this.#consumer.stop();
    });
    return this.#stopping;
  }
}
