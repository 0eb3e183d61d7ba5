// Stateful fake of an SQS FIFO queue: message groups (one in flight per group, in order), deduplication,
// visibility timeout, receive count.
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, fakeId } from './common.ts';

interface FakeMessage {
  id: string;
  body: string;
  groupId: string;
  receiveCount: number;
  visibleAt: number;
  receipt?: string;
}

export class FakeSqsFifo {
  readonly messages: FakeMessage[] = [];
  readonly #dedup = new Set<string>();
  now: () => number;
  /** The account GetQueueUrl answers for when the caller names no owner. */
  account = '111111111111';

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** A client of the queues in `region` (all regions share one message list). */
  client(region = 'eu-west-1'): SQSClient {
    const client = new SQSClient({
      region,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    // Every queue name exists; its URL is the one SQS gives in the client's region (one message list for all).
    mock.on(GetQueueUrlCommand).callsFake((input) => ({
      QueueUrl: `https://sqs.${region}.amazonaws.com/${input.QueueOwnerAWSAccountId ?? this.account}/${input.QueueName}`,
    }));
    mock.on(SendMessageCommand).callsFake((input) => {
      if (!input.MessageGroupId)
        throw awsError('MissingParameter', 'MessageGroupId is required on FIFO queues');
      const dedup = `${input.MessageGroupId}/${input.MessageDeduplicationId}`;
      const id = fakeId('msg');
      if (this.#dedup.has(dedup)) return { MessageId: id };
      this.#dedup.add(dedup);
      this.messages.push({
        id,
        body: input.MessageBody,
        groupId: input.MessageGroupId,
        receiveCount: 0,
        visibleAt: 0,
      });
      return { MessageId: id };
    });
    mock.on(ReceiveMessageCommand).callsFake((input) => {
      const now = this.now();
      const busyGroups = new Set(this.messages.filter((m) => m.visibleAt > now).map((m) => m.groupId));
      const out = [];
      const max = input.MaxNumberOfMessages ?? 1;
      for (const m of this.messages) {
        if (out.length >= max) break;
        // FIFO: a group's messages in order, none while an earlier one of the group is in flight.
        if (busyGroups.has(m.groupId)) continue;
        m.receiveCount++;
        m.visibleAt = now + (input.VisibilityTimeout ?? 30) * 1000;
        m.receipt = fakeId('rh', 24);
        out.push({
          MessageId: m.id,
          Body: m.body,
          ReceiptHandle: m.receipt,
          Attributes: { ApproximateReceiveCount: String(m.receiveCount), MessageGroupId: m.groupId },
        });
      }
      return { Messages: out };
    });
    mock.on(DeleteMessageCommand).callsFake((input) => {
      const i = this.messages.findIndex((m) => m.receipt === input.ReceiptHandle);
      if (i >= 0) this.messages.splice(i, 1);
      return {};
    });
    mock.on(ChangeMessageVisibilityCommand).callsFake((input) => {
      const m = this.messages.find((x) => x.receipt === input.ReceiptHandle);
      if (!m) throw awsError('ReceiptHandleIsInvalid');
      m.visibleAt = this.now() + (input.VisibilityTimeout ?? 0) * 1000;
      return {};
    });
    return client;
  }
}
