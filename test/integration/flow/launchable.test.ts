// The demo's verdict on a small local flow: every tagged launch template is launchable after a release, and the
// verdict fails, naming account and reason, when one member's Auto Scaling grant on the key is gone, or when one
// stream's images are shared more narrowly than its subscriber scope (a configuration the schema refuses, forced
// in here to prove the verdict does not rely on that refusal).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allLaunchable, launchVerdict } from '#demo/verdict.ts';
import { autoScalingRoleArn } from '#local/key-policy.ts';
import { accountId, HOME, OU_A, releaseOf, withFlow } from './support.ts';

describe('Flow: launch verdict', () => {
  it('every tagged launch template is launchable; not once one account loses its Auto Scaling grant', async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare
      await flow.publish('web', 1);
      // act
      const before = await launchVerdict(flow.stack);
      const revoked = flow.stack.keys.revokeGrants(
        flow.stack.config.kmsKeyId,
        autoScalingRoleArn(accountId(2)),
      );
      const after = await launchVerdict(flow.stack);
      // assess
      assert.equal(before.launch.checked, 4, '2 accounts × 2 regions × 1 template');
      assert.ok(allLaunchable(before), JSON.stringify(before.launch.failures));
      assert.equal(before.accountsUpdated, 2);
      assert.equal(before.accountsInScope, 2);
      assert.equal(revoked, 1);
      assert.equal(after.launch.launchable, 2);
      assert.equal(allLaunchable(after), false);
      assert.deepEqual(
        after.launch.failures.map((f) => f.account),
        [accountId(2), accountId(2)],
      );
      assert.match(after.launch.failures[0]?.reason ?? '', /AWSServiceRoleForAutoScaling .*needs a grant/);
      assert.equal(after.accountsUpdated, 2, 'the templates did move: moving is not launching');
    });
  });

  it("is not launchable where a stream's sharing is narrower than its subscriber scope", async () => {
    await withFlow(
      {
        accounts: 2,
        streams: ['web'],
        configure: (config) => {
          const web = config.streams.web;
          if (web) web.sharing = { organization: false, ous: [OU_A] };
        },
      },
      async (flow) => {
        // act
        await flow.publish('web', 1);
        const verdict = await launchVerdict(flow.stack);
        // assess: account 1 is under OU_A, account 2 is not
        assert.equal(verdict.launch.checked, 4);
        assert.equal(verdict.launch.launchable, 2);
        assert.deepEqual(verdict.launch.failures.map((f) => [f.account, f.region]).sort(), [
          [accountId(2), 'eu-west-1'],
          [accountId(2), 'us-east-1'],
        ]);
        assert.match(verdict.launch.failures[0]?.reason ?? '', /has no launch permission/);
      },
    );
  });

  it("applies EC2's rules: the instance type's architecture, a stranger, a deregistered image", async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare
      await flow.publish('web', 1);
      const imageId = (await releaseOf(flow, 'web', 1)).regions[HOME]?.imageId as string;
      const launch = (request: Partial<Parameters<typeof flow.stack.launch.check>[0]>) =>
        flow.stack.launch.check({
          accountId: accountId(1),
          region: HOME,
          imageId,
          instanceType: 't3.micro',
          via: 'auto-scaling',
          ...request,
        });
      // act
      const member = await launch({});
      const direct = await launch({ via: 'account' });
      const graviton = await launch({ instanceType: 't4g.micro' });
      const unknown = await launch({ instanceType: 'zz9.plural' });
      const stranger = await launch({ accountId: '999999999999' });
      await flow.stack.region(HOME).images.deregister(imageId);
      const gone = await launch({});
      // assess
      assert.deepEqual(member, { launchable: true });
      assert.deepEqual(direct, { launchable: true }, 'through EC2, the key policy lets members in');
      assert.match(refusal(graviton), /t4g\.micro is arm64, the image is x86_64/);
      assert.match(refusal(unknown), /unknown to the launch model/);
      assert.match(refusal(stranger), /account 999999999999 has no launch permission/);
      assert.match(refusal(gone), /is deregistered/);
    });
  });
});

function refusal(verdict: { launchable: boolean; reason?: string }): string {
  assert.equal(verdict.launchable, false);
  return verdict.reason ?? '';
}
