// The local FIFO queue held to what SQS documents for FIFO queues: the queue name rule (1-80 characters of
// alphanumerics, hyphens and underscores, ending in .fifo), the parameter ranges of SendMessage, ReceiveMessage
// and ChangeMessageVisibility, ReceiptHandleIsInvalid for a handle of another queue, the retention period, the
// sequence number, and what the Lambda event carries. Written from the mutants StrykerJS left alive in
// src/local/fifo-queue.ts (bench/mutation/groups.ts, group local-queues).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { advancingSleep, ManualClock, type Sleep } from '#local/clock.ts';
import { LocalFifoQueue, type LocalFifoQueueOptions, toLambdaSqsEvent } from '#local/fifo-queue.ts';

const ACCOUNT = '111111111111';
const REGION = 'eu-west-1';
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-queue-sqs-'));
  roots.push(r);
  return r;
}

function setup(
  options: Partial<LocalFifoQueueOptions> = {},
  root = tempRoot(),
  name = 'build-eu-west-1.fifo',
) {
  const clock = (options.clock as ManualClock | undefined) ?? new ManualClock();
  const queue = new LocalFifoQueue(root, name, {
    accountId: ACCOUNT,
    region: REGION,
    clock,
    sleep: advancingSleep(clock),
    ...options,
  });
  return { clock, queue, root };
}

/**
 * A source queue with a dead-letter queue after one receive (maxReceiveCount 1), holding one message whose
 * visibility has just run out: the next receive of the source redrives it.
 */
async function poisoned(dlqOptions: Partial<LocalFifoQueueOptions> = {}) {
  const root = tempRoot();
  const clock = new ManualClock();
  const { queue: dlq } = setup({ clock, ...dlqOptions }, root, 'build-dlq.fifo');
  const { queue } = setup({ clock, deadLetterQueue: dlq, maxReceiveCount: 1 }, root);
  await queue.send('poison', 'g', 'p');
  await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
  clock.advance(10_000);
  return { root, clock, dlq, queue };
}

/** A sleep that never ends by itself: only a wake-up (an arrival, a release) ends a long poll. */
const untilWoken: Sleep = (_ms, signal) =>
  new Promise((resolve) => signal?.addEventListener('abort', () => resolve()));

/**
 * Runs `act` while `poll` waits, and returns what the poll got. Fails (instead of hanging) when the poll is still
 * waiting once `act` and the callbacks it caused have run: the change did not wake it.
 */
async function wokenBy<T>(poll: Promise<T>, act: () => unknown): Promise<T> {
  let got: { value: T } | undefined;
  void poll.then((value) => {
    got = { value };
  });
  await act();
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(got, 'the long poll ended on the change, without waiting out its time');
  return got.value;
}

function handleFor(queueArn: string, messageId: unknown, nonce: unknown): string {
  return Buffer.from(JSON.stringify({ q: queueArn, m: messageId, n: nonce })).toString('base64url');
}

const isRoot = process.getuid?.() === 0;
/** Makes a folder refuse new files (the immutable attribute), so the next state write fails; root only. */
function freeze(dir: string): () => void {
  execFileSync('chattr', ['+i', dir]);
  return () => execFileSync('chattr', ['-i', dir]);
}

