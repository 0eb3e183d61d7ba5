// Behavioural contract of FifoQueue (SQS FIFO).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FifoQueue } from '#ports';

export type FifoQueueFactory = () => Promise<{ queue: FifoQueue; cleanup?: () => Promise<void> }>;

export function fifoQueueContract(name: string, factory: FifoQueueFactory): void {
  describe(`Contract: FifoQueue (${name})`, () => {
    it('delivers each group in order and nothing of a group while one of its messages is in flight', async () => {
      const { queue, cleanup } = await factory();
      try {
        // prepare
        await queue.send('a1', 'a', 'd-a1');
        await queue.send('a2', 'a', 'd-a2');
        await queue.send('b1', 'b', 'd-b1');
        // act
        const first = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        const whileBusy = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        const groupA = first.filter((m) => m.groupId === 'a');
        for (const m of groupA) await queue.delete(m.receiptHandle);
        const next = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        // assess: SQS may hand out several messages of one group in a batch, but only in order
        assert.deepEqual(
          groupA.map((m) => m.body),
          ['a1', 'a2'].slice(0, groupA.length),
        );
        assert.ok(groupA.length >= 1);
        assert.ok(first.some((m) => m.body === 'b1'));
        assert.deepEqual(whileBusy, []);
        assert.deepEqual(
          next.map((m) => m.body),
          ['a1', 'a2'].slice(groupA.length),
        );
        assert.equal(groupA[0]?.receiveCount, 1);
      } finally {
        await cleanup?.();
      }
    });

    it('drops a duplicate by deduplication id', async () => {
      const { queue, cleanup } = await factory();
      try {
        // act
        await queue.send('job', 'g', 'same');
        await queue.send('job', 'g', 'same');
        const got = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        if (got[0]) await queue.delete(got[0].receiptHandle);
        const again = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        // assess
        assert.equal(got.length, 1);
        assert.deepEqual(again, []);
      } finally {
        await cleanup?.();
      }
    });

    it('redelivers a message whose visibility ran out, counting receives', async () => {
      const { queue, cleanup } = await factory();
      try {
        // prepare
        await queue.send('job', 'g', 'd1');
        const [first] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 60 });
        assert.ok(first);
        // act: the worker gives the message back at once
        await queue.changeVisibility(first.receiptHandle, 0);
        const [second] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 60 });
        // assess
        assert.equal(second?.body, 'job');
        assert.equal(second?.messageId, first.messageId);
        assert.equal(second?.receiveCount, 2);
        assert.equal(second?.groupId, 'g');
      } finally {
        await cleanup?.();
      }
    });
  });
}
