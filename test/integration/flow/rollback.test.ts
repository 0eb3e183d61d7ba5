// Rollback and pin against the whole local flow: a rollback is a new release with a higher sequence pointing at
// the earlier revision's images; every account follows it forward; regions whose image is gone are rebuilt;
// expire keeps rolled-back-to and pinned images; a pin holds new revisions back until unpin.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sequenceFromVersionDescription } from '#core/model/naming.ts';
import { pin, rollback, unpin } from '#core/rollout/rollback.ts';
import { accountId, defaultImage, type Flow, HOME, OTHER, releaseOf, startFlow } from './support.ts';

async function withFlow(body: (flow: Flow) => Promise<void>): Promise<void> {
  const flow = await startFlow({ accounts: 3, streams: ['web'], keep: 1 });
  try {
    await body(flow);
  } finally {
    await flow.close();
  }
}

const rollbackDeps = (flow: Flow) => ({
  ...flow.stack.announceDeps(),
  rollouts: flow.stack.rollouts,
  buildQueue: (region: string) => flow.stack.region(region).buildQueue,
});

function defaultSequence(flow: Flow, account: string, region: string): number | undefined {
  const member = flow.stack.members.forAccount(account, region);
  const template = member.launchTemplateByName('web-lt');
  assert.ok(template);
  const versions = member.launchTemplateVersions(template.launchTemplateId);
  const current = versions.find(
    (v) => v.versionNumber === member.launchTemplateByName('web-lt')?.defaultVersionNumber,
  );
  return sequenceFromVersionDescription(current?.versionDescription, 'web');
}

const ACCOUNTS = [accountId(1), accountId(2), accountId(3)];

describe('Flow: rollback', () => {
  it('moves every account to the earlier images with a higher sequence, and expire keeps those images', async () => {
    await withFlow(async (flow) => {
      // prepare: revisions 1 and 2 everywhere
      await flow.publish('web', 1);
      await flow.publish('web', 2);
      const r1 = await releaseOf(flow, 'web', 1);
      const r2 = await releaseOf(flow, 'web', 2);
      // act
      const result = await rollback(rollbackDeps(flow), 'web', 'r1');
      await flow.stack.settle();
      // assess: a new release, higher sequence, pointing at r1's images, no rebuild
      assert.equal(result.release.revision, 'r1-rollback-1');
      assert.ok(result.release.sequence > r2.sequence);
      assert.deepEqual(result.rebuilt, []);
      assert.deepEqual(
        result.reused.map((r) => r.imageId).sort(),
        [r1.regions[HOME]?.imageId, r1.regions[OTHER]?.imageId].sort(),
      );
      for (const account of ACCOUNTS) {
        for (const region of [HOME, OTHER]) {
          assert.equal(defaultImage(flow, account, region, 'web'), r1.regions[region]?.imageId);
          assert.equal(
            defaultSequence(flow, account, region),
            result.release.sequence,
            'forward, not backwards',
          );
        }
      }
      const imageReady = flow.events.filter(
        (e) => e.detailType === 'Image Ready' && e.detail.releaseId === result.release.releaseId,
      );
      assert.equal(imageReady.length, 2);
      assert.ok(imageReady.every((e) => e.detail.rollbackOf === 'r1'));
      assert.ok((await releaseOf(flow, 'web', 1)).sequence < result.release.sequence);
      const rollbackRelease = (await flow.stack.releases.list('web')).find(
        (r) => r.revision === 'r1-rollback-1',
      );
      assert.ok(rollbackRelease?.completedAt, 'the rollback release completes');

      // act 2: every account moves on to r3 (so nothing uses r1's images), then expire with keep 1
      await flow.publish('web', 3);
      const result2 = await flow.stack.expire();
      // assess 2: r2 is expired (deprecated, or deregistered once its grace is over), r1 (rolled back to) is not
      for (const region of [HOME, OTHER]) {
        const kept = await flow.stack.region(region).images.get(r1.regions[region]?.imageId ?? '');
        assert.equal(kept?.state, 'available');
        assert.equal(kept?.deprecatedAt, undefined, 'the rolled-back-to image is not even deprecated');
        const gone = await flow.stack.region(region).images.get(r2.regions[region]?.imageId ?? '');
        assert.ok(gone?.state === 'deregistered' || gone?.deprecatedAt, `r2 in ${region} is expired`);
      }
      assert.ok(JSON.stringify(result2).includes('rolled back to'));
    });
  });

  it('rebuilds the regions whose earlier image is gone, and says so', async () => {
    await withFlow(async (flow) => {
      await flow.publish('web', 1);
      await flow.publish('web', 2);
      const r1 = await releaseOf(flow, 'web', 1);
      await flow.stack.region(OTHER).images.deregister(r1.regions[OTHER]?.imageId ?? '');
      // act
      const result = await rollback(rollbackDeps(flow), 'web', 'r1');
      await flow.stack.settle();
      // assess
      assert.deepEqual(
        result.rebuilt.map((r) => r.region),
        [OTHER],
      );
      assert.match(result.rebuilt[0]?.reason ?? '', /deregistered/);
      const release = (await flow.stack.releases.list('web')).find(
        (r) => r.releaseId === result.release.releaseId,
      );
      const rebuiltImage = release?.regions[OTHER]?.imageId;
      assert.ok(
        rebuiltImage && rebuiltImage !== r1.regions[OTHER]?.imageId,
        'a new image in the rebuilt region',
      );
      for (const account of ACCOUNTS) {
        assert.equal(defaultImage(flow, account, HOME, 'web'), r1.regions[HOME]?.imageId);
        assert.equal(defaultImage(flow, account, OTHER, 'web'), rebuiltImage);
      }
    });
  });
});

describe('Flow: pin', () => {
  it('holds new revisions back (built, not announced) until unpin, and expire keeps the pinned image', async () => {
    await withFlow(async (flow) => {
      await flow.publish('web', 1);
      const r1 = await releaseOf(flow, 'web', 1);
      await pin(rollbackDeps(flow), 'web', 'r1');
      // act
      await flow.publish('web', 2);
      await flow.publish('web', 3);
      const held = await releaseOf(flow, 'web', 3);
      // assess: built and available, not announced; every account stays on r1
      for (const region of [HOME, OTHER]) {
        assert.equal(held.regions[region]?.state, 'available');
        for (const account of ACCOUNTS)
          assert.equal(defaultImage(flow, account, region, 'web'), r1.regions[region]?.imageId);
      }
      const expired = await flow.stack.expire();
      assert.ok(JSON.stringify(expired).includes('pinned'));
      for (const region of [HOME, OTHER])
        assert.equal(
          (await flow.stack.region(region).images.get(r1.regions[region]?.imageId ?? ''))?.state,
          'available',
        );
      // act 2
      const released = await unpin(rollbackDeps(flow), 'web');
      await flow.stack.settle();
      // assess 2
      assert.deepEqual(released.announced?.regions.sort(), [HOME, OTHER].sort());
      for (const region of [HOME, OTHER])
        for (const account of ACCOUNTS)
          assert.equal(defaultImage(flow, account, region, 'web'), held.regions[region]?.imageId);
    });
  });
});
