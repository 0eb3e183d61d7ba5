import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { BuildQueueConsumer, RetryLater } from '#aws/build-queue-consumer.ts';
import { retryDelaySeconds } from '#builder/message.ts';
import type { QueueMessage } from '#ports';

const URL = 'https://sqs.eu-west-1.amazonaws.com/111111111111/stemcell-build-eu-west-1.fifo';
const message = {
  MessageId: 'm1',
  Body: '{"job":1}',
  ReceiptHandle: 'rh-1',
  Attributes: { ApproximateReceiveCount: '2', MessageGroupId: 'web' },
};

function setup(handle: (m: QueueMessage) => Promise<void>) {
  const sqs = new SQSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const mock = mockClient(sqs);
  mock
    .on(ReceiveMessageCommand)
    .resolvesOnce({ Messages: [message] })
    .resolves({ Messages: [] });
  mock.on(DeleteMessageCommand).resolves({});
  mock.on(ChangeMessageVisibilityCommand).resolves({});
  const { promise: handled, resolve: settle } = Promise.withResolvers<void>();
  const consumer = new BuildQueueConsumer({
    queueUrl: URL,
    sqs,
    waitTimeSeconds: 0,
    visibilityTimeoutSeconds: 120,
    retryDelaySeconds,
    handleMessage: async (m) => {
      try {
        await handle(m);
      } finally {
        setImmediate(settle);
      }
    },
    onError: () => {},
  });
  return { mock, consumer, handled };
}

describe('Class: BuildQueueConsumer', () => {
  it('long-polls one message at a time with receive count and group, and deletes it when handled', async () => {
    // prepare
    const seen: QueueMessage[] = [];
    const { mock, consumer, handled } = setup(async (m) => {
      seen.push(m);
    });
    // act
    consumer.start();
    await handled;
    await consumer.stop();
    // assess
    const receive = mock.commandCalls(ReceiveMessageCommand)[0]?.args[0].input;
    assert.equal(receive?.MaxNumberOfMessages, 1);
    assert.equal(receive?.VisibilityTimeout, 120);
    assert.deepEqual(receive?.MessageSystemAttributeNames, ['ApproximateReceiveCount', 'MessageGroupId']);
    assert.deepEqual(seen, [
      { messageId: 'm1', body: '{"job":1}', receiptHandle: 'rh-1', receiveCount: 2, groupId: 'web' },
    ]);
    assert.equal(mock.commandCalls(DeleteMessageCommand)[0]?.args[0].input.ReceiptHandle, 'rh-1');
    assert.equal(consumer.running, false);
  });

  it('leaves a failed message on the queue, visible again after a backoff by receive count', async () => {
    // prepare
    const { mock, consumer, handled } = setup(async () => {
      throw new Error('apply failed');
    });
    // act
    consumer.start();
    await handled;
    await consumer.stop();
    // assess
    assert.equal(mock.commandCalls(DeleteMessageCommand).length, 0);
    const change = mock.commandCalls(ChangeMessageVisibilityCommand).at(-1)?.args[0].input;
    assert.equal(change?.ReceiptHandle, 'rh-1');
    assert.equal(change?.VisibilityTimeout, retryDelaySeconds(2));
  });

  it('hands a message back after the delay its handler asked for (RetryLater), not the default backoff', async () => {
    // prepare
    const { mock, consumer, handled } = setup(async () => {
      throw new RetryLater(7, new Error('RequestLimitExceeded'));
    });
    // act
    consumer.start();
    await handled;
    await consumer.stop();
    // assess
    assert.equal(mock.commandCalls(DeleteMessageCommand).length, 0);
    assert.equal(
      mock.commandCalls(ChangeMessageVisibilityCommand).at(-1)?.args[0].input.VisibilityTimeout,
      7,
    );
  });

  it('stop() waits for the message in hand to be handled and deleted', async () => {
    // prepare
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    const { promise: inHand, resolve: started } = Promise.withResolvers<void>();
    const { mock, consumer } = setup(async () => {
      started();
      await gate;
    });
    consumer.start();
    await inHand;
    // act
    let stopped = false;
    const stopping = consumer.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const stoppedMidBuild = stopped;
    release();
    await stopping;
    // assess
    assert.equal(stoppedMidBuild, false, 'stop() resolved while the build was still running');
    assert.equal(mock.commandCalls(DeleteMessageCommand)[0]?.args[0].input.ReceiptHandle, 'rh-1');
  });

  it('refuses a heartbeat that is not shorter than the visibility timeout', () => {
    const sqs = new SQSClient({ region: 'eu-west-1' });
    assert.throws(
      () =>
        new BuildQueueConsumer({
          queueUrl: URL,
          sqs,
          visibilityTimeoutSeconds: 30,
          heartbeatSeconds: 30,
          retryDelaySeconds,
          handleMessage: async () => {},
        }),
      /heartbeatSeconds \(30\) must be below visibilityTimeoutSeconds \(30\)/,
    );
  });
});

describe('Function: retryDelaySeconds()', () => {
  it('doubles from 30 s and caps at 15 minutes', () => {
    assert.deepEqual(
      [1, 2, 3, 10].map((n) => retryDelaySeconds(n)),
      [30, 60, 120, 900],
    );
  });

  it('starts from the base it is given (the local fleet runs the same rule at 1 s)', () => {
    assert.deepEqual(
      [1, 2, 3, 11].map((n) => retryDelaySeconds(n, 1)),
      [1, 2, 4, 900],
    );
  });
});
