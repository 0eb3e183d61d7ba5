// Failures 1 and 2 of issue 21, each from a real kill -9 of `stemcell rollback` at an exact point of its work
// (STEMCELL_KILL_AT, src/local/kill-points.ts): right after its release was recorded, between the release file
// and the stream index, after the rollout marker, after the bus accepted its first "Image Ready" (before the region
// recorded it), and after the first member account applied one.
// A restarted stack must finish the rollback from what it recorded: its own release id, every account of the
// audience on the rollback's sequence (no split fleet), no sequence given twice, no record overwritten. And a
// rollback stuck there can be aborted, with its reason, instead of "is complete: nothing to abort".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { sequenceFromVersionDescription } from '#core/model/naming.ts';
import { abortRelease } from '#core/rollout/abort.ts';
import { realSleep } from '#local/clock.ts';
import type { LocalStack } from '#local/stack.ts';
import type { Release } from '#ports';
import { accountId, type Flow, flowConfig, HOME, OTHER, stackOver, startFlow } from './support.ts';

const STEMCELL = join(import.meta.dirname, '../../../bin/stemcell');
const OPTIONS = { accounts: 3, streams: ['web'] };
const CONFIG = flowConfig(OPTIONS);
const ACCOUNTS = [accountId(1), accountId(2), accountId(3)];
const REGIONS = [HOME, OTHER];

/** r1 and r2 released everywhere; the stack stopped, its data folder kept for the command and the restart. */
async function twoReleases(): Promise<{ flow: Flow; configFile: string }> {
  const flow = await startFlow(OPTIONS);
  await flow.publish('web', 1);
  await flow.publish('web', 2);
  await flow.stack.stop();
  const configFile = join(flow.dir, 'stemcell.config.yml');
  await writeFile(configFile, stringify(CONFIG));
  return { flow, configFile };
}

/** `stemcell rollback web --to r1`, killed with SIGKILL at `point` (or run to its end without one). */
function rollbackCommand(flow: Flow, configFile: string, point?: string) {
  const result = spawnSync(
    STEMCELL,
    ['rollback', 'web', '--to', 'r1', '--data', flow.stack.dataDir, '--config', configFile],
    {
      encoding: 'utf8',
      env: { ...process.env, ...(point ? { STEMCELL_KILL_AT: point } : {}) },
      timeout: 120_000,
    },
  );
  if (point) {
    assert.equal(result.signal, 'SIGKILL', `${point}: ${result.stdout}\n${result.stderr}`);
    assert.match(result.stderr, new RegExp(`kill point ${point}: SIGKILL`));
  } else assert.equal(result.status, 0, result.stderr);
  return result;
}

function defaultSequence(stack: LocalStack, account: string, region: string): number | undefined {
  const member = stack.members.forAccount(account, region);
  const template = member.launchTemplateByName('web-lt');
  if (!template) return undefined;
  const current = member
    .launchTemplateVersions(template.launchTemplateId)
    .find((v) => v.versionNumber === template.defaultVersionNumber);
  return sequenceFromVersionDescription(current?.versionDescription, 'web');
}

/** A restarted stack, run until every release has ended and every account holds the newest sequence. */
async function restarted(flow: Flow): Promise<LocalStack> {
  const stack = stackOver(flow.stack.dataDir, CONFIG, { reconcile: { reportTimeoutMs: 500 } });
  await stack.start();
  const deadline = Date.now() + 60_000;
  for (;;) {
    await stack.settle();
    const releases = await stack.releases.list('web');
    const newest = Math.max(...releases.map((r) => r.sequence));
    const done =
      releases.every((r) => r.completedAt) &&
      ACCOUNTS.every((a) => REGIONS.every((region) => defaultSequence(stack, a, region) === newest));
    if (done || Date.now() > deadline) return stack;
    await realSleep(200);
  }
}

