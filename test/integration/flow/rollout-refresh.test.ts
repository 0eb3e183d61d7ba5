// How instance refreshes end, in the whole local flow, as on AWS: member accounts' refreshes run for a while,
// so the subscriber's update report says "started"; when a refresh ends, the fake Auto Scaling puts the
// documented end event on the member's bus, the member rule queues it for the subscriber, and the subscriber
// reports the outcome. A refresh that fails after the update report halts the release in its canary.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accountId, defaultImage, HOME, OTHER, OU_A, releaseOf, withFlow } from './support.ts';

const CANARY = [accountId(1), accountId(3)];
const REST = [accountId(2), accountId(4)];
const options = {
  accounts: 4,
  streams: ['web'],
  instanceRefreshSeconds: 1,
  rollout: {
    waves: [
      // Longer than a refresh on a loaded machine: its end is reported within the bake time.
      { name: 'canary', ous: [OU_A], bakeMinutes: 0.2 },
      { name: 'rest', bakeMinutes: 0.05 },
    ],
  },
};

describe('Flow: rollout waves judged by how instance refreshes end', () => {
  it('a refresh that fails after the "started" report halts the canary; no account of the rest moves', async () => {
    await withFlow(options, async (flow) => {
      // prepare: revision 1 rolls out everywhere, its refreshes succeed after the update reports
      await flow.publish('web', 1);
      const first = await releaseOf(flow, 'web', 1);
      assert.equal((await flow.stack.rollouts.get(first.releaseId))?.state, 'complete');
      for (const account of [...CANARY, ...REST])
        for (const region of [HOME, OTHER])
          assert.equal(
            first.accounts[`${account}/${region}`]?.instanceRefresh,
            'succeeded',
            `${account} ${region}`,
          );
      flow.stack.members.forAccount(accountId(3), OTHER).failNextInstanceRefresh('web-asg');
      // act
      await flow.publish('web', 2);
      // assess
      const release = await releaseOf(flow, 'web', 2);
      const reports = flow.events.filter(
        (e) =>
          e.detailType === 'Launch Template Updated' &&
          e.detail.releaseId === release.releaseId &&
          e.detail.accountId === accountId(3) &&
          e.detail.region === OTHER,
      );
      // The update report first ("started": the refresh runs), then the end event's report.
      assert.deepEqual(
        reports.map((e) => [e.detail.instanceRefresh, Boolean(e.detail.refresh)]),
        [
          ['started', false],
          ['failed', true],
        ],
      );
      const order = flow.events.map((e) => e);
      const halted = order.filter((e) => e.detailType === 'Release Halted');
      assert.equal(halted.length, 1);
      assert.ok(
        order.indexOf(halted[0] as never) > order.indexOf(reports[1] as never),
        'halted on the end event',
      );
      assert.equal(halted[0]?.detail.wave, 'canary');
      assert.deepEqual(halted[0]?.detail.accounts, [{ accountId: accountId(3), region: OTHER }]);
      assert.match(String(halted[0]?.detail.reason), /instance refresh failed/);
      assert.equal(release.accounts[`${accountId(3)}/${OTHER}`]?.instanceRefresh, 'failed');
      assert.equal(release.accounts[`${accountId(1)}/${HOME}`]?.instanceRefresh, 'succeeded');
      for (const account of REST)
        for (const region of [HOME, OTHER])
          assert.equal(
            defaultImage(flow, account, region, 'web'),
            first.regions[region]?.imageId,
            `${account} in ${region} stays on revision 1`,
          );
      const rollout = await flow.stack.rollouts.get(release.releaseId);
      assert.deepEqual(
        rollout?.waves.map((w) => w.state),
        ['halted', 'pending'],
      );
    });
  });
});
