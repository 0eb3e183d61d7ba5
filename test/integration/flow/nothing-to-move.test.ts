// An account of the Organization with no launch template of the stream (here the management account) answers
// "nothing to move" once and counts as done: the reconciler does not deliver "Image Ready" to it again every
// 15 s for an hour, as it did while the account stayed silent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOME, OTHER, releaseOf, withFlow } from './support.ts';

const MANAGEMENT = '200000000000';

describe('Flow: an account with nothing to update', () => {
  it('reports "nothing to move" once per region and is not told again', { timeout: 120_000 }, async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare
      await flow.publish('web', 1);
      // act: every account that has not reported is overdue
      const report = await flow.stack.reconcile({ reportTimeoutMs: 0 });
      await flow.stack.settle();
      // assess
      const release = await releaseOf(flow, 'web', 1);
      for (const region of [HOME, OTHER]) {
        assert.equal(release.accounts[`${MANAGEMENT}/${region}`]?.outcome, 'nothing-to-move', region);
        assert.equal(release.accounts[`${MANAGEMENT}/${region}`]?.launchTemplates, 0);
      }
      assert.deepEqual(report.redelivered, []);
      assert.ok(release.completedAt);
    });
  });
});
