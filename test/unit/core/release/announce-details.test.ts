// What announce does around the rollout waves and the boot gate, and what it keeps of member accounts'
// reports: the paths mutation testing found unchecked (a held image recorded as available, Release Complete
// only once every region is announced and the rollout is over, the best refresh outcome kept, the logs the
// operator reads).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import { announceImage } from '#core/release/announce.ts';
import { completeIfAllAnnounced, imageReadyDetail } from '#core/release/image-ready.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { onRolloutTimer } from '#core/rollout/bake-timer.ts';
import type { LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { RolloutRecord, WaveRecord } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeImaging,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  OU_A,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore, RecordingTimer } from '#test/support/rollout-fakes.ts';

const ACCOUNT = '200000000001';

function setup(
  regions = ['eu-west-1'],
  bootCheck: Record<string, unknown> = { mode: 'none', allowUnverified: true },
) {
  const imaging = new FakeImaging();
  const rollouts = new MemoryRolloutStore();
  const timer = new RecordingTimer();
  const deps = {
    config: testConfig({
      streams: { 'web-base': { regions, sharing: { organization: true }, bootCheck } },
    }),
    clock: new FakeClock(),
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: ACCOUNT, ou: OU_A }]),
    rollouts,
    timer,
    bootChecks: new FakeQueue('boot-checks.fifo'),
    defaultBootCheckMode: 'qemu' as const,
  };
  return { deps, imaging, rollouts, timer };
}

type Setup = ReturnType<typeof setup>;

/** A release whose images are registered and available in `regions`. */
async function registered(s: Setup, regions: string[]) {
  const release = s.deps.releases.seed('web-base', '2026.11.20', regions);
  const images: Record<string, string> = {};
  for (const region of regions) {
    const snapshot = await s.imaging.of(region).snapshots.create('vol-1', {
      description: 'x',
      tags: { ...releaseTags(release), [TAG.sha256]: SHA },
      clientToken: 't',
    });
    const r = await registerSnapshot(s.deps, {
      region,
      snapshotId: snapshot.snapshotId,
      result: 'succeeded',
      cause: '',
    });
    assert.ok(r.outcome === 'registered');
    images[region] = r.imageId;
  }
  return { release, images };
}

const available = (region: string, imageId: string) => ({
  region,
  imageId,
  state: 'available' as const,
  errorMessage: '',
});

function wave(name: string, state: WaveRecord['state'], accounts = [ACCOUNT]): WaveRecord {
  return { name, accounts, bakeMinutes: 10, state, announcedAt: {} };
}

async function putRollout(
  s: Setup,
  releaseId: string,
  waves: WaveRecord[],
  state: RolloutRecord['state'] = 'rolling',
) {
  await s.rollouts.put({ releaseId, stream: 'web-base', state, waves, images: {}, version: 1 }, 0);
}

function report(releaseId: string, overrides: Partial<LaunchTemplateUpdated> = {}): LaunchTemplateUpdated {
  return {
    version: 1,
    stream: 'web-base',
    revision: '2026.11.20',
    sequence: 1,
    releaseId,
    accountId: ACCOUNT,
    region: 'eu-west-1',
    imageId: 'ami-1',
    launchTemplateId: 'lt-1',
    launchTemplateName: 'web',
    versionNumber: 2,
    outcome: 'updated',
    instanceRefresh: 'not-requested',
    updatedAt: '2026-11-20T10:05:00.000Z',
    ...overrides,
  };
}

