// Behavioural contract of FifoQueue (SQS FIFO).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FifoQueue } from '#ports';

export type FifoQueueFactory = () => Promise<{ queue: FifoQueue; cleanup?: () => Promise<void> }>;

export function fifoQueueContract(name: string, factory: FifoQueueFactory): void {
  describe(`Contract: FifoQueue (${name})`, () => {
    it('delivers a group in order, one message in flight per group', async () => {
      const { queue, cleanup } = await factory();
      try {
        // prepare
        await queue.send('a1', 'a', 'd-a1');
        await queue.send('a2', 'a', 'd-a2');
        await queue.send('b1', 'b', 'd-b1');
        // act
        const first = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        const whileBusy = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        const a1 = first.find((m) => m.groupId === 'a');
        assert.ok(a1);
        await queue.delete(a1.receiptHandle);
        const next = await queue.receive({ max: 10, visibilityTimeoutSeconds: 60 });
        // assess
        assert.deepEqual(first.map((m) => m.body).sort(), ['a1', 'b1']);
        assert.deepEqual(whileBusy, []);
        assert.deepEqual(
          next.map((m) => m.body),
          ['a2'],
        );
        assert.equal(a1.receiveCount, 1);
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
