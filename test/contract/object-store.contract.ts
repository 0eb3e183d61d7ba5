// Behavioural contract of ObjectStore (S3): every adapter passes it.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import type { ObjectStore } from '#ports';

export type ObjectStoreFactory = () => Promise<{ store: ObjectStore; cleanup?: () => Promise<void> }>;

export function objectStoreContract(name: string, factory: ObjectStoreFactory): void {
  describe(`Contract: ObjectStore (${name})`, () => {
    it('stores a buffer and reads it back with the same etag, size and metadata', async () => {
      // prepare
      const { store, cleanup } = await factory();
      try {
        const body = Buffer.from('root filesystem bytes');
        // act
        const put = await store.put('streams/web/1.tar', body, { sha256: 'abc' });
        const head = await store.head('streams/web/1.tar');
        const got = await store.get('streams/web/1.tar', put.etag);
        // assess
        assert.equal(put.key, 'streams/web/1.tar');
        assert.equal(put.bucket, store.bucket);
        assert.equal(put.size, body.length);
        assert.equal(head?.etag, put.etag);
        assert.equal(head?.size, body.length);
        assert.equal(head?.metadata.sha256, 'abc');
        assert.deepEqual(await buffer(got.body), body);
      } finally {
        await cleanup?.();
      }
    });

    it('stores a stream of unknown length', async () => {
      const { store, cleanup } = await factory();
      try {
        // act
        const put = await store.put(
          'streams/web/2.tar',
          Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
        );
        const got = await store.get('streams/web/2.tar');
        // assess
        assert.equal(put.size, 4);
        assert.equal((await buffer(got.body)).toString(), 'abcd');
      } finally {
        await cleanup?.();
      }
    });

    it('answers undefined for a missing object, and refuses a get whose etag changed', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const first = await store.put('streams/web/3.tar', Buffer.from('one'));
        await store.put('streams/web/3.tar', Buffer.from('two'));
        // act / assess
        assert.equal(await store.head('streams/web/missing.tar'), undefined);
        await assert.rejects(store.get('streams/web/3.tar', first.etag));
      } finally {
        await cleanup?.();
      }
    });
  });
}
