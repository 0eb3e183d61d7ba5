// Fault 2 of issue 9 and the late joiners: a stack killed after the snapshot, during register, announce or the
// account updates leaves a release the event flow alone never finishes. A first stack fails at that step (the
// handler or adapter made to fail stands for the kill); a second stack over the same data folder reconciles
// at start, and a second reconcile changes nothing (every re-driven step is idempotent).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { objectKey } from '#core/model/naming.ts';
import type { LocalStack } from '#local/stack.ts';
import { accountId, flowConfig, HOME, OTHER, sampleBody, stackOver } from './support.ts';

const config = flowConfig({ streams: ['web'], accounts: 3 });
const REGIONS = [HOME, OTHER];
const MANAGEMENT = config.local?.managementAccountId;

function templateOf(stack: LocalStack, account: string, region: string) {
  const member = stack.members.forAccount(account, region);
  const template = member.launchTemplateByName('web-lt');
  if (!template) throw new Error(`no web-lt in ${account} ${region}`);
  return {
    image: member.defaultImageId(template.launchTemplateId),
    versions: member.launchTemplateVersions(template.launchTemplateId).length,
  };
}

/** Publishes r<revision> on a first stack that `breaks`, then restarts over the same folder. */
async function interrupted(
  dir: string,
  revision: number,
  breaks: (stack: LocalStack) => void,
): Promise<LocalStack> {
  const data = join(dir, 'data');
  const first = stackOver(data, config, { reconcileIntervalMs: 0 });
  await first.start();
  breaks(first);
  const { body, sha256 } = await sampleBody(dir, 'web', revision);
  await first.publish(objectKey('web', `r${revision}`), body, { sha256 });
  await first.settle();
  await first.stop();
  return stackOver(data, config, { reconcileIntervalMs: 0, reconcile: { reportTimeoutMs: 0 } });
}

async function assertLanded(stack: LocalStack, revision: number) {
  const release = (await stack.releases.list('web')).find((r) => r.revision === `r${revision}`);
  for (const region of REGIONS) {
    assert.equal(release?.regions[region]?.state, 'announced', JSON.stringify(release?.regions));
    for (let n = 1; n <= 3; n++) {
      const { image } = templateOf(stack, accountId(n), region);
      assert.equal(image, release?.regions[region]?.imageId, `account ${n} in ${region}`);
    }
  }
  assert.ok(release?.completedAt, 'release complete');
}

describe('Function: reconcile() over a restarted local stack', () => {
  it('registers a completed snapshot whose notification was lost, then announces it; twice changes nothing', {
    timeout: 120_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-reconcile-'));
    // prepare: killed between the snapshot and its notification reaching register
    const stack = await interrupted(dir, 1, (first) => {
      first.registerQueue.send = async () => {
        throw new Error('killed');
      };
    });
    try {
      const before = (await stack.releases.list('web'))[0];
      assert.deepEqual(
        REGIONS.map((r) => before?.regions[r]?.state),
        ['snapshotting', 'snapshotting'],
      );
      // act
      await stack.start();
      await stack.settle();
      const again = await stack.reconcile();
      await stack.settle();
      // assess
      await assertLanded(stack, 1);
      assert.deepEqual(
        { ...again, redelivered: again.redelivered.filter((r) => r.accountId !== MANAGEMENT) },
        { failed: [], registered: [], announced: [], redelivered: [] },
        'only the management account, which has no launch template and so never reports, is told again',
      );
      for (const region of REGIONS) {
        assert.equal((await stack.region(region).images.listByTag('stemcell:stream', 'web')).length, 1);
        assert.equal(templateOf(stack, accountId(1), region).versions, 2);
      }
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('announces an available image that was never announced; twice changes nothing', {
    timeout: 120_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-reconcile-'));
    // prepare: killed in announce (before "Image Ready")
    const stack = await interrupted(dir, 1, (first) => {
      first.organization.describe = async () => {
        throw new Error('killed');
      };
    });
    try {
      const before = (await stack.releases.list('web'))[0];
      assert.deepEqual(
        REGIONS.map((r) => before?.regions[r]?.state),
        ['registering', 'registering'],
      );
      // act
      await stack.start();
      await stack.settle();
      const again = await stack.reconcile();
      await stack.settle();
      // assess
      await assertLanded(stack, 1);
      assert.deepEqual(again.announced, []);
      assert.equal(templateOf(stack, accountId(2), HOME).versions, 2);
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('delivers "Image Ready" again to an account killed mid-update, repairing a version not made default', {
    timeout: 120_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-reconcile-'));
    // prepare: account 2's subscriber dies between creating the version and making it the default
    const broken = accountId(2);
    const stack = await interrupted(dir, 1, (first) => {
      const forAccount = first.members.forAccount.bind(first.members);
      first.members.forAccount = (account, region) => {
        const member = forAccount(account, region);
        if (account === broken)
          member.setDefaultVersion = async () => {
            throw new Error('killed');
          };
        return member;
      };
    });
    try {
      const stale = templateOf(stack, broken, HOME);
      assert.equal(stale.versions, 2, 'the version was created');
      // act
      await stack.start();
      await stack.settle();
      const second = await stack.reconcile();
      await stack.settle();
      // assess: landed, with the version created the first time (no duplicate)
      await assertLanded(stack, 1);
      for (const region of REGIONS) assert.equal(templateOf(stack, broken, region).versions, 2);
      assert.deepEqual(
        second.redelivered.filter((r) => r.accountId !== MANAGEMENT),
        [],
        'every account with a launch template has reported now',
      );
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('brings an account that joins after revision 2 to revision 2 without a new release', {
    timeout: 120_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-reconcile-'));
    const stack = stackOver(join(dir, 'data'), config, { reconcileIntervalMs: 0 });
    try {
      await stack.start();
      for (const revision of [1, 2]) {
        const { body, sha256 } = await sampleBody(dir, 'web', revision);
        await stack.publish(objectKey('web', `r${revision}`), body, { sha256 });
        await stack.settle();
      }
      // prepare: a new account, with a launch template on some older image, enters the organization
      const joiner = accountId(9);
      stack.organization.addAccount({ id: joiner, name: 'late', ou: config.local?.ous[0]?.id ?? '' });
      for (const region of REGIONS)
        stack.members.forAccount(joiner, region).createLaunchTemplate({
          name: 'web-lt',
          imageId: 'ami-00000000000000001',
          tags: { 'stemcell:stream': 'web' },
        });
      // act: the Organizations event (or the schedule) runs sync-subscribers
      await stack.syncSubscribers();
      await stack.settle();
      await stack.syncSubscribers();
      await stack.settle();
      // assess
      const r2 = (await stack.releases.list('web')).find((r) => r.revision === 'r2');
      for (const region of REGIONS) {
        const { image, versions } = templateOf(stack, joiner, region);
        assert.equal(image, r2?.regions[region]?.imageId, region);
        assert.equal(versions, 2, 'one new version, even when synced twice');
      }
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