describe('Function: announceImage()', () => {
  it('logs the announced image with its release, region and image', async () => {
    // prepare
    const s = setup();
    const { release, images } = await registered(s, ['eu-west-1']);
    const imageId = images['eu-west-1'] ?? '';
    // act
    const result = await announceImage(s.deps, available('eu-west-1', imageId));
    // assess
    assert.equal(result.outcome, 'announced');
    assert.deepEqual(s.deps.logger.of('image announced'), {
      releaseId: release.releaseId,
      region: 'eu-west-1',
      imageId,
    });
    assert.deepEqual(s.deps.logger.of('release complete'), { releaseId: release.releaseId });
  });

  it('holds the image of a stream pinned to another revision: recorded available, not announced', async () => {
    // prepare
    const s = setup();
    const { release, images } = await registered(s, ['eu-west-1']);
    const imageId = images['eu-west-1'] ?? '';
    await s.rollouts.setPin('web-base', {
      stream: 'web-base',
      revision: '2026.11.01',
      pinnedAt: '2026-11-20T09:00:00.000Z',
    });
    // act
    const result = await announceImage(s.deps, available('eu-west-1', imageId));
    // assess
    assert.deepEqual(result, { outcome: 'held', releaseId: release.releaseId, imageId, reason: 'pinned' });
    assert.equal(s.deps.events.ofType('Image Ready').length, 0);
    assert.equal(s.deps.events.ofType('Release Complete').length, 0);
    const region = (await s.deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'available');
    assert.equal(region?.imageId, imageId);
    assert.ok(region?.snapshotId?.startsWith('snap-'), 'the snapshot is recorded beside the image');
  });

  it('sends an image behind the boot gate to its check, and says why it will not announce a failed region', async () => {
    // prepare: boot checks on; one region waiting for its image, one already failed
    const s = setup(['eu-west-1', 'us-east-1'], { mode: 'qemu', timeoutSeconds: 60 });
    const { release, images } = await registered(s, ['eu-west-1', 'us-east-1']);
    await s.deps.releases.updateRegion(release.releaseId, 'us-east-1', {
      state: 'failed',
      reason: 'boot: kernel panic',
    });
    // act
    const checking = await announceImage(s.deps, available('eu-west-1', images['eu-west-1'] ?? ''));
    const closed = await announceImage(s.deps, available('us-east-1', images['us-east-1'] ?? ''));
    // assess
    assert.deepEqual(checking, {
      outcome: 'boot-checking',
      releaseId: release.releaseId,
      imageId: images['eu-west-1'],
    });
    assert.deepEqual(closed, {
      outcome: 'ignored',
      reason: `not announcing ${images['us-east-1']}: boot: kernel panic`,
    });
    assert.equal(s.deps.events.ofType('Image Ready').length, 0);
  });
});

describe('Function: completeIfAllAnnounced()', () => {
  it('publishes Release Complete only once every region is announced', async () => {
    // prepare
    const s = setup(['eu-west-1', 'us-east-1']);
    const { images } = await registered(s, ['eu-west-1', 'us-east-1']);
    // act
    const first = await announceImage(s.deps, available('eu-west-1', images['eu-west-1'] ?? ''));
    const second = await announceImage(s.deps, available('us-east-1', images['us-east-1'] ?? ''));
    // assess
    assert.ok(first.outcome === 'announced' && second.outcome === 'announced');
    assert.equal(first.releaseComplete, false, 'us-east-1 is not announced yet');
    assert.equal(second.releaseComplete, true);
    assert.equal(s.deps.events.ofType('Release Complete').length, 1);
  });

  it('waits for the rollout: every region announced but a wave still baking is not complete', async () => {
    // prepare
    const s = setup();
    const { release, images } = await registered(s, ['eu-west-1']);
    await announceImage(s.deps, available('eu-west-1', images['eu-west-1'] ?? ''));
    const next = s.deps.releases.seed('web-base', '2026.11.21', ['eu-west-1']);
    await s.deps.releases.updateRegion(next.releaseId, 'eu-west-1', { state: 'announced', imageId: 'ami-2' });
    await putRollout(s, next.releaseId, [wave('canary', 'baking')]);
    // act
    const complete = await completeIfAllAnnounced(s.deps, next.releaseId);
    // assess
    assert.equal(complete, false);
    assert.equal((await s.deps.releases.get(next.releaseId))?.completedAt, undefined);
    assert.deepEqual(
      s.deps.events.ofType('Release Complete').map((e) => (e.detail as { releaseId: string }).releaseId),
      [release.releaseId],
    );
  });

  it('never completes a release that has no region', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', []);
    // act
    const complete = await completeIfAllAnnounced(s.deps, release.releaseId);
    // assess
    assert.equal(complete, false);
    assert.equal((await s.deps.releases.get(release.releaseId))?.completedAt, undefined);
    assert.equal(s.deps.events.ofType('Release Complete').length, 0);
  });

  it('tells nothing when another caller marked the release complete first', async () => {
    // prepare: a store whose markComplete loses the race
    const s = setup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    await s.deps.releases.updateRegion(release.releaseId, 'eu-west-1', {
      state: 'announced',
      imageId: 'ami-1',
    });
    s.deps.releases.markComplete = async () => false;
    // act
    const complete = await completeIfAllAnnounced(s.deps, release.releaseId);
    // assess
    assert.equal(complete, false);
    assert.equal(s.deps.events.ofType('Release Complete').length, 0);
  });
});