describe('Class: LocalFifoQueue (SQS rules)', () => {
  it('takes a FIFO queue name of 1-80 characters of [A-Za-z0-9_-] ending in .fifo, and refuses others', () => {
    // prepare
    const longest = `${'q'.repeat(75)}.fifo`;
    const refused = [
      `${'q'.repeat(76)}.fifo`,
      '.fifo',
      'bad name.fifo',
      'dotted.name.fifo',
      'build.fifo.bak',
      'build',
      'build-fifo',
    ];
    // act
    const { queue } = setup({}, tempRoot(), longest);
    // assess
    assert.equal(queue.name, longest);
    for (const name of refused) {
      assert.throws(
        () => new LocalFifoQueue(tempRoot(), name, { accountId: ACCOUNT, region: REGION }),
        (err: Error) => err.name === 'InvalidParameterValue' && err.message.includes(JSON.stringify(name)),
        name,
      );
    }
  });

  it('builds the queue ARN and URL as SQS names them', () => {
    const { queue } = setup();
    assert.equal(queue.arn, 'arn:aws:sqs:eu-west-1:111111111111:build-eu-west-1.fifo');
    assert.equal(queue.url, 'https://sqs.eu-west-1.amazonaws.com/111111111111/build-eu-west-1.fifo');
    assert.equal(queue.accountId, ACCOUNT);
    assert.equal(queue.region, REGION);
  });

  it('refuses a dead-letter queue without maxReceiveCount, naming the queue', () => {
    const root = tempRoot();
    const { queue: dlq } = setup({}, root, 'dlq.fifo');
    assert.throws(
      () =>
        new LocalFifoQueue(root, 'build.fifo', { accountId: ACCOUNT, region: REGION, deadLetterQueue: dlq }),
      /queue build\.fifo: a dead-letter queue needs maxReceiveCount/,
    );
  });

  it('takes group and deduplication ids of 1-128 printable ASCII characters without spaces', async () => {
    // prepare
    const { queue } = setup();
    const longest = `!~${'x'.repeat(126)}`;
    // act
    await queue.send('job', longest, longest);
    // assess
    assert.equal(queue.peek()[0]?.groupId, longest);
    assert.equal(queue.peek()[0]?.deduplicationId, longest);
    for (const bad of ['', ' ', 'a b', 'x'.repeat(129), 'del\x7f', 'caf\u00e9']) {
      await assert.rejects(queue.send('job', bad, 'd'), {
        name: 'InvalidParameterValue',
        message: `MessageGroupId ${JSON.stringify(bad)} must be 1-128 printable ASCII characters without spaces`,
      });
      await assert.rejects(queue.send('job', 'g', bad), { name: 'InvalidParameterValue' });
    }
    await assert.rejects(queue.send('job', 'g', 'a b'), /^InvalidParameterValue: MessageDeduplicationId/);
    await assert.rejects(queue.send('', 'g', 'd2'), {
      name: 'InvalidParameterValue',
      message: 'message body must not be empty',
    });
    assert.equal(queue.peek().length, 1, 'nothing refused was stored');
  });

  it('answers a duplicate within the window with the first message id and stores nothing', async () => {
    const { queue } = setup();
    const first = await queue.send('job', 'g', 'd');
    const again = await queue.send('other body', 'other-group', 'd');
    assert.equal(again.messageId, first.messageId);
    assert.deepEqual(
      queue.peek().map((m) => [m.body, m.groupId]),
      [['job', 'g']],
    );
  });

  it('checks MaxNumberOfMessages (1-10), VisibilityTimeout (0-43200 s) and WaitTimeSeconds (0-20)', async () => {
    // prepare
    const { queue } = setup();
    await queue.send('job', 'g', 'd');
    const bad: [Parameters<LocalFifoQueue['receive']>[0], RegExp][] = [
      [{ max: 0, visibilityTimeoutSeconds: 30 }, /^MaxNumberOfMessages 0 is not in 1\.\.10$/],
      [{ max: 11, visibilityTimeoutSeconds: 30 }, /^MaxNumberOfMessages 11 is not in 1\.\.10$/],
      [{ max: 1.5, visibilityTimeoutSeconds: 30 }, /^MaxNumberOfMessages 1\.5/],
      [{ max: 1, visibilityTimeoutSeconds: -1 }, /^VisibilityTimeout -1 is not in 0\.\.43200$/],
      [{ max: 1, visibilityTimeoutSeconds: 43_201 }, /^VisibilityTimeout 43201/],
      [{ max: 1, visibilityTimeoutSeconds: 0.5 }, /^VisibilityTimeout 0\.5/],
      [{ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: -1 }, /^WaitTimeSeconds -1 is not in 0\.\.20$/],
      [{ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 21 }, /^WaitTimeSeconds 21/],
    ];
    // act + assess
    for (const [opts, message] of bad) {
      await assert.rejects(
        queue.receive(opts),
        { name: 'InvalidParameterValue', message },
        JSON.stringify(opts),
      );
    }
    assert.equal(queue.stats().inFlight, 0, 'a refused receive took nothing');
    const [m] = await queue.receive({ max: 10, visibilityTimeoutSeconds: 43_200, waitSeconds: 20 });
    assert.ok(m, 'the bounds themselves are accepted');
    await assert.rejects(queue.changeVisibility(m.receiptHandle, 43_201), { name: 'InvalidParameterValue' });
    await assert.rejects(queue.changeVisibility(m.receiptHandle, -1), { name: 'InvalidParameterValue' });
    await queue.changeVisibility(m.receiptHandle, 0);
    assert.equal(queue.stats().visible, 1);
  });

  it('hands out at most max messages per receive', async () => {
    const { queue } = setup();
    for (const g of ['a', 'b', 'c']) await queue.send(g, g, g);
    const two = await queue.receive({ max: 2, visibilityTimeoutSeconds: 30 });
    assert.deepEqual(
      two.map((m) => m.body),
      ['a', 'b'],
    );
    assert.deepEqual(queue.stats(), { visible: 1, inFlight: 2 });
  });

  it('refuses a receipt handle of another queue, or one that is not a handle, with ReceiptHandleIsInvalid', async () => {
    // prepare
    const root = tempRoot();
    const { queue, clock } = setup({}, root);
    const { queue: other } = setup({ clock }, root, 'other.fifo');
    await queue.send('job', 'g', 'd');
    await other.send('job', 'g', 'd');
    const [mine] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    const [theirs] = await other.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.ok(mine && theirs);
    const forged = [
      theirs.receiptHandle,
      handleFor(queue.arn, 7, 'n'),
      handleFor(queue.arn, mine.messageId, 7),
      Buffer.from('not json').toString('base64url'),
    ];
    // act + assess
    for (const handle of forged) {
      await assert.rejects(queue.delete(handle), {
        name: 'ReceiptHandleIsInvalid',
        message: `receipt handle ${JSON.stringify(handle.slice(0, 40))}… is not valid for queue ${queue.arn}`,
      });
      await assert.rejects(queue.changeVisibility(handle, 60), { name: 'ReceiptHandleIsInvalid' });
    }
    assert.deepEqual(queue.stats(), { visible: 0, inFlight: 1 }, 'nothing was deleted or released');
    await queue.delete(mine.receiptHandle);
    assert.deepEqual(queue.stats(), { visible: 0, inFlight: 0 });
    await assert.rejects(queue.changeVisibility(mine.receiptHandle, 60), {
      name: 'MessageNotInflight',
      message: new RegExp(`^queue build-eu-west-1\\.fifo: message ${mine.messageId} is not in flight`),
    });
  });

  it('answers MessageNotInflight to a handle the message was received again under since', async () => {
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd');
    const [first] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
    clock.advance(10_000);
    const [second] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
    assert.ok(first && second);
    await assert.rejects(queue.changeVisibility(first.receiptHandle, 60), { name: 'MessageNotInflight' });
    await queue.changeVisibility(second.receiptHandle, 60);
    clock.advance(59_999);
    assert.deepEqual(await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 }), []);
  });

  it('numbers messages in send order with 20-digit sequence numbers that survive a restart', async () => {
    // prepare
    const { queue, root, clock } = setup();
    await queue.send('1', 'a', '1');
    await queue.send('2', 'b', '2');
    // act
    const reopened = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
      accountId: ACCOUNT,
      region: REGION,
      clock,
    });
    await reopened.send('3', 'a', '3');
    // assess
    assert.deepEqual(
      reopened.peek().map((m) => m.sequenceNumber),
      ['00000000000000000001', '00000000000000000002', '00000000000000000003'],
    );
  });

  it('keeps the first receive time and the send time across redeliveries', async () => {
    const { queue, clock } = setup();
    const sentAt = clock.now().getTime();
    await queue.send('job', 'g', 'd');
    assert.equal(queue.peek()[0]?.firstReceiveTimestamp, 0, 'never received');
    assert.equal(queue.peek()[0]?.receiveCount, 0);
    assert.equal(queue.peek()[0]?.receiptHandle, '', 'peek hands out no receipt handle');
    clock.advance(1_000);
    const [first] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 5 });
    clock.advance(5_000);
    const [second] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 5 });
    assert.equal(first?.firstReceiveTimestamp, sentAt + 1_000);
    assert.equal(second?.firstReceiveTimestamp, sentAt + 1_000);
    assert.equal(second?.sentTimestamp, sentAt);
    assert.equal(second?.receiveCount, 2);
  });

  it('drops messages once they are older than the retention period (4 days unless set)', async () => {
    // prepare
    const fourDays = 4 * 24 * 3600 * 1000;
    const { queue, clock, root } = setup();
    const { queue: short } = setup({ clock, retentionSeconds: 60 }, tempRoot());
    await queue.send('old', 'g', 'd');
    await short.send('old', 'g', 'd');
    // act + assess: receiving with a zero visibility timeout leaves the message visible
    clock.advance(60_000 - 1);
    assert.equal((await short.receive({ max: 1, visibilityTimeoutSeconds: 0 })).length, 1);
    clock.advance(1);
    assert.deepEqual(await short.receive({ max: 1, visibilityTimeoutSeconds: 0 }), []);
    assert.equal(short.peek().length, 0);
    clock.advance(fourDays - 60_000 - 1);
    assert.equal((await queue.receive({ max: 1, visibilityTimeoutSeconds: 0 })).length, 1);
    clock.advance(1);
    assert.deepEqual(await queue.receive({ max: 1, visibilityTimeoutSeconds: 0 }), []);
    const reopened = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
      accountId: ACCOUNT,
      region: REGION,
      clock,
    });
    assert.equal(reopened.peek().length, 0, 'the drop was written');
  });

  it('counts visible and in-flight messages like ApproximateNumberOfMessages(NotVisible)', async () => {
    const { queue, clock } = setup();
    for (const g of ['a', 'b', 'c']) await queue.send(g, g, g);
    await queue.receive({ max: 2, visibilityTimeoutSeconds: 10 });
    assert.deepEqual(queue.stats(), { visible: 1, inFlight: 2 });
    clock.advance(10_000);
    assert.deepEqual(queue.stats(), { visible: 3, inFlight: 0 });
  });

  it('purges every message, for good', async () => {
    const { queue, root, clock } = setup();
    await queue.send('a', 'g', 'a');
    await queue.send('b', 'g', 'b');
    queue.purge();
    assert.deepEqual(queue.peek(), []);
    const reopened = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
      accountId: ACCOUNT,
      region: REGION,
      clock,
    });
    assert.deepEqual(reopened.peek(), []);
  });
});

