// The local bus is durable like EventBridge once PutEvents succeeds: a process killed (SIGKILL) with deliveries
// in flight loses none of them. A child process accepts events on two buses and is killed while its targets
// still work on them; the restarted buses, their rules wired again, resume every delivery that was not done.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buses, PATTERN } from '#test/support/bus-child.ts';

const CHILD = new URL('../../support/bus-child.ts', import.meta.url).pathname;

/** Runs the child until it has accepted `count` events, then kills it with SIGKILL. */
async function acceptThenKill(dir: string, count: number): Promise<void> {
  const child = spawn(process.execPath, [CHILD, dir, String(count)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err += d;
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes(`accepted ${count}`)) resolve();
      });
      child.on('exit', (code) => reject(new Error(`child exited (${code}) before accepting: ${err}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  await new Promise((resolve) => (child.exitCode === null ? child.on('exit', resolve) : resolve(null)));
}

describe('Class: LocalEventBus (durable deliveries)', () => {
  it('delivers every accepted event after a kill -9, to handlers and to other buses', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-bus-durable-'));
    try {
      // prepare: 20 events accepted; the handler target finished none, bus B's target only the even ones
      const count = 20;
      await acceptThenKill(dir, count);
      const takenBefore = (await readFile(join(dir, 'taken.log'), 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map(Number);
      // act: the restarted process wires its rules again and resumes
      const { a, b } = buses(dir);
      const slow: number[] = [];
      const taken: number[] = [];
      const n = (event: { detail: unknown }) => (event.detail as { n: number }).n;
      a.addRule('to-handler', PATTERN, { id: 'slow', handler: (e) => void slow.push(n(e)) });
      a.addRule('to-bus', PATTERN, b);
      b.addRule('taker', PATTERN, { id: 'taker', handler: (e) => void taken.push(n(e)) });
      const resumed = a.resumeDeliveries() + b.resumeDeliveries();
      await a.drain();
      // assess: nothing lost, nothing taken twice by B, nothing left owed, no dead letter
      const all = [...Array(count).keys()];
      assert.deepEqual(
        [...new Set(slow)].sort((x, y) => x - y),
        all,
        'every event reached the handler',
      );
      assert.deepEqual(
        [...new Set([...takenBefore, ...taken])].sort((x, y) => x - y),
        all,
        'every event reached bus B’s target',
      );
      assert.ok(takenBefore.length > 0, 'the child finished some deliveries before it was killed');
      assert.deepEqual(
        taken.filter((x) => takenBefore.includes(x)),
        [],
        'a finished delivery is not delivered again',
      );
      assert.ok(resumed >= count, `resumed ${resumed}`);
      assert.equal(a.pendingDeliveries() + b.pendingDeliveries(), 0);
      assert.deepEqual([...a.deadLetters(), ...b.deadLetters()], []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('resumes nothing twice in the process that accepted it, and dead-letters a delivery whose target is gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-bus-durable-'));
    try {
      // prepare: a killed process left 2 deliveries to its handler target "slow"; the restarted one names that
      // target otherwise, and has one delivery of its own in flight
      await acceptThenKill(dir, 2);
      const { a } = buses(dir);
      const waiting: (() => void)[] = [];
      const got: number[] = [];
      a.addRule('to-handler', PATTERN, {
        id: 'renamed',
        handler: async (e) => {
          got.push((e.detail as { n: number }).n);
          await new Promise<void>((r) => waiting.push(r));
        },
      });
      await a.publish([{ source: 'stemcell.test', detailType: 'Test', detail: { n: 7 } }]);
      // act
      const resumed = a.resumeDeliveries();
      // assess
      assert.equal(resumed, 0, 'the delivery in flight here is not started again');
      const gone = a.deadLetters();
      assert.deepEqual(
        gone.map((l) => [l.targetId, l.errorCode, (l.event.detail as { n: number }).n]).sort(),
        [
          ['slow', 'ResourceNotFoundException', 0],
          ['slow', 'ResourceNotFoundException', 1],
        ],
      );
      while (waiting.length < 1) await new Promise((r) => setImmediate(r));
      for (const r of waiting) r();
      await a.drain();
      assert.deepEqual(got, [7]);
      assert.equal(a.pendingDeliveries(), 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts nothing put when a delivery cannot be stored; a service event still runs, from memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-bus-durable-'));
    try {
      // prepare: the deliveries folder is a file, so no delivery can be written
      const { a } = buses(dir);
      const got: unknown[] = [];
      a.addRule('one', PATTERN, { id: 'one', handler: (e) => void got.push(e) });
      a.addRule('two', PATTERN, { id: 'two', handler: (e) => void got.push(e) });
      const { mkdir, writeFile } = await import('node:fs/promises');
      const busDir = join(dir, 'event-buses', '111111111111', 'eu-west-1', 'a');
      await mkdir(busDir, { recursive: true });
      await writeFile(join(busDir, 'deliveries'), 'not a folder');
      // act
      await assert.rejects(a.publish([{ source: 'stemcell.test', detailType: 'Test', detail: { n: 1 } }]));
      await a.drain();
      const putGot = got.length;
      // The service's own call (a snapshot, an upload) has succeeded already: its event is not refused.
      a.emit({
        version: '0',
        id: 'e-1',
        'detail-type': 'Test',
        source: 'stemcell.test',
        account: '111111111111',
        time: '2026-12-01T00:00:00Z',
        region: 'eu-west-1',
        resources: [],
        detail: { n: 2 },
      });
      await a.drain();
      // assess
      assert.equal(putGot, 0);
      assert.equal(got.length, 2, 'the service event reached both targets');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
