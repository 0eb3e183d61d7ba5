// Rollout waves against the whole local flow: "Image Ready" reaches wave 1 first, the next wave only after the
// bake time and only when wave 1 is healthy; a failed instance refresh halts the release with "Release Halted"
// and no account of a later wave moves; resume and abort are the operator's way on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { abortRelease, resumeRelease } from '#core/rollout/rollout.ts';
import { accountId, defaultImage, type Flow, HOME, OTHER, OU_A, releaseOf, startFlow } from './support.ts';

// OU_A holds accounts 1 and 3, OU_B accounts 2 and 4.
const CANARY = [accountId(1), accountId(3)];
const REST = [accountId(2), accountId(4)];
/** "Everything else in scope" includes the management account (it has no launch template, so never reports). */
const REST_WAVE = [accountId(0), ...REST];
/**
 * Canary, then the rest; bakes long enough that reports arrive within them on a loaded machine (the rest's
 * accounts report twice now: the update, then how its refresh ended).
 */
const waves = (canaryBakeMinutes: number) => ({
  waves: [
    { name: 'canary', ous: [OU_A], bakeMinutes: canaryBakeMinutes },
    { name: 'rest', bakeMinutes: 0.05 },
  ],
});

async function withFlow(body: (flow: Flow) => Promise<void>, canaryBakeMinutes = 0.01): Promise<void> {
  const flow = await startFlow({ accounts: 4, streams: ['web'], rollout: waves(canaryBakeMinutes) });
  try {
    await body(flow);
  } finally {
    await flow.close();
  }
}

function imageReadyAudiences(flow: Flow, releaseId: string): string[][] {
  return flow.events
    .filter((e) => e.detailType === 'Image Ready' && e.detail.releaseId === releaseId)
    .map((e) => e.detail.audience as string[]);
}

