// Launchable, checked where it matters, on the whole local flow. Each member's subscriber runs the launch check
// (src/core/images/launchable.ts) over the local launch model before it moves a template: an account that cannot
// launch the image keeps its template, reports the refusal with its reason, a rollout wave halts on it, and
// `stemcell status` names it. The demo's verdict is the same check over every tagged template: launchable after a
// release, and not once one member's Auto Scaling grant is gone. The sharing case forces a configuration the
// schema refuses, to prove neither relies on that refusal.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatRelease, withRollouts } from '#cli/commands/status.ts';
import { checkLaunchable } from '#core/images/launchable.ts';
import { allLaunchable, launchVerdict } from '#demo/verdict.ts';
import { autoScalingRoleArn } from '#local/key-policy.ts';
import { accountId, defaultImage, type Flow, HOME, OTHER, OU_A, releaseOf, withFlow } from './support.ts';

/** The "Launch Template Updated" reports of one release that refused, as `account region check`. */
function refusals(flow: Flow, releaseId: string): string[] {
  return flow.events
    .filter((e) => e.detailType === 'Launch Template Updated' && e.detail.releaseId === releaseId)
    .filter((e) => e.detail.outcome === 'refused')
    .map((e) => `${e.detail.accountId} ${e.detail.region} ${(e.detail.refusal as { check: string }).check}`)
    .sort();
}

async function statusOf(flow: Flow, stream: string, revision: number): Promise<string> {
  const release = await releaseOf(flow, stream, revision);
  const [withRollout] = await withRollouts(flow.stack.rollouts, [release]);
  return formatRelease(withRollout ?? release);
}

