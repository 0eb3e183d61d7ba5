import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ManualClock } from '#local/clock.ts';
import { LocalReleaseStore } from '#local/release-store.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-releases-'));
  roots.push(r);
  return r;
}

function input(stream: string, revision: string) {
  return {
    stream,
    revision,
    source: { bucket: 'b', key: `streams/${stream}/${revision}.tar.zst`, etag: `etag-${revision}` },
    regions: ['eu-west-1', 'us-east-1'],
    uploadedAt: '2026-11-21T10:00:00.000Z',
  };
}

describe('Class: LocalReleaseStore', () => {
  it('assigns sequence numbers per stream, starting at 1', async () => {
    const store = new LocalReleaseStore(tempRoot());
    const a1 = await store.create(input('web', 'r1'));
    const a2 = await store.create(input('web', 'r2'));
    const b1 = await store.create(input('db', 'r1'));
    assert.deepEqual(
      [a1, a2, b1].map((r) => [r.release.releaseId, r.release.sequence, r.created]),
      [
        ['web#00000001', 1, true],
        ['web#00000002', 2, true],
        ['db#00000001', 1, true],
      ],
    );
    assert.deepEqual(a1.release.regions['eu-west-1']?.state, 'queued');
  });

  it('returns the existing release for a second create of the same stream and revision', async () => {
    const store = new LocalReleaseStore(tempRoot());
    const first = await store.create(input('web', 'r1'));
    const again = await store.create({ ...input('web', 'r1'), uploadedAt: '2026-11-22T00:00:00.000Z' });
    const next = await store.create(input('web', 'r2'));
    assert.equal(again.created, false);
    assert.deepEqual(again.release, first.release);
    assert.equal(next.release.sequence, 2, 'the duplicate consumed no sequence number');
  });

  it('assigns distinct sequences to concurrent creates', async () => {
    const store = new LocalReleaseStore(tempRoot());
    const created = await Promise.all(['a', 'b', 'c', 'd'].map((r) => store.create(input('web', r))));
    assert.deepEqual(created.map((c) => c.release.sequence).sort(), [1, 2, 3, 4]);
  });

  it('applies a region update only when the state condition holds', async () => {
    // prepare
    const clock = new ManualClock('2026-11-21T11:00:00.000Z');
    const store = new LocalReleaseStore(tempRoot(), { clock });
    const { release } = await store.create(input('web', 'r1'));
    // act
    const toBuilding = await store.updateRegion(
      release.releaseId,
      'eu-west-1',
      { state: 'building', attempts: 1 },
      {
        stateIn: ['queued'],
      },
    );
    const again = await store.updateRegion(
      release.releaseId,
      'eu-west-1',
      { state: 'building', attempts: 2 },
      {
        stateIn: ['queued'],
      },
    );
    const missingRegion = await store.updateRegion(
      release.releaseId,
      'ap-south-1',
      { state: 'building' },
      {
        stateIn: ['queued'],
      },
    );
    await store.updateRegion(release.releaseId, 'eu-west-1', { snapshotId: 'snap-1' });
    // assess
    assert.equal(toBuilding, true);
    assert.equal(again, false);
    assert.equal(missingRegion, false);
    const stored = await store.get(release.releaseId);
    assert.deepEqual(stored?.regions['eu-west-1'], {
      state: 'building',
      attempts: 1,
      snapshotId: 'snap-1',
      updatedAt: '2026-11-21T11:00:00.000Z',
    });
    assert.equal(stored?.regions['us-east-1']?.state, 'queued');
    await assert.rejects(store.updateRegion('web#00000099', 'eu-west-1', { state: 'failed' }), {
      name: 'ResourceNotFoundException',
    });
  });

  it('records accounts by account and region, and completes once', async () => {
    const store = new LocalReleaseStore(tempRoot());
    const { release } = await store.create(input('web', 'r1'));
    const record = {
      accountId: '200000000001',
      region: 'eu-west-1',
      outcome: 'updated' as const,
      launchTemplates: 2,
      updatedAt: '2026-11-21T12:00:00.000Z',
    };
    await store.recordAccount(release.releaseId, record);
    assert.equal(await store.markComplete(release.releaseId, '2026-11-21T12:01:00.000Z'), true);
    assert.equal(await store.markComplete(release.releaseId, '2026-11-21T12:02:00.000Z'), false);
    const stored = await store.get(release.releaseId);
    assert.deepEqual(stored?.accounts['200000000001/eu-west-1'], record);
    assert.equal(stored?.completedAt, '2026-11-21T12:01:00.000Z');
  });

  it('keeps releases and sequences across instances over the same root, and lists them in order', async () => {
    const root = tempRoot();
    await new LocalReleaseStore(root).create(input('web', 'r1'));
    await new LocalReleaseStore(root).create(input('db', 'r1'));
    const store = new LocalReleaseStore(root);
    const { release } = await store.create(input('web', 'r2'));
    assert.equal(release.sequence, 2);
    assert.deepEqual(
      (await store.list()).map((r) => r.releaseId),
      ['db#00000001', 'web#00000001', 'web#00000002'],
    );
    assert.deepEqual(
      (await store.list('web')).map((r) => r.revision),
      ['r1', 'r2'],
    );
  });

  it('refuses stream names outside the contract', async () => {
    const store = new LocalReleaseStore(tempRoot());
    await assert.rejects(store.create(input('../evil', 'r1')), /stream/);
  });
});
