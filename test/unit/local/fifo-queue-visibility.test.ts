// changeVisibility on the local FIFO queue answers like SQS: only a message in flight under the given receipt
// handle can be extended. Once its visibility ran out the message is visible again (another consumer may
// receive it at any moment), so a late heartbeat gets MessageNotInflight instead of hiding a double delivery.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { advancingSleep, ManualClock } from '#local/clock.ts';
import { LocalFifoQueue } from '#local/fifo-queue.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'stemcell-queue-'));
  roots.push(root);
  const clock = new ManualClock();
  const queue = new LocalFifoQueue(root, 'build-eu-west-1.fifo', {
    accountId: '111111111111',
    region: 'eu-west-1',
    clock,
    sleep: advancingSleep(clock),
  });
  return { clock, queue };
}

describe('Class: LocalFifoQueue', () => {
  it('answers MessageNotInflight to changeVisibility once the visibility timeout has expired', async () => {
    // prepare
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd1');
    const [m] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.ok(m);
    clock.advance(30_000);
    // act: a heartbeat arriving after the timeout, before anyone received the message again
    const late = queue.changeVisibility(m.receiptHandle, 60);
    // assess
    await assert.rejects(late, { name: 'MessageNotInflight' });
    const [again] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.equal(again?.messageId, m.messageId, 'the message stayed visible: the late heartbeat hid nothing');
    assert.equal(again?.receiveCount, 2);
  });

  it('extends a message still in flight, up to the last millisecond of its timeout', async () => {
    // prepare
    const { queue, clock } = setup();
    await queue.send('job', 'g', 'd1');
    const [m] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    assert.ok(m);
    clock.advance(29_999);
    // act
    await queue.changeVisibility(m.receiptHandle, 60);
    clock.advance(59_999);
    const hidden = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    clock.advance(1);
    const [visible] = await queue.receive({ max: 1, visibilityTimeoutSeconds: 30 });
    // assess
    assert.deepEqual(hidden, []);
    assert.equal(visible?.messageId, m.messageId);
  });
});
