// The details of ingest that mutation testing found unchecked: what a refused upload returns, logs and tells
// (each other object once), a duplicate event resending what a crash left unsent, a region the stream gained
// after the release was recorded, and the source recorded without a SHA-256 when none was published.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ingest, type ObjectCreated } from '#core/release/ingest.ts';
import { AttributeLogger, ingestSetup } from '#test/support/core-fakes.ts';

const KEY = 'streams/web-base/2026.11.20.tar.zst';

const setup = () => ingestSetup(new AttributeLogger());

const upload = (etag = 'abc'): ObjectCreated => ({
  bucket: 'stemcell-tarballs',
  key: KEY,
  etag,
  time: '2026-11-20T10:00:00.000Z',
});

describe('Function: ingest()', () => {
  it('tells each other object under a published revision once, however often it comes back', async () => {
    // prepare
    const { deps } = setup();
    await ingest(deps, upload('etag-one'));
    // act
    const refused = await ingest(deps, upload('etag-two'));
    await ingest(deps, upload('etag-three'));
    await ingest(deps, upload('etag-two'));
    await ingest(deps, upload('etag-three'));
    // assess
    assert.equal(refused.created, false);
    assert.deepEqual(
      deps.events
        .ofType('Release Rejected')
        .map((e) => (e.detail as { rejected: { etag: string } }).rejected.etag),
      ['etag-two', 'etag-three'],
    );
    assert.deepEqual(deps.logger.of('upload rejected: revision already published with other content'), {
      releaseId: refused.release.releaseId,
      key: KEY,
      etag: 'etag-two',
    });
  });

  it('announces Release Started again when a duplicate event resends jobs a crash left unsent', async () => {
    // prepare: the release was recorded, then the process died before any job or event went out
    const { deps, queues } = setup();
    const { release } = await deps.releases.create({
      stream: 'web-base',
      revision: '2026.11.20',
      source: { bucket: 'stemcell-tarballs', key: KEY, etag: 'abc' },
      regions: ['eu-west-1', 'us-east-1'],
      uploadedAt: '2026-11-20T10:00:00.000Z',
    });
    // act
    const result = await ingest(deps, upload());
    // assess
    assert.equal(result.created, false);
    assert.deepEqual(result.enqueued, ['eu-west-1', 'us-east-1']);
    assert.equal(
      [...queues.values()].reduce((n, q) => n + q.messages.length, 0),
      2,
    );
    const started = deps.events.ofType('Release Started');
    assert.equal(started.length, 1);
    assert.equal((started[0]?.detail as { releaseId?: string } | undefined)?.releaseId, release.releaseId);
    assert.deepEqual(deps.logger.of('release already recorded'), {
      releaseId: release.releaseId,
      sequence: 1,
      enqueued: ['eu-west-1', 'us-east-1'],
    });
  });

  it('sends a job to a region the stream gained after the release was recorded', async () => {
    // prepare: recorded when the stream built in eu-west-1 only, which is building now
    const { deps, queues } = setup();
    const { release } = await deps.releases.create({
      stream: 'web-base',
      revision: '2026.11.20',
      source: { bucket: 'stemcell-tarballs', key: KEY, etag: 'abc' },
      regions: ['eu-west-1'],
      uploadedAt: '2026-11-20T10:00:00.000Z',
    });
    await deps.releases.updateRegion(release.releaseId, 'eu-west-1', { state: 'building' });
    // act
    const result = await ingest(deps, upload());
    // assess
    assert.deepEqual(result.enqueued, ['us-east-1']);
    assert.equal(queues.get('us-east-1')?.messages.length, 1);
    assert.equal(queues.get('eu-west-1'), undefined, 'the building region gets no second job');
  });

  it('records the source without a SHA-256 when none was published, and logs the new release', async () => {
    // prepare
    const { deps } = setup();
    // act
    const result = await ingest(deps, upload('"quoted"'));
    // assess
    assert.deepStrictEqual(result.release.source, { bucket: 'stemcell-tarballs', key: KEY, etag: 'quoted' });
    assert.deepEqual(deps.logger.of('release created'), {
      releaseId: result.release.releaseId,
      sequence: 1,
      enqueued: ['eu-west-1', 'us-east-1'],
    });
  });
});
