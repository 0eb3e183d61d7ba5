import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExpireDeps } from '#core/deps.ts';
import { expireImages } from '#core/images/expire.ts';
import { releaseId, releaseTags } from '#core/model/naming.ts';
import {
  FakeClock,
  FakeImaging,
  FakeMembers,
  FakeOrganization,
  OU_A,
  OU_B,
  RecordingLogger,
  testConfig,
} from '#test/support/core-fakes.ts';

function setup(keep = 2) {
  const imaging = new FakeImaging();
  const members = new FakeMembers();
  const organization = new FakeOrganization([
    { id: '200000000001', ou: OU_A },
    { id: '200000000002', ou: OU_B },
  ]);
  const deps = {
    config: testConfig({ streams: { 'web-base': { regions: ['eu-west-1', 'us-east-1'], keep } } }),
    clock: new FakeClock('2026-12-01T00:00:00.000Z'),
    logger: new RecordingLogger(),
    imaging: imaging.of,
    organization,
    members,
  } satisfies ExpireDeps;
  return { deps, imaging, members };
}

/** Registers sequences 1..n of web-base in a region; returns imageIds by sequence. */
async function images(imaging: FakeImaging, region: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let sequence = 1; sequence <= n; sequence++) {
    const { snapshots, images } = imaging.of(region);
    const release = {
      stream: 'web-base',
      revision: `r${sequence}`,
      sequence,
      releaseId: releaseId('web-base', sequence),
    };
    const snapshot = await snapshots.create('vol-1', {
      description: '',
      tags: releaseTags(release),
      clientToken: '',
    });
    const { imageId } = await images.register({
      name: `stemcell/web-base/r${sequence}`,
      description: '',
      snapshotId: snapshot.snapshotId,
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      rootDeviceName: '/dev/xvda',
      tags: releaseTags(release),
      clientToken: '',
    });
    ids.push(imageId);
  }
  return ids;
}

