import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import { amiStateChangeFromEvent, announceImage } from '#core/release/announce.ts';
import { buildFailedEvent, recordBuildFailure } from '#core/release/build-failure.ts';
import { registerSnapshot, snapshotNotificationFromEvent } from '#core/release/register.ts';
import { AmiStateChangeEvent, SnapshotNotificationEvent } from '#events/aws.ts';
import { sample } from '#events/samples/index.ts';
import { BuildFailedDetail, ImageReadyDetail, ReleaseCompleteDetail } from '#events/stemcell.ts';
import type { Release } from '#ports';
import { type FakeImaging, imagingSetup, OU_A, SHA, testConfig } from '#test/support/core-fakes.ts';

async function snapshotFor(imaging: FakeImaging, release: Release, region: string, sha = true) {
  return imaging.of(region).snapshots.create('vol-1', {
    description: 'x',
    tags: { ...releaseTags(release), ...(sha ? { [TAG.sha256]: SHA } : {}) },
    clientToken: 't',
  });
}

const succeeded = (region: string, snapshotId: string) => ({
  region,
  snapshotId,
  result: 'succeeded' as const,
  cause: '',
});
const available = (region: string, imageId: string) => ({
  region,
  imageId,
  state: 'available' as const,
  errorMessage: '',
});

describe('Function: registerSnapshot()', () => {
  it('registers an encrypted image named after the release, tagged with the release', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    const snapshot = await snapshotFor(imaging, release, 'eu-west-1');
    // act
    const result = await registerSnapshot(deps, succeeded('eu-west-1', snapshot.snapshotId));
    // assess
    assert.equal(result.outcome, 'registered');
    const image = [...imaging.of('eu-west-1').images.images.values()][0];
    assert.equal(image?.name, 'stemcell/web-base/2026.11.20');
    assert.equal(image?.snapshotId, snapshot.snapshotId);
    assert.equal(image?.tags[TAG.release], release.releaseId);
    assert.equal(image?.tags[TAG.sequence], '1');
    assert.equal(image?.tags[TAG.sha256], SHA);
    const region = (await deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'registering');
    assert.equal(region?.imageId, image?.imageId);
    assert.equal(region?.deltaBytes, 4096);
  });

  it('a redelivered notification registers no second image', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    const snapshot = await snapshotFor(imaging, release, 'eu-west-1');
    const first = await registerSnapshot(deps, succeeded('eu-west-1', snapshot.snapshotId));
    // act
    const second = await registerSnapshot(deps, succeeded('eu-west-1', snapshot.snapshotId));
    // assess
    assert.equal(second.outcome, 'already-registered');
    assert.equal(imaging.of('eu-west-1').images.images.size, 1);
    assert.equal(first.outcome === 'registered' && second.outcome === 'already-registered', true);
  });

  it('does not move an announced region back to registering', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    const snapshot = await snapshotFor(imaging, release, 'eu-west-1');
    await deps.releases.updateRegion(release.releaseId, 'eu-west-1', { state: 'announced' });
    // act
    await registerSnapshot(deps, succeeded('eu-west-1', snapshot.snapshotId));
    // assess
    assert.equal((await deps.releases.get(release.releaseId))?.regions['eu-west-1']?.state, 'announced');
  });

  it('ignores snapshots that are not stemcell releases', async () => {
    const { deps, imaging } = imagingSetup();
    const foreign = await imaging.of('eu-west-1').snapshots.create('vol-9', {
      description: 'backup',
      tags: { Name: 'nightly' },
      clientToken: 'x',
    });
    const result = await registerSnapshot(deps, succeeded('eu-west-1', foreign.snapshotId));
    assert.equal(result.outcome, 'ignored');
    assert.equal(imaging.of('eu-west-1').images.registerCalls, 0);
  });

  it('a failed snapshot records the failure and publishes Build Failed once', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
    const snapshot = await snapshotFor(imaging, release, 'eu-west-1');
    const failed = {
      region: 'eu-west-1',
      snapshotId: snapshot.snapshotId,
      result: 'failed' as const,
      cause: 'boom',
    };
    // act
    const result = await registerSnapshot(deps, failed);
    await registerSnapshot(deps, failed);
    // assess
    assert.equal(result.outcome, 'failed');
    const region = (await deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'failed');
    assert.match(region?.reason ?? '', /boom/);
    const events = deps.events.ofType('Build Failed');
    assert.equal(events.length, 1);
    assert.match(BuildFailedDetail.parse(events[0]?.detail).reason, /boom/);
  });

  it('reads region and snapshot id from the EBS sample (snapshot_id is an ARN)', () => {
    const n = snapshotNotificationFromEvent(
      SnapshotNotificationEvent.parse(sample('ebs-snapshot-notification')),
    );
    assert.deepEqual(n, {
      region: 'eu-west-1',
      snapshotId: 'snap-0123456789abcdef0',
      result: 'succeeded',
      cause: '',
    });
  });
});

