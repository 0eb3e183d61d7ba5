// The semantics of issue 3, point 6, each against the whole local flow: real handlers, queues, buses and adapters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BuildJob } from '#events/aws.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { accountId, defaultImage, HOME, OTHER, OU_A, releaseOf, versionCount, withFlow } from './support.ts';

describe('Flow: idempotency', () => {
  it('a duplicate S3 event, a redelivered build job and a repeated bus event create nothing twice', async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare: one release all the way through
      await flow.publish('web', 1);
      const release = await releaseOf(flow, 'web', 1);
      const imagesBefore = flow.stack.region(HOME).images.list().length;
      const snapshotsBefore = flow.stack.region(HOME).snapshots.list().length;
      const versionsBefore = versionCount(flow, accountId(1), HOME, 'web');
      assert.equal(versionsBefore, 2, 'the seed version plus one for the release');

      // act 1: the same S3 "Object Created" envelope again
      const objectCreated = flow.serviceEvents.find((e) => e['detail-type'] === 'Object Created');
      assert.ok(objectCreated);
      flow.stack.region(HOME).bus.emit(objectCreated);
      // act 2: the build job redelivered (a new message, as after a lost delete)
      const job = BuildJob.parse({
        version: 1,
        releaseId: release.releaseId,
        stream: 'web',
        revision: 'r1',
        sequence: release.sequence,
        region: HOME,
        architecture: 'x86_64',
        bootMode: 'none',
        volumeSizeGiB: 1,
        source: release.source,
      });
      await flow.stack.region(HOME).buildQueue.send(JSON.stringify(job), 'web', 'redelivery-1');
      // act 3: "Image Ready" delivered to the member bus again, and the AMI state change again
      const imageReady = flow.events.find((e) => e.detailType === 'Image Ready' && e.detail.region === HOME);
      assert.ok(imageReady);
      await flow.stack
        .memberBus(accountId(1))
        .publish([{ source: 'stemcell', detailType: 'Image Ready', detail: imageReady.detail }]);
      const amiAvailable = flow.serviceEvents.find(
        (e) => e['detail-type'] === 'EC2 AMI State Change' && e.region === HOME,
      );
      assert.ok(amiAvailable);
      flow.stack.region(HOME).bus.emit(amiAvailable);
      await flow.stack.settle();

      // assess
      assert.equal((await flow.stack.releases.list('web')).length, 1, 'one release');
      assert.equal(flow.stack.region(HOME).images.list().length, imagesBefore, 'no second image');
      assert.equal(flow.stack.region(HOME).snapshots.list().length, snapshotsBefore, 'no second snapshot');
      assert.equal(
        versionCount(flow, accountId(1), HOME, 'web'),
        versionsBefore,
        'no second launch template version',
      );
      assert.equal(defaultImage(flow, accountId(1), HOME, 'web'), release.regions[HOME]?.imageId);
    });
  });
});

describe('Flow: ordering', () => {
  it('"Image Ready" of an older release arriving late never moves a launch template backwards', async () => {
    await withFlow({ accounts: 2, streams: ['web'] }, async (flow) => {
      // prepare: releases 1 and 2
      await flow.publish('web', 1);
      await flow.publish('web', 2);
      const r1 = await releaseOf(flow, 'web', 1);
      const r2 = await releaseOf(flow, 'web', 2);
      assert.equal(defaultImage(flow, accountId(2), OTHER, 'web'), r2.regions[OTHER]?.imageId);
      const late = flow.events.find(
        (e) =>
          e.detailType === 'Image Ready' && e.detail.sequence === r1.sequence && e.detail.region === OTHER,
      );
      assert.ok(late);

      // act: release 1's event arrives again, after release 2
      await flow.stack
        .memberBus(accountId(2))
        .publish([{ source: 'stemcell', detailType: 'Image Ready', detail: late.detail }]);
      await flow.stack.settle();

      // assess
      assert.equal(defaultImage(flow, accountId(2), OTHER, 'web'), r2.regions[OTHER]?.imageId);
      const skipped = flow.events.filter(
        (e) =>
          e.detailType === 'Launch Template Updated' &&
          e.detail.outcome === 'skipped-older' &&
          e.detail.accountId === accountId(2),
      );
      assert.equal(skipped.length, 1, 'the subscriber reports that it skipped the older image');
    });
  });
});

