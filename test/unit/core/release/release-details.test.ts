// The details of ingest, register and announce that mutation testing found unchecked: what an ignored or
// failed event says, what is carried from the S3 event into the release, which SHA-256 wins, and the
// resources of "Image Ready".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { announceImage } from '#core/release/announce.ts';
import { ingest, objectCreatedFromEvent } from '#core/release/ingest.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { ObjectCreatedEvent } from '#events/aws.ts';
import { sample } from '#events/samples/index.ts';
import { BuildFailedDetail } from '#events/stemcell.ts';
import {
  FakeClock,
  FakeObjects,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  imagingSetup,
  RecordingLogger,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

const REGION = 'eu-west-1';
const OTHER_SHA = 'a'.repeat(64);

async function registered(
  s: ReturnType<typeof imagingSetup>,
  sha: string | undefined = SHA,
  snapshotSha = SHA,
) {
  const release = s.deps.releases.seed('web-base', '2026.11.20', [REGION], sha);
  const snapshot = await s.imaging.of(REGION).snapshots.create('vol-1', {
    description: 'x',
    tags: { ...releaseTags(release), [TAG.sha256]: snapshotSha },
    clientToken: 't',
  });
  const r = await registerSnapshot(s.deps, {
    region: REGION,
    snapshotId: snapshot.snapshotId,
    result: 'succeeded',
    cause: '',
  });
  if (r.outcome !== 'registered') throw new Error(`not registered: ${r.outcome}`);
  return { release, imageId: r.imageId, snapshot };
}

const available = (imageId: string) => ({
  region: REGION,
  imageId,
  state: 'available' as const,
  errorMessage: '',
});

describe('Function: announceImage()', () => {
  it('says why it ignores an event, and names a missing image', async () => {
    // prepare
    const s = imagingSetup();
    const { imageId } = await s.imaging.of(REGION).images.register({
      name: 'foreign',
      description: '',
      snapshotId: 'snap-1',
      architecture: 'x86_64',
      bootMode: 'uefi',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: 'x',
    });
    // act + assess
    assert.deepEqual(await announceImage(s.deps, { ...available('ami-1'), state: 'pending' }), {
      outcome: 'ignored',
      reason: 'image ami-1 is pending',
    });
    assert.deepEqual(await announceImage(s.deps, available(imageId)), {
      outcome: 'ignored',
      reason: `image ${imageId} carries no stemcell release tags`,
    });
    await assert.rejects(
      announceImage(s.deps, available('ami-404')),
      /^Error: image ami-404 not found in eu-west-1$/,
    );
  });

  it('records a failed image with its error message, or says there was none', async () => {
    // prepare
    const s = imagingSetup();
    const { imageId } = await registered(s);
    // act
    await announceImage(s.deps, { ...available(imageId), state: 'failed', errorMessage: '' });
    // assess
    const detail = BuildFailedDetail.parse(s.deps.events.ofType('Build Failed')[0]?.detail);
    assert.equal(detail.reason, `image ${imageId} failed: no error message given`);
    const t = imagingSetup();
    const other = await registered(t);
    await announceImage(t.deps, { ...available(other.imageId), state: 'failed', errorMessage: 'InvalidAMI' });
    const detail2 = BuildFailedDetail.parse(t.deps.events.ofType('Build Failed')[0]?.detail);
    assert.equal(detail2.reason, `image ${other.imageId} failed: InvalidAMI`);
  });

  it("puts the release's SHA-256 before the image tag's, and the image ARN in resources", async () => {
    // prepare
    const s = imagingSetup();
    const { imageId } = await registered(s, SHA, OTHER_SHA);
    // act
    await announceImage(s.deps, available(imageId));
    // assess
    const [ready] = s.deps.events.ofType('Image Ready');
    assert.ok(ready);
    assert.equal((ready.detail as { source: { sha256: string } }).source.sha256, SHA);
    assert.deepEqual(ready?.resources, [`arn:aws:ec2:${REGION}::image/${imageId}`]);
  });

  it('refuses to announce without any SHA-256, naming the release and the object', async () => {
    // prepare
    const s = imagingSetup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', [REGION], '');
    const snapshot = await s.imaging.of(REGION).snapshots.create('vol-1', {
      description: 'x',
      tags: releaseTags(release),
      clientToken: 't',
    });
    const r = await registerSnapshot(s.deps, {
      region: REGION,
      snapshotId: snapshot.snapshotId,
      result: 'succeeded',
      cause: '',
    });
    assert.ok(r.outcome === 'registered');
    // act + assess
    await assert.rejects(
      announceImage(s.deps, available(r.imageId)),
      new RegExp(
        `release ${release.releaseId}: no SHA-256 of the source tarball streams/web-base/2026.11.20.tar.zst; the builder tags the snapshot with stemcell:sha256`,
      ),
    );
    assert.equal(s.deps.events.ofType('Image Ready').length, 0);
  });

  it('names the image when its release or stream is unknown', async () => {
    // prepare
    const s = imagingSetup();
    const { imageId, release } = await registered(s);
    const image = s.imaging.of(REGION).images.images.get(imageId);
    assert.ok(image);
    // act + assess: a stream no longer configured
    s.deps.config = testConfig({ streams: { other: { regions: [REGION] } } });
    await assert.rejects(
      announceImage(s.deps, available(imageId)),
      new RegExp(`image ${imageId} in ${REGION}`),
    );
    // and a release the store does not know
    s.deps.releases.releases.delete(release.releaseId);
    await assert.rejects(
      announceImage(s.deps, available(imageId)),
      new RegExp(`image ${imageId} in ${REGION}`),
    );
  });
});

describe('Function: registerSnapshot()', () => {
  it('says why it ignores a snapshot that is gone or not stemcell’s', async () => {
    // prepare
    const s = imagingSetup();
    const foreign = await s.imaging
      .of(REGION)
      .snapshots.create('vol-9', { description: 'b', tags: {}, clientToken: 'x' });
    // act + assess
    assert.deepEqual(
      await registerSnapshot(s.deps, {
        region: REGION,
        snapshotId: 'snap-404',
        result: 'succeeded',
        cause: '',
      }),
      {
        outcome: 'ignored',
        reason: `snapshot snap-404 not found in ${REGION}`,
      },
    );
    assert.deepEqual(
      await registerSnapshot(s.deps, {
        region: REGION,
        snapshotId: foreign.snapshotId,
        result: 'succeeded',
        cause: '',
      }),
      { outcome: 'ignored', reason: `snapshot ${foreign.snapshotId} carries no stemcell release tags` },
    );
    assert.equal(s.deps.logger.lines.filter((l) => l.level === 'warn').length, 1);
  });

  it('records a failed snapshot with its cause, or says there was none', async () => {
    // prepare
    const s = imagingSetup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', [REGION]);
    const snapshot = await s.imaging
      .of(REGION)
      .snapshots.create('vol-1', { description: 'x', tags: releaseTags(release), clientToken: 't' });
    // act
    await registerSnapshot(s.deps, {
      region: REGION,
      snapshotId: snapshot.snapshotId,
      result: 'failed',
      cause: '',
    });
    // assess
    const region = (await s.deps.releases.get(release.releaseId))?.regions[REGION];
    assert.equal(region?.reason, `snapshot ${snapshot.snapshotId} failed: no cause given`);
  });

  it('records the bytes written beside the delta', async () => {
    // prepare
    const s = imagingSetup();
    const release = s.deps.releases.seed('web-base', '2026.11.20', [REGION]);
    const snapshot = await s.imaging
      .of(REGION)
      .snapshots.create('vol-1', { description: 'x', tags: releaseTags(release), clientToken: 't' });
    snapshot.writtenBytes = 8192;
    // act
    await registerSnapshot(s.deps, {
      region: REGION,
      snapshotId: snapshot.snapshotId,
      result: 'succeeded',
      cause: '',
    });
    // assess
    const region = (await s.deps.releases.get(release.releaseId))?.regions[REGION];
    assert.equal(region?.writtenBytes, 8192);
    assert.equal(region?.deltaBytes, 4096);
  });
});

describe('Function: objectCreatedFromEvent()', () => {
  it('carries size and version id, and refuses an event without an etag', () => {
    // prepare
    const event = sample('s3-object-created') as { detail: { object: Record<string, unknown> } };
    event.detail.object['version-id'] = 'v3';
    // act
    const object = objectCreatedFromEvent(ObjectCreatedEvent.parse(event));
    // assess
    assert.equal(object.size, 734003200);
    assert.equal(object.versionId, 'v3');
    delete event.detail.object['version-id'];
    delete event.detail.object.size;
    const bare = objectCreatedFromEvent(ObjectCreatedEvent.parse(event));
    assert.equal('size' in bare, false);
    assert.equal('versionId' in bare, false);
    delete event.detail.object.etag;
    assert.throws(
      () => objectCreatedFromEvent(ObjectCreatedEvent.parse(event)),
      /carries no etag: not an Object Created event/,
    );
  });
});

describe('Function: ingest()', () => {
  function deps() {
    return {
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      releases: new FakeReleaseStore(),
      events: new FakePublisher(),
      objects: new FakeObjects('stemcell-tarballs'),
      buildQueue: () => new FakeQueue('build.fifo'),
    };
  }
  const key = 'streams/web-base/2026.11.20.tar.zst';

  it('keeps the object version, and takes only a well-formed published SHA-256', async () => {
    for (const [published, expected] of [
      [SHA, SHA],
      [`x${SHA}`, undefined],
      [`${SHA}0`, undefined],
      ['not-a-digest', undefined],
    ] as const) {
      // prepare
      const d = deps();
      await d.objects.put(key, Buffer.alloc(0), { sha256: published });
      // act
      const { release } = await ingest(d, {
        bucket: 'stemcell-tarballs',
        key,
        etag: '"e1"',
        versionId: 'v7',
        time: '2026-11-20T10:00:00.000Z',
      });
      // assess
      assert.equal(release.source.sha256, expected, published);
      assert.equal(release.source.versionId, 'v7');
    }
  });

  it('announces Release Started once: not again for a duplicate with nothing left to enqueue', async () => {
    // prepare
    const d = deps();
    const { release } = await ingest(d, {
      bucket: 'stemcell-tarballs',
      key,
      etag: 'e1',
      time: '2026-11-20T10:00:00.000Z',
    });
    for (const region of Object.keys(release.regions))
      await d.releases.updateRegion(release.releaseId, region, { state: 'building' });
    // act
    const again = await ingest(d, {
      bucket: 'stemcell-tarballs',
      key,
      etag: 'e1',
      time: '2026-11-20T10:00:00.000Z',
    });
    // assess
    assert.deepEqual(again.enqueued, []);
    assert.equal(d.events.ofType('Release Started').length, 1);
  });
});
