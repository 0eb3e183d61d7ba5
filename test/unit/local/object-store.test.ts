import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';
import { ObjectCreatedEvent } from '#events/aws.ts';
import { ManualClock } from '#local/clock.ts';
import { LocalObjectStore } from '#local/object-store.ts';
import type { ServiceEventEnvelope, ServiceEventSink } from '#local/service-events.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-s3-'));
  roots.push(r);
  return r;
}

class RecordingSink implements ServiceEventSink {
  readonly events: ServiceEventEnvelope[] = [];
  emit(envelope: ServiceEventEnvelope): void {
    this.events.push(envelope);
  }
}

const ACCOUNT = '111111111111';
function store(root: string, sink?: ServiceEventSink) {
  return new LocalObjectStore(root, {
    bucket: 'stemcell-tarballs',
    accountId: ACCOUNT,
    region: 'eu-west-1',
    clock: new ManualClock('2026-11-21T10:00:00.000Z'),
    ...(sink ? { sink } : {}),
  });
}
const md5 = (s: string) => createHash('md5').update(s).digest('hex');

describe('Class: LocalObjectStore', () => {
  it('stores a body with an unquoted MD5 etag, a version id and lower-cased metadata, and reads it back', async () => {
    // prepare
    const s3 = store(tempRoot());
    // act
    const put = await s3.put('streams/web/1.tar', Buffer.from('hello'), { SHA256: 'abc' });
    const { object, body } = await s3.get('streams/web/1.tar');
    // assess
    assert.equal(put.etag, md5('hello'));
    assert.equal(put.size, 5);
    assert.match(put.versionId ?? '', /^[A-Za-z0-9_-]{32}$/);
    assert.deepEqual(object, put);
    assert.deepEqual(object.metadata, { sha256: 'abc' });
    assert.equal(await text(body), 'hello');
  });

  it('streams bodies from a Readable', async () => {
    const s3 = store(tempRoot());
    const put = await s3.put('streams/web/2.tar', Readable.from([Buffer.from('ab'), Buffer.from('cd')]));
    assert.equal(put.etag, md5('abcd'));
    assert.equal(put.size, 4);
  });

  it('emits the EventBridge S3 "Object Created" envelope on put, which events/aws.ts accepts', async () => {
    // prepare
    const sink = new RecordingSink();
    const s3 = store(tempRoot(), sink);
    // act
    const put = await s3.put('streams/web-base/2026.11.21.tar.zst', Buffer.from('tarball'));
    // assess
    assert.equal(sink.events.length, 1);
    const event = ObjectCreatedEvent.parse(sink.events[0]);
    assert.equal(event.source, 'aws.s3');
    assert.equal(event['detail-type'], 'Object Created');
    assert.equal(event.account, ACCOUNT);
    assert.equal(event.region, 'eu-west-1');
    assert.equal(event.time, '2026-11-21T10:00:00Z');
    assert.deepEqual(event.resources, ['arn:aws:s3:::stemcell-tarballs']);
    assert.equal(event.detail.bucket.name, 'stemcell-tarballs');
    assert.equal(event.detail.object.key, 'streams/web-base/2026.11.21.tar.zst');
    assert.equal(event.detail.object.etag, put.etag);
    assert.equal(event.detail.object.size, 7);
    assert.equal(event.detail.object['version-id'], put.versionId);
    assert.equal(event.detail.reason, 'PutObject');
  });

  it('refuses a get whose ifMatch etag is stale, quoted or not', async () => {
    const s3 = store(tempRoot());
    const first = await s3.put('k/a', Buffer.from('one'));
    await s3.put('k/a', Buffer.from('two'));
    await assert.rejects(s3.get('k/a', first.etag), { name: 'PreconditionFailed' });
    const { object } = await s3.get('k/a', `"${md5('two')}"`);
    assert.equal(object.etag, md5('two'));
    await assert.rejects(s3.get('k/missing'), { name: 'NoSuchKey' });
  });

  it('lets another process find objects put without a sink, announcing each (key, etag) once', async () => {
    // prepare: "publish" puts without a bus; "dev" scans the same root
    const root = tempRoot();
    const publisher = store(root);
    const sink = new RecordingSink();
    const dev = store(root, sink);
    await publisher.put('streams/web/1.tar', Buffer.from('v1'));
    // act
    const firstScan = await dev.scanForNew();
    const secondScan = await dev.scanForNew();
    await publisher.put('streams/web/1.tar', Buffer.from('v1'));
    const sameContent = await dev.scanForNew();
    await publisher.put('streams/web/1.tar', Buffer.from('v1 fixed'));
    const changed = await dev.scanForNew();
    // assess
    assert.deepEqual(
      firstScan.map((o) => o.key),
      ['streams/web/1.tar'],
    );
    assert.deepEqual(secondScan, []);
    assert.deepEqual(sameContent, []);
    assert.deepEqual(
      changed.map((o) => o.etag),
      [md5('v1 fixed')],
    );
    assert.equal(sink.events.length, 2);
  });

  it('watch() announces objects dropped by another process until stopped', async () => {
    // prepare
    const root = tempRoot();
    let announced!: (e: ServiceEventEnvelope) => void;
    const seen = new Promise<ServiceEventEnvelope>((resolve) => {
      announced = resolve;
    });
    const dev = store(root, { emit: (e) => announced(e) });
    const watcher = dev.watch(5);
    try {
      // act
      await store(root).put('streams/web/3.tar', Buffer.from('dropped'));
      const event = await seen;
      // assess
      assert.equal(ObjectCreatedEvent.parse(event).detail.object.key, 'streams/web/3.tar');
    } finally {
      watcher.stop();
    }
  });

  it('does not re-announce in a new instance what was announced on put', async () => {
    const root = tempRoot();
    const sink = new RecordingSink();
    await store(root, sink).put('streams/web/1.tar', Buffer.from('v1'));
    assert.deepEqual(await store(root, new RecordingSink()).scanForNew(), []);
  });

  it('sees objects of an earlier instance over the same root', async () => {
    const root = tempRoot();
    const put = await store(root).put('streams/web/1.tar', Buffer.from('v1'));
    const again = store(root);
    assert.deepEqual(await again.head('streams/web/1.tar'), put);
    assert.deepEqual(
      (await again.list('streams/')).map((o) => o.key),
      ['streams/web/1.tar'],
    );
  });

  it('refuses keys a directory cannot hold', async () => {
    const s3 = store(tempRoot());
    for (const key of ['', '/abs', 'a/../b', 'a//b', 'dir/']) {
      await assert.rejects(s3.put(key, Buffer.from('x')), { name: 'InvalidObjectKey' }, key);
    }
  });
});