describe('Flow: failures', () => {
  it('a failing build retries, lands in the DLQ and emits "Build Failed"; other regions and streams carry on', async () => {
    let attempts = 0;
    await withFlow(
      {
        accounts: 2,
        maxReceiveCount: 3,
        beforeBuild: (job) => {
          if (job.stream === 'web' && job.region === OTHER) {
            attempts++;
            throw new Error('disk on fire');
          }
        },
      },
      async (flow) => {
        // act
        await flow.publish('web', 1);
        await flow.publish('batch', 1);

        // assess: three attempts, then the DLQ, and one "Build Failed" naming the reason
        assert.equal(attempts, 3);
        const dlq = flow.stack.region(OTHER).buildDlq.stats();
        assert.equal(dlq.visible, 1, 'the job is in the DLQ');
        const failed = flow.events.filter((e) => e.detailType === 'Build Failed');
        assert.equal(failed.length, 1);
        assert.equal(failed[0]?.detail.region, OTHER);
        assert.equal(failed[0]?.detail.attempts, 3);
        assert.match(String(failed[0]?.detail.reason), /disk on fire/);
        const web = await releaseOf(flow, 'web', 1);
        assert.equal(web.regions[OTHER]?.state, 'failed');
        assert.equal(web.regions[HOME]?.state, 'announced', 'the other region carried on');
        const batch = await releaseOf(flow, 'batch', 1);
        assert.equal(
          batch.regions[OTHER]?.state,
          'announced',
          'the other stream carried on in the failing region',
        );
        assert.equal(defaultImage(flow, accountId(1), HOME, 'web'), web.regions[HOME]?.imageId);
      },
    );
  });

  it('a rejected archive fails the build at once, loudly, without retries', async () => {
    await withFlow({ accounts: 1, streams: ['web'] }, async (flow) => {
      // prepare: a tarball whose entry climbs out of the root
      const evil = new TarBuilder().dir('etc/').file('../escape', 'x').build();
      // act
      await flow.stack.publish('streams/web/evil.tar', evil);
      await flow.stack.settle();
      // assess
      const failed = flow.events.filter((e) => e.detailType === 'Build Failed');
      assert.equal(failed.length, 2, 'one per region');
      for (const f of failed) {
        assert.match(String(f.detail.reason), /^rejected: \.\.\/escape: /);
        assert.equal(f.detail.attempts, 1);
      }
      assert.equal(flow.stack.region(HOME).images.list().length, 0);
    });
  });
});

