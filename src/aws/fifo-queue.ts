// FifoQueue on an SQS FIFO queue.
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { FifoQueue, QueueMessage } from '#ports';

export class SqsFifoQueue implements FifoQueue {
  readonly name: string;
  readonly queueUrl: string;
  readonly #sqs: SQSClient;

  constructor(options: { queueUrl: string; client?: SQSClient }) {
    this.queueUrl = options.queueUrl;
    this.name = options.queueUrl.slice(options.queueUrl.lastIndexOf('/') + 1);
    if (!this.name.endsWith('.fifo'))
      throw new Error(`queue ${options.queueUrl} is not a FIFO queue (.fifo)`);
    this.#sqs = options.client ?? new SQSClient({ retryMode: 'adaptive' });
  }

  async send(body: string, groupId: string, deduplicationId: string): Promise<{ messageId: string }> {
    const out = await this.#sqs.send(
      new SendMessageCommand({
        QueueUrl: this.queueUrl,
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
        QueueUrl: this.queueUrl,
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
    await this.#sqs.send(new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: receiptHandle }));
  }

  async changeVisibility(receiptHandle: string, visibilityTimeoutSeconds: number): Promise<void> {
    await this.#sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: visibilityTimeoutSeconds,
      }),
    );
  }
}