describe('Function: onRolloutTimer()', () => {
  async function announcedRelease(s: Setup) {
    const release = s.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    await s.deps.releases.updateRegion(release.releaseId, 'eu-west-1', {
      state: 'announced',
      imageId: 'ami-1',
    });
    return release;
  }

  it('completes the release when the last wave has baked healthy', async () => {
    // prepare
    const s = setup();
    const release = await announcedRelease(s);
    await putRollout(s, release.releaseId, [wave('canary', 'healthy'), wave('rest', 'baking')]);
    // act
    const result = await onRolloutTimer(s.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: release.releaseId,
      wave: 1,
    });
    // assess
    assert.deepEqual(result, { outcome: 'rollout-complete', releaseComplete: true });
    assert.equal(s.deps.events.ofType('Release Complete').length, 1);
  });

  it('does not complete the release when a wave before the last has baked', async () => {
    // prepare
    const s = setup();
    const release = await announcedRelease(s);
    await putRollout(s, release.releaseId, [
      wave('canary', 'baking'),
      wave('rest', 'pending', ['200000000002']),
    ]);
    // act
    const result = await onRolloutTimer(s.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: release.releaseId,
      wave: 0,
    });
    // assess
    assert.equal(result.outcome, 'next-wave');
    assert.equal(result.releaseComplete, false);
    assert.equal(s.deps.events.ofType('Release Complete').length, 0);
    assert.equal((await s.deps.releases.get(release.releaseId))?.completedAt, undefined);
  });
});

describe('Function: imageReadyDetail()', () => {
  it('refuses an unencrypted image, naming it and its region', async () => {
    // prepare
    const s = setup();
    const { release, images } = await registered(s, ['eu-west-1']);
    const image = await s.imaging.of('eu-west-1').images.get(images['eu-west-1'] ?? '');
    assert.ok(image);
    // act + assess
    assert.throws(
      () => imageReadyDetail(release, 'eu-west-1', { ...image, encrypted: false }),
      new RegExp(`^Error: image ${image.imageId} in eu-west-1 is not encrypted: refusing to announce$`),
    );
    assert.equal(imageReadyDetail(release, 'eu-west-1', image).encrypted, true);
  });
});

describe('Function: recordLaunchTemplateUpdate()', () => {
  it('counts the reports and moves up to a better outcome', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    await recordLaunchTemplateUpdate(s.deps, report(release.releaseId, { outcome: 'skipped-older' }));
    // act
    const record = await recordLaunchTemplateUpdate(
      s.deps,
      report(release.releaseId, { outcome: 'updated' }),
    );
    // assess
    assert.equal(record?.outcome, 'updated');
    assert.equal(record?.launchTemplates, 2);
    assert.deepEqual(
      (await s.deps.releases.get(release.releaseId))?.accounts[`${ACCOUNT}/eu-west-1`],
      record,
    );
  });

  it('keeps the worst instance refresh reported, whichever came first', async () => {
    // prepare
    const s = setup();
    const early = s.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    const late = s.deps.releases.seed('web-base', '2026.11.21', ['eu-west-1']);
    // act
    await recordLaunchTemplateUpdate(s.deps, report(early.releaseId, { instanceRefresh: 'failed' }));
    const failedFirst = await recordLaunchTemplateUpdate(
      s.deps,
      report(early.releaseId, { instanceRefresh: 'started' }),
    );
    await recordLaunchTemplateUpdate(s.deps, report(late.releaseId, { instanceRefresh: 'started' }));
    const failedLast = await recordLaunchTemplateUpdate(
      s.deps,
      report(late.releaseId, { instanceRefresh: 'failed' }),
    );
    // assess
    assert.equal(failedFirst?.instanceRefresh, 'failed');
    assert.equal(failedLast?.instanceRefresh, 'failed');
  });

  it('halts a rolling release when an account of its wave reports a failed refresh', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    await putRollout(s, release.releaseId, [wave('canary', 'baking')]);
    // act
    await recordLaunchTemplateUpdate(s.deps, report(release.releaseId, { instanceRefresh: 'failed' }));
    // assess
    assert.equal((await s.rollouts.get(release.releaseId))?.state, 'halted');
    assert.equal(s.deps.events.ofType('Release Halted').length, 1);
  });

  it('warns about a report for an unknown release, naming the release and account', async () => {
    // prepare
    const s = setup();
    // act
    const record = await recordLaunchTemplateUpdate(s.deps, report('web-base#00000009'));
    // assess
    assert.equal(record, undefined);
    assert.deepEqual(s.deps.logger.of('launch template update for an unknown release'), {
      releaseId: 'web-base#00000009',
      accountId: ACCOUNT,
    });
  });
});
