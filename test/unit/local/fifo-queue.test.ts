import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqsSchema } from '#events/aws.ts';
import { advancingSleep, ManualClock, type Sleep } from '#local/clock.ts';
import { LocalFifoQueue, type LocalFifoQueueOptions, toLambdaSqsEvent } from '#local/fifo-queue.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-queue-'));
  roots.push(r);
  return r;
}

function setup(options: Partial<LocalFifoQueueOptions> & { clock?: ManualClock } = {}, root = tempRoot()) {
  const clock = options.clock ?? new ManualClock();
  const queue = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
    accountId: '111111111111',
    region: 'eu-west-1',
    clock,
    sleep: advancingSleep(clock),
    ...options,
  });
  return { clock, queue, root };
}

const once = { max: 10, visibilityTimeoutSeconds: 30 };

describe('Class: LocalFifoQueue', () => {
  it('delivers each group in send order and blocks a group while one of its messages is in flight', async () => {
    // prepare
    const { queue } = setup();
    await queue.send('a1', 'a', 'a1');
    await queue.send('b1', 'b', 'b1');
    await queue.send('a2', 'a', 'a2');
    // act
    const first = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    const second = await queue.receive({ max: 10, visibilityTimeoutSeconds: 30 });
    const third = await queue.receive(once);
    // assess
    assert.deepEqual(
      first.map((m) => m.body),
      ['a1'],
    );
    assert.deepEqual(
      second.map((m) => m.body),
      ['b1'],
      'a2 waits while a1 is in flight',
    );
    assert.deepEqual(third, []);
    await queue.delete(first[0]!.receiptHandle);
    assert.deepEqual(
      (await queue.receive(once)).map((m) => m.body),
      ['a2'],
    );
  });

  it('may return several messages of one group in one batch, in order, as SQS does', async () => {
    const { queue } = setup();
    for (const body of ['1', '2', '3']) await queue.send(body, 'g', body);
    assert.deepEqual(
      (await queue.receive(once)).map((m) => m.body),
      ['1', '2', '3'],
    );
  });

  it('redelivers a message after its visibility timeout, counting receives', async () => {
    // prepare
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd1');
    const [first] = await queue.receive(once);
    // act
    clock.advance(29_000);
    const early = await queue.receive(once);
    clock.advance(1_000);
    const [again] = await queue.receive(once);
    // assess
    assert.equal(first?.receiveCount, 1);
    assert.deepEqual(early, []);
    assert.equal(again?.messageId, first?.messageId);
    assert.equal(again?.receiveCount, 2);
    assert.notEqual(again?.receiptHandle, first?.receiptHandle);
  });

  it('ignores a delete with a stale receipt handle and deletes with the latest', async () => {
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd1');
    const [first] = await queue.receive(once);
    clock.advance(30_000);
    const [second] = await queue.receive(once);
    await queue.delete(first!.receiptHandle);
    assert.equal(queue.stats().inFlight, 1, 'stale handle deleted nothing');
    await queue.delete(second!.receiptHandle);
    assert.deepEqual(queue.stats(), { visible: 0, inFlight: 0 });
    await assert.rejects(queue.delete('garbage'), { name: 'ReceiptHandleIsInvalid' });
  });

  it('extends or ends the visibility timeout with changeVisibility', async () => {
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd1');
    const [m] = await queue.receive(once);
    await queue.changeVisibility(m!.receiptHandle, 120);
    clock.advance(60_000);
    assert.deepEqual(await queue.receive(once), []);
    await queue.changeVisibility(m!.receiptHandle, 0);
    const [again] = await queue.receive(once);
    assert.equal(again?.receiveCount, 2);
    await assert.rejects(queue.changeVisibility(m!.receiptHandle, 10), { name: 'MessageNotInflight' });
  });

  it('drops a duplicate deduplication id within 5 minutes and accepts it after', async () => {
    // prepare
    const { queue, clock } = setup();
    const { messageId } = await queue.send('job', 'g', 'release-1/eu-west-1');
    // act
    clock.advance(4 * 60_000);
    const duplicate = await queue.send('job again', 'g', 'release-1/eu-west-1');
    const withinWindow = queue.peek().length;
    clock.advance(60_000);
    await queue.send('job later', 'g', 'release-1/eu-west-1');
    // assess
    assert.equal(duplicate.messageId, messageId);
    assert.equal(withinWindow, 1);
    assert.deepEqual(
      queue.peek().map((m) => m.body),
      ['job', 'job later'],
    );
  });

  it('keeps deduplicating after the first message was deleted', async () => {
    const { queue } = setup();
    await queue.send('job', 'g', 'd');
    const [m] = await queue.receive(once);
    await queue.delete(m!.receiptHandle);
    await queue.send('job', 'g', 'd');
    assert.deepEqual(await queue.receive(once), []);
  });

  it('moves a message to the DLQ after maxReceiveCount receives, unblocking its group', async () => {
    // prepare
    const root = tempRoot();
    const clock = new ManualClock();
    const dlq = new LocalFifoQueue(root, 'build-eu-west-1-dlq.fifo', {
      accountId: '111111111111',
      region: 'eu-west-1',
      clock,
    });
    const { queue } = setup({ clock, deadLetterQueue: dlq, maxReceiveCount: 2 }, root);
    await queue.send('poison', 'g', 'p');
    await queue.send('next', 'g', 'n');
    // act
    const counts: number[] = [];
    for (let i = 0; i < 2; i++) {
      const [m] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
      counts.push(m!.receiveCount);
      clock.advance(10_000);
    }
    const [afterRedrive] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
    // assess
    assert.deepEqual(counts, [1, 2]);
    assert.equal(afterRedrive?.body, 'next');
    const dead = dlq.peek();
    assert.equal(dead.length, 1);
    assert.equal(dead[0]?.body, 'poison');
    assert.equal(dead[0]?.deadLetterQueueSourceArn, queue.arn);
  });

  it('long polling returns as soon as a message arrives', async () => {
    // prepare: a sleep that never ends by itself, so only the arrival can end the wait
    const clock = new ManualClock();
    const waitUntilWoken: Sleep = (_ms, signal) =>
      new Promise((resolve) => signal?.addEventListener('abort', () => resolve()));
    const { queue } = setup({ clock, sleep: waitUntilWoken });
    // act
    const pending = queue.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    await queue.send('arrived', 'g', 'd');
    const got = await pending;
    // assess
    assert.deepEqual(
      got.map((m) => m.body),
      ['arrived'],
    );
  });

  it('long polling gives up after waitSeconds and picks up messages whose visibility expires meanwhile', async () => {
    const { queue, clock } = setup();
    assert.deepEqual(await queue.receive({ ...once, waitSeconds: 20 }), []);
    await queue.send('job', 'g', 'd');
    await queue.receive({ max: 1, visibilityTimeoutSeconds: 5 });
    const start = clock.now().getTime();
    const [again] = await queue.receive({ ...once, waitSeconds: 20 });
    assert.equal(again?.receiveCount, 2);
    assert.equal(clock.now().getTime() - start, 5_000);
  });

  it('keeps messages and deduplication across instances over the same root', async () => {
    const { queue, root, clock } = setup();
    await queue.send('job', 'g', 'd');
    const reopened = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
      accountId: '111111111111',
      region: 'eu-west-1',
      clock,
    });
    await reopened.send('job', 'g', 'd');
    assert.deepEqual(
      (await reopened.receive(once)).map((m) => m.body),
      ['job'],
    );
  });

  it('validates names and parameters like SQS', async () => {
    assert.throws(
      () => new LocalFifoQueue(tempRoot(), 'standard', { accountId: '111111111111', region: 'eu-west-1' }),
      { name: 'InvalidParameterValue' },
    );
    const { queue } = setup();
    await assert.rejects(queue.receive({ max: 11, visibilityTimeoutSeconds: 1 }), /MaxNumberOfMessages/);
    await assert.rejects(queue.send('x', '', 'd'), /MessageGroupId/);
  });
});

describe('Function: toLambdaSqsEvent()', () => {
  it('builds the event a Lambda SQS event-source mapping delivers, accepted by Powertools SqsSchema', async () => {
    // prepare
    const { queue } = setup();
    await queue.send('{"version":1}', 'web-base', 'web-base#1/eu-west-1');
    const messages = await queue.receive(once);
    // act
    const event = toLambdaSqsEvent(queue, messages);
    // assess
    const parsed = SqsSchema.parse(event);
    const [record] = parsed.Records;
    assert.ok(record);
    assert.equal(record.attributes.ApproximateReceiveCount, '1');
    assert.equal(record.attributes.MessageGroupId, 'web-base');
    assert.equal(record.attributes.MessageDeduplicationId, 'web-base#1/eu-west-1');
    assert.equal(record.attributes.SentTimestamp, String(new ManualClock().now().getTime()));
    assert.equal(record.eventSourceARN, 'arn:aws:sqs:eu-west-1:111111111111:build-eu-west-1.fifo');
    assert.equal(record.md5OfBody, createHash('md5').update('{"version":1}').digest('hex'));
    assert.equal(record.receiptHandle, messages[0]?.receiptHandle);
  });
});
