// Behavioural contract of ReleaseStore (DynamoDB).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReleaseStore } from '#ports';

export type ReleaseStoreFactory = () => Promise<{ store: ReleaseStore; cleanup?: () => Promise<void> }>;

const source = (key: string) => ({ bucket: 'stemcell-tarballs', key, etag: '"e1"' });
const input = (stream: string, revision: string) => ({
  stream,
  revision,
  source: source(`streams/${stream}/${revision}.tar`),
  regions: ['eu-west-1', 'us-east-1'],
  uploadedAt: '2026-11-20T10:00:00.000Z',
});

export function releaseStoreContract(name: string, factory: ReleaseStoreFactory): void {
  describe(`Contract: ReleaseStore (${name})`, () => {
    it('assigns per-stream sequences and is idempotent on (stream, revision)', async () => {
      const { store, cleanup } = await factory();
      try {
        // act
        const a1 = await store.create(input('web', '2026.11.20'));
        const a2 = await store.create(input('web', '2026.11.21'));
        const b1 = await store.create(input('db', '1'));
        const again = await store.create(input('web', '2026.11.20'));
        // assess
        assert.equal(a1.created, true);
        assert.equal(a1.release.sequence, 1);
        assert.equal(a2.release.sequence, 2);
        assert.equal(b1.release.sequence, 1);
        assert.equal(again.created, false);
        assert.equal(again.release.releaseId, a1.release.releaseId);
        assert.equal(again.release.sequence, 1);
        assert.deepEqual(Object.keys(a1.release.regions).sort(), ['eu-west-1', 'us-east-1']);
        assert.equal(a1.release.regions['eu-west-1']?.state, 'queued');
      } finally {
        await cleanup?.();
      }
    });

    it('gets and lists releases of a stream in sequence order', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const r1 = await store.create(input('web', 'r1'));
        await store.create(input('web', 'r2'));
        await store.create(input('web', 'r3'));
        await store.create(input('db', 'r1'));
        // act
        const got = await store.get(r1.release.releaseId);
        const web = await store.list('web');
        const all = await store.list();
        // assess
        assert.equal(got?.revision, 'r1');
        assert.deepEqual(got?.source, r1.release.source);
        assert.deepEqual(
          web.map((r) => r.sequence),
          [1, 2, 3],
        );
        assert.equal(all.length, 4);
        assert.equal(await store.get('web#99999999'), undefined);
      } finally {
        await cleanup?.();
      }
    });

    it('merges region patches and guards state transitions', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const { release } = await store.create(input('web', 'r1'));
        const id = release.releaseId;
        // act
        const building = await store.updateRegion(
          id,
          'eu-west-1',
          { state: 'building', updatedAt: 't1' },
          { stateIn: ['queued'] },
        );
        const repeated = await store.updateRegion(
          id,
          'eu-west-1',
          { state: 'building', updatedAt: 't2' },
          { stateIn: ['queued'] },
        );
        await store.updateRegion(id, 'eu-west-1', { snapshotId: 'snap-1', deltaBytes: 4096 });
        const after = await store.get(id);
        // assess
        assert.equal(building, true);
        assert.equal(repeated, false);
        assert.equal(after?.regions['eu-west-1']?.state, 'building');
        assert.equal(after?.regions['eu-west-1']?.snapshotId, 'snap-1');
        assert.equal(after?.regions['eu-west-1']?.deltaBytes, 4096);
        assert.equal(after?.regions['us-east-1']?.state, 'queued');
      } finally {
        await cleanup?.();
      }
    });

    it('gives concurrent duplicates one release and concurrent revisions distinct, gapless sequences', async () => {
      const { store, cleanup } = await factory();
      try {
        // act: a duplicate S3 event delivered 6 times at once, and 5 other revisions uploaded together
        const duplicates = await Promise.all(
          Array.from({ length: 6 }, () => store.create(input('web', 'dup'))),
        );
        const revisions = await Promise.all(
          Array.from({ length: 5 }, (_, i) => store.create(input('web', `r${i}`))),
        );
        const next = await store.create(input('web', 'next'));
        const listed = await store.list('web');
        // assess
        assert.equal(duplicates.filter((d) => d.created).length, 1);
        assert.equal(new Set(duplicates.map((d) => d.release.releaseId)).size, 1);
        assert.equal(duplicates[0]?.release.sequence, 1);
        assert.deepEqual(
          revisions.map((r) => r.release.sequence).sort((a, b) => a - b),
          [2, 3, 4, 5, 6],
        );
        assert.equal(next.release.sequence, 7, 'a duplicate must not burn a sequence number');
        assert.deepEqual(
          listed.map((r) => r.sequence),
          [1, 2, 3, 4, 5, 6, 7],
        );
      } finally {
        await cleanup?.();
      }
    });

    it('adds a region it did not have; a guard on a missing region holds nothing, on a missing release throws', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const { release } = await store.create(input('web', 'r1'));
        const id = release.releaseId;
        // act
        const added = await store.updateRegion(id, 'ap-southeast-2', { state: 'building', updatedAt: 't1' });
        const merged = await store.updateRegion(id, 'ap-southeast-2', { imageId: 'ami-1', attempts: 2 });
        const guardedMissingRegion = await store.updateRegion(
          id,
          'sa-east-1',
          { state: 'building', updatedAt: 't1' },
          { stateIn: ['queued'] },
        );
        const after = await store.get(id);
        // assess
        assert.equal(added, true);
        assert.equal(merged, true);
        const { updatedAt: _stamp, ...record } = after?.regions['ap-southeast-2'] ?? {};
        assert.deepEqual(record, { state: 'building', imageId: 'ami-1', attempts: 2 });
        assert.equal(guardedMissingRegion, false);
        assert.equal(after?.regions['sa-east-1'], undefined);
        await assert.rejects(
          store.updateRegion(
            'web#00000042',
            'eu-west-1',
            { state: 'building', updatedAt: 't1' },
            { stateIn: ['queued'] },
          ),
          /web#00000042/,
        );
      } finally {
        await cleanup?.();
      }
    });

    it('refuses to record on, or complete, a release that does not exist, naming it', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        await store.create(input('web', 'r1'));
        const record = {
          accountId: '100000000001',
          region: 'eu-west-1',
          outcome: 'updated' as const,
          launchTemplates: 1,
          updatedAt: 't',
        };
        // act + assess
        await assert.rejects(store.recordAccount('web#00000009', record), /web#00000009/);
        await assert.rejects(store.markComplete('web#00000009', 't'), /web#00000009/);
        await assert.rejects(
          store.updateRegion('web#00000009', 'eu-west-1', { state: 'building', updatedAt: 't' }),
          /web#00000009/,
        );
        assert.equal(await store.get('web#00000009'), undefined);
      } finally {
        await cleanup?.();
      }
    });

    it('records accounts and completes once', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const { release } = await store.create(input('web', 'r1'));
        const id = release.releaseId;
        // act
        await store.recordAccount(id, {
          accountId: '100000000001',
          region: 'eu-west-1',
          outcome: 'updated',
          launchTemplates: 2,
          updatedAt: 't',
        });
        const first = await store.markComplete(id, '2026-11-20T10:05:00.000Z');
        const second = await store.markComplete(id, '2026-11-20T10:06:00.000Z');
        const after = await store.get(id);
        // assess
        assert.equal(after?.accounts['100000000001/eu-west-1']?.launchTemplates, 2);
        assert.equal(first, true);
        assert.equal(second, false);
        assert.equal(after?.completedAt, '2026-11-20T10:05:00.000Z');
      } finally {
        await cleanup?.();
      }
    });

    it('records a refused upload once per etag, and lists refusals in order', async () => {
      const { store, cleanup } = await factory();
      try {
        // prepare
        const { release } = await store.create(input('web', 'r1'));
        const id = release.releaseId;
        const rejection = (etag: string, at: string) => ({
          source: { bucket: 'b', key: 'streams/web/r1.tar', etag },
          reason: `other content (etag ${etag})`,
          rejectedAt: at,
        });
        // act
        const first = await store.recordRejection(id, rejection('e2', '2026-11-20T10:01:00.000Z'));
        const again = await store.recordRejection(id, rejection('e2', '2026-11-20T10:02:00.000Z'));
        const other = await store.recordRejection(id, rejection('e3', '2026-11-20T10:03:00.000Z'));
        const after = await store.get(id);
        // assess
        assert.deepEqual([first, again, other], [true, false, true]);
        assert.deepEqual(
          after?.rejections?.map((r) => [r.source.etag, r.rejectedAt]),
          [
            ['e2', '2026-11-20T10:01:00.000Z'],
            ['e3', '2026-11-20T10:03:00.000Z'],
          ],
        );
        assert.equal(after?.source.etag, release.source.etag, 'the release keeps its own source');
      } finally {
        await cleanup?.();
      }
    });
  });
}