describe('Function: announceImage()', () => {
  async function registered(
    deps: ReturnType<typeof imagingSetup>['deps'],
    imaging: FakeImaging,
    regions: string[],
  ) {
    const release = deps.releases.seed('web-base', '2026.11.20', regions);
    const images: Record<string, string> = {};
    for (const region of regions) {
      const snapshot = await snapshotFor(imaging, release, region);
      const r = await registerSnapshot(deps, succeeded(region, snapshot.snapshotId));
      assert.ok(r.outcome === 'registered');
      images[region] = r.imageId;
    }
    return { release, images };
  }

  it('shares with the organization and publishes a valid Image Ready with every field', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const { release, images } = await registered(deps, imaging, ['eu-west-1', 'us-east-1']);
    const imageId = images['eu-west-1'] as string;
    // act
    const result = await announceImage(deps, available('eu-west-1', imageId));
    // assess
    assert.equal(result.outcome, 'announced');
    assert.deepEqual(imaging.of('eu-west-1').images.shares, [
      {
        imageId,
        organizationArns: [`arn:aws:organizations::111111111111:organization/o-abcdef1234`],
        ouArns: [],
      },
    ]);
    const ready = deps.events.ofType('Image Ready');
    assert.equal(ready.length, 1);
    const detail = ImageReadyDetail.parse(ready[0]?.detail);
    assert.equal(detail.imageId, imageId);
    assert.equal(detail.releaseId, release.releaseId);
    assert.equal(detail.imageName, 'stemcell/web-base/2026.11.20');
    assert.equal(detail.source.sha256, SHA);
    assert.equal(detail.encrypted, true);
    assert.equal((await deps.releases.get(release.releaseId))?.regions['eu-west-1']?.state, 'announced');
    assert.equal(deps.events.ofType('Release Complete').length, 0);
  });

  it('shares with the configured OUs', async () => {
    // prepare
    const config = testConfig({
      streams: {
        'web-base': {
          regions: ['eu-west-1'],
          sharing: { ous: [OU_A] },
          bootCheck: { mode: 'none', allowUnverified: true },
          subscribers: { scope: { ous: [OU_A] } },
        },
      },
    });
    const { deps, imaging } = imagingSetup(config);
    const { images } = await registered(deps, imaging, ['eu-west-1']);
    // act
    await announceImage(deps, available('eu-west-1', images['eu-west-1'] as string));
    // assess
    assert.deepEqual(imaging.of('eu-west-1').images.shares[0]?.ouArns, [
      `arn:aws:organizations::111111111111:ou/o-abcdef1234/${OU_A}`,
    ]);
    assert.deepEqual(imaging.of('eu-west-1').images.shares[0]?.organizationArns, []);
  });

  it('reads the launch permissions back and announces nothing while they are missing', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const { release, images } = await registered(deps, imaging, ['eu-west-1']);
    imaging.of('eu-west-1').images.dropShares = true;
    // act + assess
    await assert.rejects(announceImage(deps, available('eu-west-1', images['eu-west-1'] as string)), {
      name: 'LaunchPermissionError',
      message:
        /arn:aws:organizations::111111111111:organization\/o-abcdef1234 were set but are not on the image/,
    });
    assert.equal(deps.events.ofType('Image Ready').length, 0);
    assert.notEqual((await deps.releases.get(release.releaseId))?.regions['eu-west-1']?.state, 'announced');
  });

  it('shares with the subscriber scope when the stream sets no sharing', async () => {
    // prepare
    const config = testConfig({
      streams: {
        'web-base': {
          regions: ['eu-west-1'],
          subscribers: { scope: { ous: [OU_A] } },
          bootCheck: { mode: 'none', allowUnverified: true },
        },
      },
    });
    const { deps, imaging } = imagingSetup(config);
    const { images } = await registered(deps, imaging, ['eu-west-1']);
    // act
    await announceImage(deps, available('eu-west-1', images['eu-west-1'] as string));
    // assess
    const image = await imaging.of('eu-west-1').images.get(images['eu-west-1'] as string);
    assert.deepEqual(image?.sharedWith.ouArns, [
      `arn:aws:organizations::111111111111:ou/o-abcdef1234/${OU_A}`,
    ]);
    assert.deepEqual(image?.sharedWith.organizationArns, []);
  });

  it('a retried event publishes Image Ready once; Release Complete once all regions are announced', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const { release, images } = await registered(deps, imaging, ['eu-west-1', 'us-east-1']);
    // act
    await announceImage(deps, available('eu-west-1', images['eu-west-1'] as string));
    await announceImage(deps, available('eu-west-1', images['eu-west-1'] as string));
    const last = await announceImage(deps, available('us-east-1', images['us-east-1'] as string));
    const retry = await announceImage(deps, available('us-east-1', images['us-east-1'] as string));
    // assess
    assert.equal(deps.events.ofType('Image Ready').length, 2);
    assert.ok(last.outcome === 'announced' && last.releaseComplete);
    assert.ok(retry.outcome === 'already-announced' && !retry.releaseComplete);
    const complete = deps.events.ofType('Release Complete');
    assert.equal(complete.length, 1);
    const detail = ReleaseCompleteDetail.parse(complete[0]?.detail);
    assert.deepEqual(
      detail.images.map((i) => i.region),
      ['eu-west-1', 'us-east-1'],
    );
    assert.ok((await deps.releases.get(release.releaseId))?.completedAt);
  });

  it('a retry after a crash before publishing still publishes Image Ready', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const { images } = await registered(deps, imaging, ['eu-west-1']);
    deps.events.failNext = 1;
    await assert.rejects(announceImage(deps, available('eu-west-1', images['eu-west-1'] as string)));
    // act
    const retry = await announceImage(deps, available('eu-west-1', images['eu-west-1'] as string));
    // assess
    assert.equal(retry.outcome, 'announced');
    assert.equal(deps.events.ofType('Image Ready').length, 1);
  });

  it('takes the SHA-256 from the image tag when the release has none', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '1', ['eu-west-1'], undefined);
    const snapshot = await snapshotFor(imaging, release, 'eu-west-1', true);
    const r = await registerSnapshot(deps, succeeded('eu-west-1', snapshot.snapshotId));
    assert.ok(r.outcome === 'registered');
    // act
    await announceImage(deps, available('eu-west-1', r.imageId));
    // assess
    assert.equal(ImageReadyDetail.parse(deps.events.ofType('Image Ready')[0]?.detail).source.sha256, SHA);
  });

  it('a failed image records a build failure', async () => {
    const { deps, imaging } = imagingSetup();
    const { images } = await registered(deps, imaging, ['eu-west-1']);
    const result = await announceImage(deps, {
      region: 'eu-west-1',
      imageId: images['eu-west-1'] as string,
      state: 'failed',
      errorMessage: 'InvalidBlockDeviceMapping',
    });
    assert.equal(result.outcome, 'failed');
    assert.equal(deps.events.ofType('Build Failed').length, 1);
    assert.equal(deps.events.ofType('Image Ready').length, 0);
  });

  it('ignores pending images and images without release tags', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const { imageId } = await imaging.of('eu-west-1').images.register({
      name: 'someone-elses-image',
      description: '',
      snapshotId: 'snap-1',
      architecture: 'x86_64',
      bootMode: 'uefi',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: 'x',
    });
    // act
    const pending = await announceImage(deps, { ...available('eu-west-1', 'ami-1'), state: 'pending' });
    const foreign = await announceImage(deps, available('eu-west-1', imageId));
    // assess
    assert.equal(pending.outcome, 'ignored');
    assert.equal(foreign.outcome, 'ignored');
    assert.equal(imaging.of('eu-west-1').images.shares.length, 0);
    assert.equal(deps.events.events.length, 0);
  });

  it('reads the EC2 AMI State Change sample', () => {
    const change = amiStateChangeFromEvent(AmiStateChangeEvent.parse(sample('ec2-ami-state-change')));
    assert.deepEqual(change, {
      region: 'eu-west-1',
      imageId: 'ami-0123456789abcdef0',
      state: 'available',
      errorMessage: '',
    });
  });
});