/** Every release complete, sequences 1..n each once, every account of the audience on the newest one. */
async function assertConverged(stack: LocalStack, revisions: string[]) {
  const releases = await stack.releases.list('web');
  const r1 = releases.find((r) => r.revision === 'r1') as Release;
  const context = JSON.stringify(
    releases.map((r) => [r.revision, r.sequence, r.completedAt, r.regions]),
    null,
    1,
  );
  assert.deepEqual(
    releases.map((r) => r.revision),
    revisions,
    context,
  );
  assert.deepEqual(
    releases.map((r) => r.sequence),
    revisions.map((_, i) => i + 1),
    `no sequence given twice: ${context}`,
  );
  for (const rollback of releases.filter((r) => r.rollback)) {
    assert.ok(rollback.completedAt, `${rollback.revision} completed: ${context}`);
    for (const region of REGIONS) {
      assert.equal(rollback.regions[region]?.state, 'announced', context);
      assert.equal(rollback.regions[region]?.imageId, r1.regions[region]?.imageId, 'the earlier image');
    }
  }
  const newest = releases.length;
  const held = ACCOUNTS.flatMap((a) =>
    REGIONS.map((region) => `${a}/${region}=${defaultSequence(stack, a, region)}`),
  );
  assert.deepEqual(
    held,
    ACCOUNTS.flatMap((a) => REGIONS.map((region) => `${a}/${region}=${newest}`)),
    'no split fleet: every account on the newest release',
  );
  for (const account of ACCOUNTS)
    for (const region of REGIONS) {
      const member = stack.members.forAccount(account, region);
      const template = member.launchTemplateByName('web-lt');
      assert.equal(template && member.defaultImageId(template.launchTemplateId), r1.regions[region]?.imageId);
    }
}

describe('Flow: a rollback killed with SIGKILL', () => {
  for (const point of ['rollback:recorded', 'rollback:marker', 'rollback:delivered', 'subscriber:applied']) {
    it(`is finished by the restarted stack from its recorded intent (killed at ${point})`, {
      timeout: 300_000,
    }, async () => {
      // prepare
      const { flow, configFile } = await twoReleases();
      let stack: LocalStack | undefined;
      try {
        // act
        rollbackCommand(flow, configFile, point);
        stack = await restarted(flow);
        // assess
        await assertConverged(stack, ['r1', 'r2', 'r1-rollback-1']);
      } finally {
        await stack?.stop();
        await flow.close();
      }
    });
  }

  it('between its release file and the stream index: a retried rollback takes a new sequence, overwriting nothing', {
    timeout: 300_000,
  }, async () => {
    // prepare
    const { flow, configFile } = await twoReleases();
    let stack: LocalStack | undefined;
    try {
      rollbackCommand(flow, configFile, 'release-store:recorded');
      // act: the operator runs it again
      rollbackCommand(flow, configFile);
      stack = await restarted(flow);
      // assess: both rollbacks are releases of their own, both finished, the fleet on the newest
      await assertConverged(stack, ['r1', 'r2', 'r1-rollback-1', 'r1-rollback-2']);
    } finally {
      await stack?.stop();
      await flow.close();
    }
  });

  for (const point of ['release-store:recorded', 'rollback:marker']) {
    it(`can be aborted with its reason while stuck (killed at ${point}), and stays ended after a restart`, {
      timeout: 300_000,
    }, async () => {
      // prepare
      const { flow, configFile } = await twoReleases();
      let stack: LocalStack | undefined;
      try {
        rollbackCommand(flow, configFile, point);
        const idle = stackOver(flow.stack.dataDir, CONFIG);
        // act: aborted before anything restarts it
        const aborted = await abortRelease(idle.runtime.rollout(), 'web', 'r1-rollback-1', 'wrong target');
        stack = stackOver(flow.stack.dataDir, CONFIG, { reconcile: { reportTimeoutMs: 500 } });
        await stack.start();
        await stack.settle();
        await realSleep(1000);
        await stack.settle();
        // assess
        assert.deepEqual(aborted.failed.sort(), [...REGIONS].sort());
        const rollback = (await stack.releases.list('web')).find((r) => r.revision === 'r1-rollback-1');
        for (const region of REGIONS) {
          assert.equal(rollback?.regions[region]?.state, 'failed');
          assert.equal(rollback?.regions[region]?.reason, 'aborted: wrong target');
        }
        assert.equal(rollback?.completedAt, undefined);
        for (const account of ACCOUNTS)
          for (const region of REGIONS)
            assert.equal(defaultSequence(stack, account, region), 2, 'nobody moved: no split fleet');
      } finally {
        await stack?.stop();
        await flow.close();
      }
    });
  }
});
