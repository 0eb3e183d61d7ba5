// FifoQueue on an SQS FIFO queue, known by its URL (a `!Ref` of the queue, from the deployment) or by its name,
// whose URL SQS itself gives (GetQueueUrl, once). Never a URL put together from a region and an account: SDK v3
// sends every request to the host in the QueueUrl, so a guessed URL misses any endpoint but the commercial one
// (emulators, aws-cn, aws-us-gov, FIPS, dual-stack).
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { FifoQueue, QueueMessage } from '#ports';

export type SqsFifoQueueOptions = (
  | { queueUrl: string }
  | {
      queueName: string;
      /** The account that owns the queue. @defaultValue the caller's */
      ownerAccountId?: string;
    }
) & { client?: SQSClient };

export class SqsFifoQueue implements FifoQueue {
  readonly name: string;
  readonly #sqs: SQSClient;
  #url: Promise<string> | undefined;
  readonly #lookup: { QueueName: string; QueueOwnerAWSAccountId?: string } | undefined;

  constructor(options: SqsFifoQueueOptions) {
    this.#sqs = options.client ?? new SQSClient({ retryMode: 'adaptive' });
    if ('queueUrl' in options) {
      this.name = options.queueUrl.slice(options.queueUrl.lastIndexOf('/') + 1);
      this.#url = Promise.resolve(options.queueUrl);
    } else {
      this.name = options.queueName;
      this.#lookup = {
        QueueName: options.queueName,
        ...(options.ownerAccountId ? { QueueOwnerAWSAccountId: options.ownerAccountId } : {}),
      };
    }
    if (!this.name.endsWith('.fifo'))
      throw new Error(
        `queue ${'queueUrl' in options ? options.queueUrl : this.name} is not a FIFO queue (.fifo)`,
      );
  }

  /** The queue's URL as SQS gives it; a failed lookup is tried again on the next call. */
  queueUrl(): Promise<string> {
    if (!this.#url) {
      const lookup = this.#lookup as { QueueName: string };
      this.#url = this.#sqs.send(new GetQueueUrlCommand(lookup)).then(
        (out) => {
          if (!out.QueueUrl) throw new Error(`GetQueueUrl ${lookup.QueueName} returned no QueueUrl`);
          return out.QueueUrl;
        },
        (err: Error) => {
          this.#url = undefined;
          throw new Error(`queue ${lookup.QueueName}: GetQueueUrl failed: ${err.name}: ${err.message}`, {
            cause: err,
          });
        },
      );
    }
    return this.#url;
  }

  async send(body: string, groupId: string, deduplicationId: string): Promise<{ messageId: string }> {
    const out = await this.#sqs.send(
      new SendMessageCommand({
        QueueUrl: await this.queueUrl(),
        MessageBody: body,
        MessageGroupId: groupId,
        MessageDeduplicationId: deduplicationId,
      }),
    );
    if (!out.MessageId) throw new Error(`SendMessage to ${this.name} returned no MessageId`);
    return { messageId: out.MessageId };
  }

  async receive(opts: {
    max: number;
    visibilityTimeoutSeconds: number;
    waitSeconds?: number;
  }): Promise<QueueMessage[]> {
    const out = await this.#sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: await this.queueUrl(),
        MaxNumberOfMessages: Math.max(1, Math.min(10, opts.max)),
        VisibilityTimeout: opts.visibilityTimeoutSeconds,
        WaitTimeSeconds: opts.waitSeconds ?? 0,
        MessageSystemAttributeNames: ['ApproximateReceiveCount', 'MessageGroupId'],
      }),
    );
    return (out.Messages ?? []).map((m) => ({
      messageId: m.MessageId ?? '',
      body: m.Body ?? '',
      receiptHandle: m.ReceiptHandle ?? '',
      receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1'),
      groupId: m.Attributes?.MessageGroupId ?? '',
    }));
  }

  async delete(receiptHandle: string): Promise<void> {
    await this.#sqs.send(
      new DeleteMessageCommand({ QueueUrl: await this.queueUrl(), ReceiptHandle: receiptHandle }),
    );
  }

  async changeVisibility(receiptHandle: string, visibilityTimeoutSeconds: number): Promise<void> {
    await this.#sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: await this.queueUrl(),
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: visibilityTimeoutSeconds,
      }),
    );
  }
}