describe('Function: recordLaunchTemplateUpdate()', () => {
  it('keeps the best outcome per account and region', async () => {
    // prepare
    const { deps } = imagingSetup();
    const release = deps.releases.seed('web-base', '1', ['eu-west-1']);
    const base = {
      version: 1 as const,
      stream: 'web-base',
      revision: '1',
      sequence: 1,
      releaseId: release.releaseId,
      accountId: '200000000001',
      region: 'eu-west-1',
      imageId: 'ami-1',
      launchTemplateId: 'lt-1',
      launchTemplateName: 'web',
      versionNumber: 2,
      instanceRefresh: 'not-requested' as const,
      updatedAt: '2026-11-20T10:03:00.000Z',
    };
    // act
    await recordLaunchTemplateUpdate(deps, { ...base, outcome: 'updated' });
    await recordLaunchTemplateUpdate(deps, {
      ...base,
      outcome: 'already-current',
      updatedAt: '2026-11-20T10:04:00Z',
    });
    // assess
    const record = (await deps.releases.get(release.releaseId))?.accounts['200000000001/eu-west-1'];
    assert.equal(record?.outcome, 'updated');
    assert.equal(record?.updatedAt, '2026-11-20T10:04:00.000Z');
  });
});

describe('Function: recordBuildFailure()', () => {
  it('publishes Build Failed with reason and attempts, once', async () => {
    // prepare
    const { deps } = imagingSetup();
    const release = deps.releases.seed('web-base', '1', ['eu-west-1', 'us-east-1']);
    // act
    const first = await recordBuildFailure(deps, {
      releaseId: release.releaseId,
      region: 'us-east-1',
      reason: 'disk full',
      attempts: 3,
    });
    const second = await recordBuildFailure(deps, {
      releaseId: release.releaseId,
      region: 'us-east-1',
      reason: 'disk full',
      attempts: 3,
    });
    // assess
    assert.equal(first.published, true);
    assert.equal(second.published, false);
    const detail = BuildFailedDetail.parse(deps.events.ofType('Build Failed')[0]?.detail);
    assert.equal(detail.attempts, 3);
    assert.equal(detail.reason, 'disk full');
    const stored = await deps.releases.get(release.releaseId);
    assert.equal(stored?.regions['us-east-1']?.state, 'failed');
    assert.equal(stored?.regions['eu-west-1']?.state, 'snapshotting', 'the other region carries on');
  });

  it('buildFailedEvent() makes a contract-valid event for the builder', () => {
    const event = buildFailedEvent(
      { releaseId: 'web-base#00000001', stream: 'web-base', revision: '1', sequence: 1, region: 'eu-west-1' },
      'tarball rejected',
      1,
      new Date('2026-11-20T10:00:00Z'),
    );
    assert.equal(event.detailType, 'Build Failed');
    assert.equal(event.source, 'stemcell');
    assert.equal('eventBusName' in event, false);
    assert.equal(BuildFailedDetail.parse(event.detail).failedAt, '2026-11-20T10:00:00.000Z');
  });
});