describe('Flow: rollout waves', () => {
  it('a healthy canary wave bakes, then the rest follows; Release Complete comes after the last wave', async () => {
    await withFlow(async (flow) => {
      // act
      await flow.publish('web', 1);
      // assess
      const release = await releaseOf(flow, 'web', 1);
      const rollout = await flow.stack.rollouts.get(release.releaseId);
      assert.equal(rollout?.state, 'complete');
      assert.deepEqual(
        rollout?.waves.map((w) => [w.name, w.state, w.accounts]),
        [
          ['canary', 'healthy', CANARY],
          ['rest', 'healthy', REST_WAVE],
        ],
      );
      // Two regions to the canary, then two regions to the rest: never a later wave's account first.
      assert.deepEqual(imageReadyAudiences(flow, release.releaseId), [CANARY, CANARY, REST_WAVE, REST_WAVE]);
      const canaryDone = rollout?.waves[0]?.finishedAt ?? '';
      for (const account of REST) {
        for (const region of [HOME, OTHER]) {
          const record = release.accounts[`${account}/${region}`];
          assert.ok(record && record.updatedAt >= canaryDone, `${account} moved only after the canary baked`);
        }
      }
      for (const account of [...CANARY, ...REST]) {
        for (const region of [HOME, OTHER])
          assert.equal(defaultImage(flow, account, region, 'web'), release.regions[region]?.imageId);
      }
      const order = flow.events.map((e) => e.detailType);
      assert.ok(order.lastIndexOf('Image Ready') < order.indexOf('Release Complete'));
      assert.ok(release.completedAt, 'complete');
    });
  });

  it('a failed instance refresh in the canary halts the release: Release Halted, no account of the rest moves', async () => {
    await withFlow(async (flow) => {
      // prepare: revision 1 everywhere, then one canary account's next refresh fails. The canary bakes 15 s: the
      // failed refresh halts at once, and on a loaded machine the other canary reports must not miss the bake
      // (that would halt for a "missing report" instead).
      await flow.publish('web', 1);
      const first = await releaseOf(flow, 'web', 1);
      flow.stack.members.forAccount(accountId(3), OTHER).failNextInstanceRefresh('web-asg');
      // act
      await flow.publish('web', 2);
      // assess
      const release = await releaseOf(flow, 'web', 2);
      const halted = flow.events.filter((e) => e.detailType === 'Release Halted');
      assert.equal(halted.length, 1);
      assert.equal(halted[0]?.detail.releaseId, release.releaseId);
      assert.equal(halted[0]?.detail.wave, 'canary');
      assert.deepEqual(halted[0]?.detail.accounts, [{ accountId: accountId(3), region: OTHER }]);
      assert.match(String(halted[0]?.detail.reason), /instance refresh failed/);
      for (const account of REST) {
        for (const region of [HOME, OTHER]) {
          assert.equal(
            defaultImage(flow, account, region, 'web'),
            first.regions[region]?.imageId,
            `${account} in ${region} stays on revision 1`,
          );
        }
      }
      assert.ok(
        imageReadyAudiences(flow, release.releaseId).every((a) => a.every((id) => CANARY.includes(id))),
        'no Image Ready for the rest',
      );
      const rollout = await flow.stack.rollouts.get(release.releaseId);
      assert.equal(rollout?.state, 'halted');
      assert.deepEqual(
        rollout?.waves.map((w) => w.state),
        ['halted', 'pending'],
      );
      assert.equal(release.completedAt, undefined, 'a halted release is not complete');

      // act 2: the operator resumes; the rest follows
      await resumeRelease(
        { ...flow.stack.announceDeps(), rollouts: flow.stack.rollouts, timer: flow.stack.scheduler },
        'web',
        'r2',
      );
      await flow.stack.settle();
      // assess 2
      for (const account of REST) {
        for (const region of [HOME, OTHER])
          assert.equal(defaultImage(flow, account, region, 'web'), release.regions[region]?.imageId);
      }
      assert.equal((await flow.stack.rollouts.get(release.releaseId))?.state, 'complete');
    }, 0.25);
  });

  it('abort keeps the later waves where they are for good', async () => {
    await withFlow(async (flow) => {
      // prepare
      await flow.publish('web', 1);
      const first = await releaseOf(flow, 'web', 1);
      flow.stack.members
        .forAccount(accountId(1), HOME)
        .failNextInstanceRefresh('web-asg', 'RollbackSuccessful');
      await flow.publish('web', 2);
      const deps = {
        ...flow.stack.announceDeps(),
        rollouts: flow.stack.rollouts,
        timer: flow.stack.scheduler,
      };
      // act
      const aborted = await abortRelease(deps, 'web', 'r2');
      await flow.stack.settle();
      // assess
      assert.equal(aborted.state, 'aborted');
      assert.deepEqual(
        aborted.waves.map((w) => w.state),
        ['halted', 'aborted'],
      );
      await assert.rejects(resumeRelease(deps, 'web', 'r2'), /aborted, not halted/);
      assert.equal(defaultImage(flow, accountId(2), HOME, 'web'), first.regions[HOME]?.imageId);
    }, 0.05);
  });

  it('the reconciler re-driving a release never outruns its waves: nothing for the rest while the canary bakes or after a halt', async () => {
    // prepare: a canary bake far longer than the test
    await withFlow(async (flow) => {
      await flow.publish('web', 1, { timers: false });
      const release = await releaseOf(flow, 'web', 1);
      assert.equal((await flow.stack.rollouts.get(release.releaseId))?.waves[0]?.state, 'baking');
      // act: every account that has not reported is "overdue"
      const report = await flow.stack.reconcile({ reportTimeoutMs: 0 });
      await flow.stack.settle({ timers: false });
      // assess
      assert.deepEqual(
        report.redelivered.filter((r) => REST_WAVE.includes(r.accountId)),
        [],
        'no redelivery to the rest',
      );
      for (const account of REST)
        for (const region of [HOME, OTHER])
          assert.notEqual(
            defaultImage(flow, account, region, 'web'),
            release.regions[region]?.imageId,
            `${account} in ${region} stays where it was`,
          );
      // a late joiner of the rest gets nothing of a release its wave has not reached
      const { deliverLatestTo } = await import('#core/release/reconcile.ts');
      assert.deepEqual(await deliverLatestTo(flow.stack.reconcileDeps(), REST), []);
    }, 30);
  });

  it('after a halt the reconciler tells no one: the rest stays on the previous release', async () => {
    await withFlow(async (flow) => {
      // prepare: r2 halts in the canary
      await flow.publish('web', 1);
      const first = await releaseOf(flow, 'web', 1);
      flow.stack.members.forAccount(accountId(3), OTHER).failNextInstanceRefresh('web-asg');
      await flow.publish('web', 2);
      const release = await releaseOf(flow, 'web', 2);
      assert.equal((await flow.stack.rollouts.get(release.releaseId))?.state, 'halted');
      // act
      const report = await flow.stack.reconcile({ reportTimeoutMs: 0 });
      await flow.stack.settle();
      // assess
      assert.deepEqual(
        report.redelivered.filter((r) => r.releaseId === release.releaseId),
        [],
      );
      for (const account of REST)
        for (const region of [HOME, OTHER])
          assert.equal(defaultImage(flow, account, region, 'web'), first.regions[region]?.imageId);
      // a late joiner gets the last release that finished its rollout
      const { deliverLatestTo } = await import('#core/release/reconcile.ts');
      const delivered = await deliverLatestTo(flow.stack.reconcileDeps(), [accountId(2)]);
      assert.deepEqual([...new Set(delivered.map((d) => d.releaseId))], [first.releaseId]);
    }, 0.05);
  });
});