describe('Flow: launchable', () => {
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
        after.launch.failures.map((f) => [f.account, f.check]),
        [
          [accountId(2), 'key'],
          [accountId(2), 'key'],
        ],
      );
      assert.match(
        after.launch.failures[0]?.reason ?? '',
        /Auto Scaling role of 200000000002 has no grant for/,
      );
      assert.equal(after.accountsUpdated, 2, 'the templates did move before: moving is not launching');
    });
  });

  it('an account the image is not shared with keeps its template and says why; the verdict agrees', async () => {
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
        const release = await releaseOf(flow, 'web', 1);
        const verdict = await launchVerdict(flow.stack);
        const status = await statusOf(flow, 'web', 1);
        // assess: account 1 is under OU_A, account 2 is not
        for (const region of [HOME, OTHER]) {
          assert.equal(defaultImage(flow, accountId(1), region, 'web'), release.regions[region]?.imageId);
          assert.equal(defaultImage(flow, accountId(2), region, 'web'), 'ami-00000000000000000', 'not moved');
          assert.equal(release.accounts[`${accountId(2)}/${region}`]?.outcome, 'refused');
        }
        assert.deepEqual(refusals(flow, release.releaseId), [
          `${accountId(2)} ${HOME} image`,
          `${accountId(2)} ${OTHER} image`,
        ]);
        assert.match(
          status,
          /REFUSED web-lt \(lt-[0-9a-f]+\), image check: image ami-[0-9a-f]+ is not visible to account 200000000002/,
        );
        assert.equal(verdict.launch.checked, 4);
        assert.equal(verdict.launch.launchable, 2);
        assert.deepEqual(verdict.launch.failures.map((f) => [f.account, f.region]).sort(), [
          [accountId(2), HOME],
          [accountId(2), OTHER],
        ]);
      },
    );
  });

  it("applies EC2's rules: the instance type's architecture, a stranger, a deregistered image", async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare
      await flow.publish('web', 1);
      const imageId = (await releaseOf(flow, 'web', 1)).regions[HOME]?.imageId as string;
      const launch = async (
        request: { accountId?: string; instanceType?: string; via?: 'auto-scaling' | 'account' } = {},
      ) => {
        const verdict = await checkLaunchable(
          flow.stack.launch.forAccount(request.accountId ?? accountId(1), HOME),
          { imageId, instanceType: request.instanceType ?? 't3.micro', via: request.via ?? 'auto-scaling' },
          new Date(),
        );
        return verdict.launchable ? 'launchable' : `${verdict.check}: ${verdict.reason}`;
      };
      // act
      const member = await launch();
      const direct = await launch({ via: 'account' });
      const graviton = await launch({ instanceType: 't4g.micro' });
      const unknown = await launch({ instanceType: 'zz9.plural' });
      const stranger = await launch({ accountId: '999999999999' });
      await flow.stack.region(HOME).images.deregister(imageId);
      const gone = await launch();
      // assess
      assert.equal(member, 'launchable');
      assert.equal(direct, 'launchable', 'the key policy lets the members describe the key');
      assert.match(graviton, /^instance-type: instance type t4g\.micro is arm64, the image is x86_64/);
      assert.match(
        unknown,
        /^dry-run: .*InvalidParameterValue: instance type zz9\.plural is unknown to the launch model/,
      );
      assert.match(stranger, /^image: image ami-[0-9a-f]+ is not visible to account 999999999999/);
      assert.match(gone, /^image: /);
    });
  });

  it('canary accounts that cannot launch keep their templates, report why, halt the wave; status names each reason', async () => {
    // OU_A (accounts 1, 3, 5, 7) is the canary; each of them cannot launch for its own reason.
    await withFlow(
      {
        accounts: 8,
        streams: ['web'],
        rollout: {
          waves: [
            { name: 'canary', ous: [OU_A], bakeMinutes: 0.01 },
            { name: 'rest', bakeMinutes: 0.01 },
          ],
        },
        configure: (config) => {
          for (const lt of config.local?.launchTemplates ?? [])
            if (lt.account === accountId(5)) lt.instanceType = 't4g.micro';
        },
      },
      async (flow) => {
        // prepare
        const { stack } = flow;
        stack.keys.revokeGrants(stack.config.kmsKeyId, autoScalingRoleArn(accountId(1)));
        for (const region of [HOME, OTHER]) {
          stack.members
            .forAccount(accountId(3), region)
            .setAllowedImages({ state: 'enabled', criteria: [{ imageProviders: ['amazon'] }] });
          stack.members.forAccount(accountId(7), region).denyLaunches('p-deny-run-instances');
        }
        // act
        await flow.publish('web', 1);
        const release = await releaseOf(flow, 'web', 1);
        const rollout = await stack.rollouts.get(release.releaseId);
        const status = await statusOf(flow, 'web', 1);
        // assess: no canary template moved, each refusal reported with its check
        for (const n of [1, 3, 5, 7, 2, 4, 6, 8])
          for (const region of [HOME, OTHER])
            assert.equal(
              defaultImage(flow, accountId(n), region, 'web'),
              'ami-00000000000000000',
              `${n} ${region}`,
            );
        // Every region the canary was sent before the first refusal halted it (one, or both if they raced).
        const refused = refusals(flow, release.releaseId);
        const sent = Object.keys(rollout?.waves[0]?.announcedAt ?? {}).sort();
        assert.ok(sent.length >= 1);
        assert.deepEqual(
          [...new Set(refused.map((r) => r.replace(/ [a-z]{2}-[a-z]+-\d /, ' ')))],
          [
            `${accountId(1)} key`,
            `${accountId(3)} allowed-images`,
            `${accountId(5)} instance-type`,
            `${accountId(7)} dry-run`,
          ],
        );
        assert.equal(refused.length, 4 * sent.length, refused.join('; '));
        assert.deepEqual([...new Set(refused.map((r) => r.split(' ')[1]))].sort(), sent);
        // the wave halts, and the rest never hears of the release
        const halted = flow.events.filter((e) => e.detailType === 'Release Halted');
        assert.equal(halted.length, 1);
        assert.equal(halted[0]?.detail.wave, 'canary');
        assert.match(
          String(halted[0]?.detail.reason),
          /^not launchable, launch template kept: 20000000000[1357] in /,
        );
        assert.equal(rollout?.state, 'halted');
        assert.deepEqual(
          rollout?.waves.map((w) => w.state),
          ['halted', 'pending'],
        );
        const audiences = flow.events
          .filter((e) => e.detailType === 'Image Ready')
          .flatMap((e) => e.detail.audience as string[]);
        assert.ok(
          !audiences.some((a) => [2, 4, 6, 8].map(accountId).includes(a)),
          'no Image Ready for the rest',
        );
        assert.equal(release.completedAt, undefined);
        // status says where it halted and, per account and region, why
        assert.match(status, /HALTED at wave canary: not launchable, launch template kept: /);
        assert.match(
          status,
          /200000000001 {2}refused .*\n {6}REFUSED web-lt \(lt-[0-9a-f]+\), key check: key arn:aws:kms:[^ ]+: the Auto Scaling role of 200000000001 has no grant for /,
        );
        assert.match(
          status,
          /REFUSED web-lt .*, allowed-images check: image ami-[0-9a-f]+ is hidden: Allowed AMIs is enabled in 200000000003 \((eu-west-1|us-east-1)\) and admits no image of 200000000000: its criteria allow image providers amazon/,
        );
        assert.match(
          status,
          /REFUSED web-lt .*, instance-type check: instance type t4g\.micro is arm64, the image is x86_64/,
        );
        assert.match(
          status,
          /REFUSED web-lt .*, dry-run check: RunInstances \(dry run\) of ami-[0-9a-f]+ on t3\.micro as 200000000007 in [a-z0-9-]+: UnauthorizedOperation: .*p-deny-run-instances/,
        );
      },
    );
  });
});