describe('Flow: subscribers', () => {
  it('an account added to the organization receives the next release after sync-subscribers; a removed one stops', async () => {
    await withFlow({ accounts: 3, streams: ['web'] }, async (flow) => {
      // prepare
      await flow.publish('web', 1);
      const newcomer = accountId(9);
      flow.stack.organization.addAccount({ id: newcomer, name: 'newcomer', ou: OU_A });
      for (const region of [HOME, OTHER]) {
        flow.stack.members.createLaunchTemplate(newcomer, region, {
          name: 'web-lt',
          imageId: 'ami-00000000000000000',
          tags: { 'stemcell:stream': 'web' },
        });
      }
      const leaver = accountId(2);
      flow.stack.organization.removeAccount(leaver);
      const leaverImage = defaultImage(flow, leaver, HOME, 'web');

      // act
      await flow.stack.syncSubscribers();
      await flow.publish('web', 2);

      // assess
      const r2 = await releaseOf(flow, 'web', 2);
      assert.equal(defaultImage(flow, newcomer, HOME, 'web'), r2.regions[HOME]?.imageId);
      assert.equal(defaultImage(flow, newcomer, OTHER, 'web'), r2.regions[OTHER]?.imageId);
      assert.equal(defaultImage(flow, leaver, HOME, 'web'), leaverImage, 'the removed account got nothing');
      assert.equal(defaultImage(flow, accountId(1), HOME, 'web'), r2.regions[HOME]?.imageId);
    });
  });

  it('12 accounts need 3 rules of at most 5 targets, and adding one account reshuffles nobody', async () => {
    await withFlow({ accounts: 11, streams: ['web'] }, async (flow) => {
      // prepare: 11 members + the management account = 12 accounts
      const subscriberRules = async () => {
        const [bus, ...more] = await flow.stack.fanout.list();
        assert.ok(bus && more.length === 0, 'one fan-out bus holds them');
        assert.deepEqual(
          await flow.stack.centralBus.listRules('stemcell-subscribers'),
          [],
          'none on the central bus',
        );
        return flow.stack.fanout.rules(bus).listRules('stemcell-subscribers');
      };
      const rulesBefore = await subscriberRules();
      assert.equal(rulesBefore.length, 3);
      for (const rule of rulesBefore) assert.ok(rule.targets.length <= 5);
      const placement = new Map(rulesBefore.flatMap((r) => r.targets.map((t) => [t.id, r.name] as const)));
      assert.equal(placement.size, 12);

      // act
      flow.stack.organization.addAccount({ id: accountId(50), name: 'late', ou: OU_A });
      await flow.stack.syncSubscribers();

      // assess
      const rulesAfter = await subscriberRules();
      const after = new Map(rulesAfter.flatMap((r) => r.targets.map((t) => [t.id, r.name] as const)));
      assert.equal(after.size, 13);
      for (const [account, rule] of placement)
        assert.equal(after.get(account), rule, `${account} stayed in ${rule}`);
      assert.ok(after.has(accountId(50)));
    });
  });

  it('moves tagged launch templates, writes the SSM parameter, refreshes ASGs unless a refresh is running', async () => {
    await withFlow(
      { accounts: 2, streams: ['web'], ssmParameter: '/images/{stream}/{region}' },
      async (flow) => {
        // prepare: account 2's ASG in OTHER is already refreshing
        flow.stack.members.forAccount(accountId(2), OTHER).setInstanceRefresh('web-asg', 'InProgress');

        // act
        await flow.publish('web', 1);

        // assess
        const r1 = await releaseOf(flow, 'web', 1);
        for (const account of [accountId(1), accountId(2)]) {
          for (const region of [HOME, OTHER]) {
            const member = flow.stack.members.forAccount(account, region);
            const imageId = r1.regions[region]?.imageId;
            assert.ok(imageId);
            assert.equal(defaultImage(flow, account, region, 'web'), imageId);
            assert.equal(member.getParameter(`/images/web/${region}`)?.value, imageId);
          }
        }
        assert.equal(
          flow.stack.members.forAccount(accountId(1), OTHER).instanceRefreshes('web-asg').length,
          1,
        );
        assert.equal(
          flow.stack.members.forAccount(accountId(2), OTHER).instanceRefreshes('web-asg').length,
          1,
          'only the refresh that was already running',
        );
      },
    );
  });
});

describe('Flow: expire', () => {
  it('keeps the newest N images per stream and region and never one a launch template still uses', async () => {
    await withFlow({ accounts: 2, streams: ['web'], keep: 2 }, async (flow) => {
      // prepare: four releases; then account 1's operator rolls its launch template in HOME back to release 1
      for (const revision of [1, 2, 3, 4]) await flow.publish('web', revision);
      const [r1, r2, r3, r4] = await Promise.all([
        releaseOf(flow, 'web', 1),
        releaseOf(flow, 'web', 2),
        releaseOf(flow, 'web', 3),
        releaseOf(flow, 'web', 4),
      ]);
      const image = (r: typeof r1, region: string) => r.regions[region]?.imageId as string;
      const member = flow.stack.members.forAccount(accountId(1), HOME);
      const template = member.launchTemplateByName('web-lt');
      assert.ok(template);
      const rollback = await member.createLaunchTemplateVersion(template.launchTemplateId, {
        sourceVersion: template.defaultVersionNumber,
        imageId: image(r1, HOME),
        versionDescription: 'operator rollback',
        clientToken: 'rollback-1',
      });
      await member.setDefaultVersion(template.launchTemplateId, rollback.versionNumber);

      // act
      await flow.stack.expire({ graceMs: 0 });

      // assess
      const live = (region: string) =>
        new Set(
          flow.stack
            .region(region)
            .images.list()
            .filter((i) => i.state !== 'deregistered')
            .map((i) => i.imageId),
        );
      assert.deepEqual(live(HOME), new Set([image(r1, HOME), image(r3, HOME), image(r4, HOME)]));
      assert.deepEqual(live(OTHER), new Set([image(r3, OTHER), image(r4, OTHER)]));
      const snapshotOf = (r: typeof r1, region: string) => r.regions[region]?.snapshotId as string;
      assert.equal(
        await flow.stack.region(OTHER).snapshots.get(snapshotOf(r2, OTHER)),
        undefined,
        'its snapshot is gone',
      );
      assert.ok(await flow.stack.region(OTHER).snapshots.get(snapshotOf(r3, OTHER)));
    });
  });
});
