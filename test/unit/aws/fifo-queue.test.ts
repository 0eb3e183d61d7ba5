import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DeleteMessageCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';

const URL = 'https://sqs.eu-west-1.amazonaws.com/111111111111/stemcell-build-eu-west-1.fifo';
const client = () =>
  new SQSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

describe('Class: SqsFifoQueue', () => {
  it('sends with the group and deduplication id', async () => {
    // prepare
    const sqs = client();
    const mock = mockClient(sqs);
    mock.on(SendMessageCommand).resolves({ MessageId: 'm1' });
    const queue = new SqsFifoQueue({ queueUrl: URL, client: sqs });
    // act
    const out = await queue.send('{"job":1}', 'web', 'web#00000001/eu-west-1');
    // assess
    assert.equal(queue.name, 'stemcell-build-eu-west-1.fifo');
    assert.deepEqual(out, { messageId: 'm1' });
    assert.deepEqual(mock.commandCalls(SendMessageCommand)[0]?.args[0].input, {
      QueueUrl: URL,
      MessageBody: '{"job":1}',
      MessageGroupId: 'web',
      MessageDeduplicationId: 'web#00000001/eu-west-1',
    });
  });

  it('long-polls for at most 10 messages with receive count and group attributes', async () => {
    // prepare
    const sqs = client();
    const mock = mockClient(sqs);
    mock.on(ReceiveMessageCommand).resolves({
      Messages: [
        {
          MessageId: 'm1',
          Body: 'b',
          ReceiptHandle: 'r1',
          Attributes: { ApproximateReceiveCount: '3', MessageGroupId: 'web' },
        },
      ],
    });
    const queue = new SqsFifoQueue({ queueUrl: URL, client: sqs });
    // act
    const got = await queue.receive({ max: 50, visibilityTimeoutSeconds: 900, waitSeconds: 20 });
    // assess
    assert.deepEqual(mock.commandCalls(ReceiveMessageCommand)[0]?.args[0].input, {
      QueueUrl: URL,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: 900,
      WaitTimeSeconds: 20,
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'MessageGroupId'],
    });
    assert.deepEqual(got, [
      { messageId: 'm1', body: 'b', receiptHandle: 'r1', receiveCount: 3, groupId: 'web' },
    ]);
  });

  it('known by name, asks SQS for its URL once and sends every request there', async () => {
    // prepare: the URL SQS gives (an emulator's, here) is nothing a region and an account would spell
    const given = 'http://127.0.0.1:5000/123456789012/stemcell-build-us-east-1.fifo';
    const sqs = client();
    const mock = mockClient(sqs);
    mock.on(GetQueueUrlCommand).resolves({ QueueUrl: given });
    mock.on(SendMessageCommand).resolves({ MessageId: 'm1' });
    mock.on(ReceiveMessageCommand).resolves({ Messages: [] });
    mock.on(DeleteMessageCommand).resolves({});
    const queue = new SqsFifoQueue({ queueName: 'stemcell-build-us-east-1.fifo', client: sqs });
    // act
    await queue.send('{"job":1}', 'web', 'd1');
    await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    await queue.delete('r1');
    // assess
    assert.equal(queue.name, 'stemcell-build-us-east-1.fifo');
    assert.deepEqual(
      mock.commandCalls(GetQueueUrlCommand).map((c) => c.args[0].input),
      [{ QueueName: 'stemcell-build-us-east-1.fifo' }],
    );
    assert.deepEqual(
      [
        mock.commandCalls(SendMessageCommand)[0]?.args[0].input.QueueUrl,
        mock.commandCalls(ReceiveMessageCommand)[0]?.args[0].input.QueueUrl,
        mock.commandCalls(DeleteMessageCommand)[0]?.args[0].input.QueueUrl,
      ],
      [given, given, given],
    );
  });

  it('names the queue when SQS cannot give its URL, and asks again on the next call', async () => {
    // prepare
    const sqs = client();
    const mock = mockClient(sqs);
    const missing = Object.assign(new Error('The specified queue does not exist.'), {
      name: 'QueueDoesNotExist',
    });
    mock.on(GetQueueUrlCommand).rejectsOnce(missing).resolves({ QueueUrl: URL });
    mock.on(SendMessageCommand).resolves({ MessageId: 'm1' });
    const queue = new SqsFifoQueue({ queueName: 'stemcell-build-eu-west-1.fifo', client: sqs });
    // act + assess
    await assert.rejects(
      queue.send('b', 'web', 'd1'),
      /queue stemcell-build-eu-west-1\.fifo: GetQueueUrl failed: QueueDoesNotExist/,
    );
    assert.deepEqual(await queue.send('b', 'web', 'd1'), { messageId: 'm1' });
    assert.equal(mock.commandCalls(GetQueueUrlCommand).length, 2);
  });

  it('refuses a standard queue URL', () => {
    assert.throws(
      () => new SqsFifoQueue({ queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/plain', client: client() }),
      /not a FIFO queue/,
    );
  });
});