describe('Class: LocalFifoQueue (long polling wake-ups)', () => {
  it('a delete that unblocks a group ends a long poll waiting for it', async () => {
    // prepare
    const clock = new ManualClock();
    const { queue } = setup({ clock, sleep: untilWoken });
    await queue.send('first', 'g', '1');
    await queue.send('second', 'g', '2');
    const [first] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.ok(first);
    const pending = queue.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    // act
    const got = await wokenBy(pending, () => queue.delete(first.receiptHandle));
    // assess
    assert.deepEqual(
      got.map((m) => m.body),
      ['second'],
    );
  });

  it('a visibility set to 0 ends a long poll waiting for the message', async () => {
    const clock = new ManualClock();
    const { queue } = setup({ clock, sleep: untilWoken });
    await queue.send('job', 'g', '1');
    const [m] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.ok(m);
    const pending = queue.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    const [again] = await wokenBy(pending, () => queue.changeVisibility(m.receiptHandle, 0));
    assert.equal(again?.messageId, m.messageId);
    assert.equal(again?.receiveCount, 2);
  });

  it('releaseInFlight() makes held messages visible at once, keeps their receive count and voids old handles', async () => {
    // prepare
    const clock = new ManualClock();
    const { queue } = setup({ clock, sleep: untilWoken });
    await queue.send('held', 'g', '1');
    await queue.send('free', 'h', '2');
    const [held] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 300 });
    assert.ok(held);
    const pending = queue.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    const [free] = await pending;
    assert.equal(free?.body, 'free');
    const waiting = queue.receive({ max: 10, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    // act
    let released = 0;
    const again = await wokenBy(waiting, () => {
      released = queue.releaseInFlight();
    });
    // assess
    assert.equal(released, 2);
    assert.deepEqual(
      again.map((m) => [m.body, m.receiveCount]),
      [
        ['held', 2],
        ['free', 2],
      ],
    );
    await queue.delete(held.receiptHandle);
    assert.equal(queue.stats().inFlight, 2, 'a handle from before the release deletes nothing');
    assert.equal(queue.releaseInFlight(), 2);
    for (const m of queue.peek()) assert.equal(m.receiveCount, 2);
    assert.equal(queue.releaseInFlight(), 0, 'nothing left in flight');
  });

  it('a redrive ends a long poll on the dead-letter queue, which receives the message at once', async () => {
    // prepare
    const { dlq, queue } = await poisoned({ sleep: untilWoken });
    const waiting = dlq.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
    // act
    let fromSource: unknown[] = [];
    const [dead] = await wokenBy(waiting, async () => {
      fromSource = await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 });
    });
    // assess
    assert.deepEqual(fromSource, []);
    assert.equal(dead?.body, 'poison');
    assert.equal(dead?.deadLetterQueueSourceArn, queue.arn);
    assert.equal(dead?.sequenceNumber, '00000000000000000001', 'numbered by the dead-letter queue');
    const [record] = toLambdaSqsEvent(dlq, [dead!]).Records;
    assert.equal(record?.attributes.DeadLetterQueueSourceArn, queue.arn);
    assert.equal(record?.eventSourceARN, dlq.arn);
    assert.equal(queue.peek().length, 0);
  });

  it('without a dead-letter queue, redelivers however often a message is received', async () => {
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd');
    let last = 0;
    for (let i = 0; i < 12; i++) {
      const [m] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 1 });
      last = m?.receiveCount ?? -1;
      clock.advance(1_000);
    }
    assert.equal(last, 12);
  });
});

