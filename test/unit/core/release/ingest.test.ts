import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnknownStreamError } from '#core/model/errors.ts';
import { InvalidObjectKeyError } from '#core/model/naming.ts';
import { ingest, type ObjectCreated, objectCreatedFromEvent } from '#core/release/ingest.ts';
import { BuildJob, ObjectCreatedEvent } from '#events/aws.ts';
import { sample } from '#events/samples/index.ts';
import { ingestSetup, RecordingLogger, SHA } from '#test/support/core-fakes.ts';

const setup = () => ingestSetup(new RecordingLogger());

const upload = (key = 'streams/web-base/2026.11.20.tar.zst', etag = 'abc'): ObjectCreated => ({
  bucket: 'stemcell-tarballs',
  key,
  etag,
  time: '2026-11-20T10:00:00.000Z',
});

describe('Function: ingest()', () => {
  it('creates the release and sends one build job per region, grouped by stream', async () => {
    // prepare
    const { deps, queues } = setup();
    await deps.objects.put('streams/web-base/2026.11.20.tar.zst', Buffer.alloc(0), { sha256: SHA });
    // act
    const result = await ingest(deps, upload());
    // assess
    assert.equal(result.created, true);
    assert.equal(result.release.sequence, 1);
    assert.deepEqual(result.enqueued, ['eu-west-1', 'us-east-1']);
    for (const region of ['eu-west-1', 'us-east-1']) {
      const messages = queues.get(region)?.messages ?? [];
      assert.equal(messages.length, 1);
      const job = BuildJob.parse(JSON.parse(messages[0]?.body ?? ''));
      assert.equal(job.region, region);
      assert.equal(job.releaseId, result.release.releaseId);
      assert.equal(job.source.sha256, SHA);
      assert.equal(messages[0]?.groupId, 'web-base');
      assert.equal(messages[0]?.deduplicationId, `${result.release.releaseId}:${region}`);
    }
    const started = deps.events.ofType('Release Started');
    assert.equal(started.length, 1);
    assert.equal(started[0]?.eventBusName, 'stemcell');
  });

  it('a duplicate event creates nothing and enqueues nothing once the builds have started', async () => {
    // prepare
    const { deps, queues } = setup();
    const first = await ingest(deps, upload());
    for (const region of ['eu-west-1', 'us-east-1']) {
      await deps.releases.updateRegion(first.release.releaseId, region, { state: 'building' });
    }
    const sendsBefore = [...queues.values()].reduce((n, q) => n + q.sends, 0);
    // act
    const second = await ingest(deps, upload());
    // assess
    assert.equal(second.created, false);
    assert.equal(second.release.releaseId, first.release.releaseId);
    assert.deepEqual(second.enqueued, []);
    assert.equal(
      [...queues.values()].reduce((n, q) => n + q.sends, 0),
      sendsBefore,
    );
    assert.equal(deps.releases.releases.size, 1);
    assert.equal(deps.events.ofType('Release Started').length, 1);
  });

  it('resends the jobs of regions still queued, with the same deduplication id, after a crash before send', async () => {
    // prepare: the release exists but no job reached the queues
    const { deps, queues } = setup();
    await deps.releases.create({
      stream: 'web-base',
      revision: '2026.11.20',
      source: { bucket: 'stemcell-tarballs', key: 'streams/web-base/2026.11.20.tar.zst', etag: 'abc' },
      regions: ['eu-west-1', 'us-east-1'],
      uploadedAt: '2026-11-20T10:00:00.000Z',
    });
    // act
    const result = await ingest(deps, upload());
    await ingest(deps, upload());
    // assess
    assert.equal(result.created, false);
    assert.deepEqual(result.enqueued, ['eu-west-1', 'us-east-1']);
    for (const q of queues.values()) assert.equal(q.messages.length, 1, `${q.name} holds one job`);
  });

  it('gives the next revision the next sequence', async () => {
    // prepare
    const { deps } = setup();
    await ingest(deps, upload('streams/web-base/1.tar'));
    // act
    const second = await ingest(deps, upload('streams/web-base/2.tar.gz'));
    // assess
    assert.equal(second.release.sequence, 2);
  });

  it('refuses an unknown stream, naming the key', async () => {
    const { deps } = setup();
    await assert.rejects(ingest(deps, upload('streams/db-base/1.tar.zst')), (err: Error) => {
      assert.ok(err instanceof UnknownStreamError);
      assert.match(err.message, /db-base/);
      assert.match(err.message, /streams\/db-base\/1\.tar\.zst/);
      return true;
    });
  });

  it('refuses a key outside streams/<stream>/<revision>.tar*', async () => {
    const { deps } = setup();
    await assert.rejects(ingest(deps, upload('uploads/web-base.tar')), InvalidObjectKeyError);
  });

  it('refuses the same revision from a different object: recorded on the release and told once', async () => {
    // prepare
    const { deps } = setup();
    const first = await ingest(deps, upload(undefined, 'etag-one'));
    // act
    const refused = await ingest(deps, upload(undefined, 'etag-two'));
    const again = await ingest(deps, upload(undefined, 'etag-two'));
    // assess
    assert.match(refused.rejected ?? '', /already published .* differs: publish it as a new revision/);
    assert.deepEqual([refused.enqueued, again.enqueued], [[], []]);
    const release = await deps.releases.get(first.release.releaseId);
    assert.equal(release?.source.etag, 'etag-one', 'the release keeps its source');
    assert.deepEqual(
      release?.rejections?.map((r) => r.source.etag),
      ['etag-two'],
    );
    const told = deps.events.ofType('Release Rejected');
    assert.equal(told.length, 1);
    assert.equal(
      (told[0]?.detail as { rejected?: { etag: string } } | undefined)?.rejected?.etag,
      'etag-two',
    );
  });

  it('reads the object from the S3 EventBridge sample, decoding percent-escapes in the key', () => {
    // prepare
    const event = sample('s3-object-created') as { detail: { object: { key: string } } };
    event.detail.object.key = 'streams/web-base/2026.11.20%2Bhotfix.tar.zst';
    // act
    const object = objectCreatedFromEvent(ObjectCreatedEvent.parse(event));
    // assess
    assert.equal(object.key, 'streams/web-base/2026.11.20+hotfix.tar.zst');
    assert.equal(object.bucket, 'stemcell-tarballs');
    assert.equal(object.time, '2026-11-20T10:00:00.000Z');
  });
});
