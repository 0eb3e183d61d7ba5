import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { ObjectChangedError, S3ObjectStore } from '#aws/object-store.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const client = () =>
  new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

describe('Class: S3ObjectStore', () => {
  it('puts a buffer with its metadata in one PutObject', async () => {
    // prepare
    const s3 = client();
    const mock = mockClient(s3);
    mock.on(PutObjectCommand).resolves({ ETag: '"e1"', VersionId: 'v1' });
    const store = new S3ObjectStore({ bucket: 'b', client: s3 });
    // act
    const stored = await store.put('streams/web/1.tar', Buffer.from('abc'), { sha256: 'x' });
    // assess
    assert.deepEqual(mock.commandCalls(PutObjectCommand)[0]?.args[0].input, {
      Bucket: 'b',
      Key: 'streams/web/1.tar',
      Body: Buffer.from('abc'),
      Metadata: { sha256: 'x' },
      // S3 keeps its own SHA-256 of the bytes: ingest compares it with the signed one (provenance).
      ChecksumAlgorithm: 'SHA256',
    });
    assert.deepEqual(stored, {
      bucket: 'b',
      key: 'streams/web/1.tar',
      etag: '"e1"',
      size: 3,
      versionId: 'v1',
      metadata: { sha256: 'x' },
    });
  });

  it('maps NotFound on head to undefined and PreconditionFailed on get to ObjectChangedError', async () => {
    // prepare
    const s3 = client();
    const mock = mockClient(s3);
    mock.on(HeadObjectCommand).rejects(awsError('NotFound'));
    mock.on(GetObjectCommand).rejects(awsError('PreconditionFailed'));
    const store = new S3ObjectStore({ bucket: 'b', client: s3 });
    // act / assess
    assert.equal(await store.head('streams/web/missing.tar'), undefined);
    await assert.rejects(store.get('streams/web/1.tar', '"old"'), ObjectChangedError);
    assert.equal(mock.commandCalls(GetObjectCommand)[0]?.args[0].input.IfMatch, '"old"');
  });

  it('streams the body of get', async () => {
    // prepare
    const s3 = client();
    mockClient(s3)
      .on(GetObjectCommand)
      .resolves({ ETag: '"e"', ContentLength: 2, Body: Readable.from([Buffer.from('hi')]) as never });
    const store = new S3ObjectStore({ bucket: 'b', client: s3 });
    // act
    const { object, body } = await store.get('k');
    // assess
    assert.equal(object.size, 2);
    assert.equal(Buffer.concat(await body.toArray()).toString(), 'hi');
  });
});