describe('Class: LocalFifoQueue (failed writes)', () => {
  it('a send whose state cannot be written fails and leaves nothing behind', async (t) => {
    if (!isRoot) return t.skip('needs root: chattr +i');
    // prepare
    const { queue, root, clock } = setup();
    await queue.send('kept', 'g', 'kept');
    const dir = join(root, 'queues', ACCOUNT, REGION);
    const thaw = freeze(dir);
    try {
      // act
      await assert.rejects(queue.send('lost', 'g', 'lost'));
      await assert.rejects(queue.receive({ max: 1, visibilityTimeoutSeconds: 30 }));
    } finally {
      thaw();
    }
    // assess: memory went back to what is on disk, so the refused send is not deduplicated later
    assert.deepEqual(
      queue.peek().map((m) => [m.body, m.receiveCount]),
      [['kept', 0]],
    );
    await queue.send('lost', 'g', 'lost');
    const reopened = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
      accountId: ACCOUNT,
      region: REGION,
      clock,
    });
    assert.deepEqual(
      reopened.peek().map((m) => m.body),
      ['kept', 'lost'],
    );
  });

  it('a redrive the dead-letter queue cannot store fails the receive and keeps the message in its queue', async (t) => {
    if (!isRoot) return t.skip('needs root: chattr +i');
    // prepare
    const { root, dlq, queue } = await poisoned();
    const thaw = freeze(join(root, 'queues', ACCOUNT, REGION));
    try {
      // act
      await assert.rejects(queue.receive({ max: 1, visibilityTimeoutSeconds: 10 }));
    } finally {
      thaw();
    }
    // assess: in neither queue twice, in the source still; the next receive redrives it
    assert.deepEqual(
      queue.peek().map((m) => m.body),
      ['poison'],
    );
    assert.deepEqual(dlq.peek(), []);
    assert.deepEqual(await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 }), []);
    assert.deepEqual(
      dlq.peek().map((m) => m.body),
      ['poison'],
    );
    assert.deepEqual(queue.peek(), []);
  });
});