describe('Function: expireImages()', () => {
  it('keeps the newest N per region by sequence; deprecates, deregisters and deletes the snapshots of the rest', async () => {
    // prepare
    const { deps, imaging } = setup(2);
    const eu = await images(imaging, 'eu-west-1', 5);
    const us = await images(imaging, 'us-east-1', 2);
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    const euImages = imaging.of('eu-west-1').images;
    assert.deepEqual(euImages.deregistered.sort(), [eu[0], eu[1], eu[2]].sort());
    assert.deepEqual(euImages.deprecated.sort(), [eu[0], eu[1], eu[2]].sort());
    assert.equal(imaging.of('eu-west-1').snapshots.deleted.length, 3);
    assert.deepEqual(imaging.of('us-east-1').images.deregistered, [], `${us.length} images are within keep`);
    assert.deepEqual(result.expired.map((e) => e.sequence).sort(), [1, 2, 3]);
  });

  it('never expires an image a launch template default version uses in any account', async () => {
    // prepare
    const { deps, imaging, members } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 4);
    members.forAccount('200000000002', 'eu-west-1').addTemplate('web', 'web-base', eu[1]);
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    const deregistered = imaging.of('eu-west-1').images.deregistered;
    assert.equal(deregistered.includes(eu[1] as string), false);
    assert.deepEqual(deregistered.sort(), [eu[0], eu[2]].sort());
    assert.deepEqual(result.keptInUse, [
      {
        stream: 'web-base',
        region: 'eu-west-1',
        imageId: eu[1],
        accounts: ['200000000002'],
        uses: ['200000000002 launch template web default'],
      },
    ]);
  });

  it('never expires the newest image, and a second run changes nothing', async () => {
    // prepare
    const { deps, imaging } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 3);
    // act
    await expireImages(deps, { graceMs: 0 });
    const second = await expireImages(deps, { graceMs: 0 });
    // assess
    assert.equal(imaging.of('eu-west-1').images.deregistered.includes(eu[2] as string), false);
    assert.equal(second.expired.length, 0);
  });

  it('with a grace period, deprecates first and deregisters on a later run', async () => {
    // prepare
    const { deps, imaging } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 2);
    // act
    const first = await expireImages(deps, { graceMs: 3_600_000 });
    deps.clock.advance(1_800_000);
    const early = await expireImages(deps, { graceMs: 3_600_000 });
    deps.clock.advance(1_800_000);
    const late = await expireImages(deps, { graceMs: 3_600_000 });
    // assess
    assert.deepEqual(
      first.expired.map((e) => [e.imageId, e.action]),
      [[eu[0], 'deprecated']],
    );
    assert.equal(early.expired.length, 0);
    assert.deepEqual(
      late.expired.map((e) => [e.imageId, e.action]),
      [[eu[0], 'deregistered']],
    );
  });

  it('counts every version an Auto Scaling group references ($Default, $Latest, explicit), tagged or not', async () => {
    // prepare: 6 images, keep 1; three untagged templates used by groups, one running instance
    const { deps, imaging, members } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 6);
    const account = members.forAccount('200000000001', 'eu-west-1');
    const byDefault = account.addTemplate('plain', 'not-stemcell', eu[0]);
    byDefault.tags = {};
    account.addGroup('asg-default', byDefault, false);
    const latest = account.addTemplate('latest', 'other', eu[5]);
    await account.createLaunchTemplateVersion(latest.launchTemplateId, {
      sourceVersion: 1,
      imageId: eu[1] as string,
      versionDescription: 'by hand',
      clientToken: 't1',
    });
    account.addGroup('asg-latest', latest, false, '$Latest');
    const pinned = account.addTemplate('pinned', 'other', eu[2]);
    await account.createLaunchTemplateVersion(pinned.launchTemplateId, {
      sourceVersion: 1,
      imageId: eu[5] as string,
      versionDescription: 'newer, not used',
      clientToken: 't2',
    });
    await account.setDefaultVersion(pinned.launchTemplateId, 2);
    account.addGroup('asg-pinned', pinned, false, '1');
    members.forAccount('200000000002', 'eu-west-1').instanceImages = [eu[3] as string];
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess: only eu[4] is free to go
    assert.deepEqual(imaging.of('eu-west-1').images.deregistered, [eu[4]]);
    const uses = Object.fromEntries(result.keptInUse.map((k) => [k.imageId, k.uses]));
    assert.deepEqual(uses[eu[0] as string], [
      `200000000001 asg asg-default → ${byDefault.launchTemplateId} $Default`,
    ]);
    assert.deepEqual(uses[eu[1] as string], [
      `200000000001 asg asg-latest → ${latest.launchTemplateId} $Latest`,
    ]);
    assert.deepEqual(uses[eu[2] as string], [`200000000001 asg asg-pinned → ${pinned.launchTemplateId} 1`]);
    assert.deepEqual(uses[eu[3] as string], ['200000000002 instance']);
  });

  it('waits 7 days after deprecation by default, and deletes the snapshot only with the deregistration', async () => {
    // prepare
    const { deps, imaging } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 2);
    const { images: euImages, snapshots } = imaging.of('eu-west-1');
    // act + assess
    const first = await expireImages(deps);
    assert.deepEqual(
      first.expired.map((e) => [e.imageId, e.action, e.deregisterAfter]),
      [[eu[0], 'deprecated', '2026-12-08T00:00:00.000Z']],
    );
    assert.deepEqual(euImages.deregistered, []);
    assert.deepEqual(snapshots.deleted, [], 'no snapshot goes while its image is registered');
    deps.clock.advance(7 * 24 * 3_600_000 - 1);
    const early = await expireImages(deps);
    assert.deepEqual(
      early.waiting.map((w) => w.imageId),
      [eu[0]],
    );
    assert.deepEqual(euImages.deregistered, []);
    deps.clock.advance(1);
    const due = await expireImages(deps);
    assert.deepEqual(
      due.expired.map((e) => [e.imageId, e.action]),
      [[eu[0], 'deregistered']],
    );
    assert.deepEqual(euImages.deregistered, [eu[0]]);
    assert.equal(snapshots.deleted.length, 1);
  });

  it('in a dry run reports what it would do and changes nothing', async () => {
    const { deps, imaging } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 3);
    const result = await expireImages(deps, { graceMs: 0, dryRun: true });
    assert.equal(result.dryRun, true);
    assert.deepEqual(result.expired.map((e) => e.imageId).sort(), [eu[0], eu[1]].sort());
    assert.deepEqual(imaging.of('eu-west-1').images.deprecated, []);
    assert.deepEqual(imaging.of('eu-west-1').images.deregistered, []);
    assert.deepEqual(imaging.of('eu-west-1').snapshots.deleted, []);
  });
});
