// Faults 1 and 3 of issue 9: a stack killed during a build. Killing is simulated in-process: the dead stack's
// builders hang forever inside the build (after attaching the volume), and a new stack is started over the same
// data folder, as `stemcell dev` restarted after kill -9 would be.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { objectKey } from '#core/model/naming.ts';
import { realSleep } from '#local/clock.ts';
import type { LocalStack } from '#local/stack.ts';
import { flowConfig, HOME, OTHER, sampleBody, stackOver } from './support.ts';

const config = flowConfig({ streams: ['web'], accounts: 2 });

/** Starts a stack whose builders never come back from downloading the tarball; resolves once both are stuck. */
async function dyingStack(dataDir: string, publish?: () => Promise<void>): Promise<LocalStack> {
  const stack = stackOver(dataDir, config);
  let stuck = 0;
  // Ingest reads the first header of the upload before it sequences it (published here, so in this stack):
  // that read goes through; every read of a builder hangs.
  const readByIngest = stack.objects.get.bind(stack.objects);
  let ingestRead = publish === undefined;
  stack.objects.get = (...args) => {
    if (!ingestRead) {
      ingestRead = true;
      return readByIngest(...args);
    }
    stuck++;
    return new Promise(() => {});
  };
  await stack.start();
  await publish?.call(stack);
  const deadline = Date.now() + 30_000;
  while (stuck < 2 && Date.now() < deadline) await realSleep(20);
  assert.equal(stuck, 2, 'both regions should be building');
  void stack.stop(); // never resolves: its builders are "dead"; the rest of it stops
  return stack;
}

describe('Flow: restart after a kill', () => {
  it('gives a dead builder’s job and volume to the restarted stack at once, and the release completes', {
    timeout: 120_000,
  }, async () => {
    // prepare: a stack dies while both regions build, holding the volumes and the messages
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-restart-'));
    const data = join(dir, 'data');
    const { body, sha256 } = await sampleBody(dir, 'web', 1);
    await dyingStack(data, async function (this: LocalStack) {
      await this.publish(objectKey('web', 'r1'), body, { sha256 });
    });
    const logs: string[] = [];
    const stack = stackOver(data, config, { log: (line) => logs.push(line) });
    try {
      // act
      const started = Date.now();
      await stack.start();
      await stack.settle();
      // assess: before the build visibility timeout (60 s) could have handed the dead builders' messages back,
      // so the restart released them itself; and no "already attached". The bound is that timeout, not a speed goal.
      const [release] = await stack.releases.list('web');
      for (const region of [HOME, OTHER])
        assert.equal(release?.regions[region]?.state, 'announced', JSON.stringify(release?.regions));
      assert.ok(Date.now() - started < 55_000, `took ${Date.now() - started} ms`);
      assert.match(logs.join('\n'), /released vol-\S+ from builders of a previous run/);
      for (const region of [HOME, OTHER])
        assert.ok(
          stack
            .region(region)
            .volumes.list()
            .every((v) => v.state === 'available'),
        );
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails a job that died on every attempt, with its reason and "Build Failed", instead of dropping it', {
    timeout: 120_000,
  }, async () => {
    // prepare: three stacks in a row die during the build (maxReceiveCount 3)
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-restart-'));
    const data = join(dir, 'data');
    const { body, sha256 } = await sampleBody(dir, 'web', 1);
    await dyingStack(data, async function (this: LocalStack) {
      await this.publish(objectKey('web', 'r1'), body, { sha256 });
    });
    await dyingStack(data);
    await dyingStack(data);
    const stack = stackOver(data, config);
    const failed: Array<Record<string, unknown>> = [];
    stack.centralBus.addRule(
      'test-capture',
      { source: ['stemcell'], 'detail-type': ['Build Failed'] },
      (e) => {
        failed.push(e.detail as Record<string, unknown>);
      },
    );
    try {
      // act
      await stack.start();
      const deadline = Date.now() + 30_000;
      while (failed.length < 2 && Date.now() < deadline) await realSleep(50);
      await stack.settle();
      // assess
      const [release] = await stack.releases.list('web');
      for (const region of [HOME, OTHER]) {
        const record = release?.regions[region];
        assert.equal(record?.state, 'failed', JSON.stringify(release?.regions));
        assert.match(
          record?.reason ?? '',
          /build attempts exhausted \(3\); the builder stopped without reporting/,
        );
      }
      assert.deepEqual(failed.map((d) => d.region).sort(), [HOME, OTHER].sort());
      assert.ok(failed.every((d) => d.attempts === 3));
      assert.equal(stack.region(HOME).buildDlq.stats().visible, 0, 'the DLQ is consumed');
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