describe('Function: toLambdaSqsEvent()', () => {
  it('carries every SQS system attribute Lambda delivers, and no dead-letter source for a first-hand message', async () => {
    // prepare
    const { queue, clock } = setup();
    const sentAt = clock.now().getTime();
    await queue.send('body', 'grp', 'dedup');
    clock.advance(2_000);
    const messages = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    // act
    const { Records } = toLambdaSqsEvent(queue, messages);
    // assess
    assert.equal(Records.length, 1);
    const [r] = Records;
    assert.deepEqual(r?.attributes, {
      ApproximateReceiveCount: '1',
      ApproximateFirstReceiveTimestamp: String(sentAt + 2_000),
      MessageDeduplicationId: 'dedup',
      MessageGroupId: 'grp',
      SenderId: ACCOUNT,
      SentTimestamp: String(sentAt),
      SequenceNumber: '00000000000000000001',
    });
    assert.equal(r?.messageId, messages[0]?.messageId);
    assert.equal(r?.body, 'body');
    assert.deepEqual(r?.messageAttributes, {});
    assert.equal(r?.eventSource, 'aws:sqs');
    assert.equal(r?.awsRegion, REGION);
  });
});

describe('Class: LocalFifoQueue, what a restarted process reads back', () => {
  it('keeps a delete, a changed visibility and a release across a reopen of the queue', async () => {
    // prepare: three messages in three groups, all received
    const { clock, queue, root } = setup();
    const reopen = () => setup({ clock }, root).queue;
    for (const g of ['a', 'b', 'c']) await queue.send(`job-${g}`, g, `d-${g}`);
    const [a, b] = await queue.receive({ max: 3, visibilityTimeoutSeconds: 30 });
    // act + assess: each change is on disk before the next one writes the state again
    await queue.delete(a?.receiptHandle ?? '');
    assert.deepEqual(
      reopen()
        .peek()
        .map((m) => m.body),
      ['job-b', 'job-c'],
    );
    await queue.changeVisibility(b?.receiptHandle ?? '', 600);
    clock.advance(60_000);
    const reopened = reopen();
    assert.deepEqual(reopened.stats(), { visible: 1, inFlight: 1 }, 'b stays hidden past its first 30 s');
    assert.equal(reopened.releaseInFlight(), 1);
    assert.deepEqual(reopen().stats(), { visible: 2, inFlight: 0 });
  });
});

