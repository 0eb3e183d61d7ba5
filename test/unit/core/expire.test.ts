import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExpireDeps } from '#core/deps.ts';
import { expireImages } from '#core/expire.ts';
import { releaseId, releaseTags } from '#core/naming.ts';
import {
  FakeClock,
  FakeImaging,
  FakeMembers,
  FakeOrganization,
  OU_A,
  OU_B,
  RecordingLogger,
  testConfig,
} from './fakes.ts';

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
    const result = await expireImages(deps);
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
    const result = await expireImages(deps);
    // assess
    const deregistered = imaging.of('eu-west-1').images.deregistered;
    assert.equal(deregistered.includes(eu[1] as string), false);
    assert.deepEqual(deregistered.sort(), [eu[0], eu[2]].sort());
    assert.deepEqual(result.keptInUse, [
      { stream: 'web-base', region: 'eu-west-1', imageId: eu[1], accounts: ['200000000002'] },
    ]);
  });

  it('never expires the newest image, and a second run changes nothing', async () => {
    // prepare
    const { deps, imaging } = setup(1);
    const eu = await images(imaging, 'eu-west-1', 3);
    // act
    await expireImages(deps);
    const second = await expireImages(deps);
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
});