describe('Class: LocalFifoQueue (handles of messages that are not first in the queue)', () => {
  it('deletes and changes the visibility of the message its handle names, wherever it lies', async () => {
    // prepare: three groups, so all three are in flight at once
    const { queue } = setup();
    for (const g of ['a', 'b', 'c']) await queue.send(`job-${g}`, g, g);
    const taken = await queue.receive({ max: 3, visibilityTimeoutSeconds: 30 });
    assert.equal(taken.length, 3);
    const [, second, third] = taken;
    // act
    await queue.delete(third!.receiptHandle);
    await queue.changeVisibility(second!.receiptHandle, 0);
    // assess: the third is gone, the second is visible again, the first still in flight
    assert.deepEqual(
      queue.peek().map((m) => m.body),
      ['job-a', 'job-b'],
    );
    assert.deepEqual(queue.stats(), { visible: 1, inFlight: 1 });
  });

  it('counts a message visible again at the very millisecond its visibility timeout ends, in stats and releaseInFlight as in receive', async () => {
    // prepare
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd');
    await queue.receive({ max: 1, visibilityTimeoutSeconds: 5 });
    clock.advance(4_999);
    assert.deepEqual(queue.stats(), { visible: 0, inFlight: 1 });
    // act
    clock.advance(1);
    // assess: stats, a restart's release and receive agree that it is visible
    assert.deepEqual(queue.stats(), { visible: 1, inFlight: 0 });
    assert.equal(queue.releaseInFlight(), 0, 'nothing in flight to release');
    assert.equal((await queue.receive({ max: 1, visibilityTimeoutSeconds: 5 })).length, 1);
  });

  it('a long poll takes a message whose visibility ends while it looks, not at its deadline', async () => {
    // A clock that moves 1 ms each time it is read, started a few ms before the visibility ends: at one of the
    // starts the end falls between two reads of one pass of the poll.
    for (let early = 1; early <= 8; early++) {
      // prepare
      const clock = new ManualClock();
      const { queue, root } = setup({ clock });
      await queue.send('job', 'g', 'd');
      await queue.receive({ max: 1, visibilityTimeoutSeconds: 1 });
      clock.advance(1_000 - early);
      const ticking = {
        now: () => {
          clock.advance(1);
          return clock.now();
        },
      };
      const polling = new LocalFifoQueue(root, queue.name, {
        accountId: ACCOUNT,
        region: REGION,
        clock: ticking,
        sleep: advancingSleep(clock),
      });
      const start = clock.now().getTime();
      // act
      const [got] = await polling.receive({ max: 1, visibilityTimeoutSeconds: 30, waitSeconds: 20 });
      // assess
      const took = clock.now().getTime() - start;
      assert.equal(got?.body, 'job');
      assert.ok(took < 1_000, `${early} ms before the end: took ${took} ms of a 20 s poll`);
    }
  });

  it('a redrive to the dead-letter queue is on disk in the source queue too: a reopened source does not hold it', async () => {
    // prepare
    const { root, clock, dlq, queue } = await poisoned();
    // act: the receive that redrives it, and takes nothing else
    assert.deepEqual(await queue.receive({ max: 1, visibilityTimeoutSeconds: 10 }), []);
    // assess: a second instance over the same files, as a restarted stack opens it
    const { queue: reopened } = setup({ clock }, root);
    assert.deepEqual(reopened.peek(), []);
    assert.deepEqual(
      dlq.peek().map((m) => m.body),
      ['poison'],
    );
  });
});
