// What one build attempt leaves behind, seen from outside the worker: the release record (claim, attempts,
// snapshot and its sizes), the volume (found, created, grown), the manifest, and — on failure — a volume
// that is closed and detached, a message verdict and at most one "Build Failed".
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import type { BuilderDeps, OpenVolume } from '#builder/worker.ts';
import { handleBuildFailure, isOutOfSpace, runBuild } from '#builder/worker.ts';
import type { StemcellConfig } from '#config/schema.ts';
import { recordBuildFailure } from '#core/release/build-failure.ts';
import type { SnapshotInfo, VolumeInfo } from '#ports';
import { type FakeBuilder, fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { RejectedArchiveError } from '#unpack/index.ts';

const tarball = new TarBuilder().dir('etc/').file('etc/hostname', 'web\n').build();
const NOW = new Date('2026-11-20T10:00:00.000Z');

async function withBuilder(
  options: Parameters<typeof fakeBuilder>[0],
  body: (t: FakeBuilder) => Promise<void>,
): Promise<void> {
  const t = await fakeBuilder(options);
  t.deps.clock = { now: () => NOW };
  try {
    await body(t);
  } finally {
    await rm(t.dir, { recursive: true, force: true });
  }
}

/** Records what runBuild asked of the volume, the workspace and the snapshots. */
function observe(t: FakeBuilder, snapshot: Partial<SnapshotInfo> = {}) {
  const seen = {
    opens: [] as Array<{ sizeGiB: number }>,
    closes: 0,
    detaches: 0,
    snapshots: [] as Array<{
      volumeId: string;
      description: string;
      tags: Record<string, string>;
      clientToken: string;
    }>,
  };
  const open = t.deps.workspace.open.bind(t.deps.workspace);
  t.deps.workspace.open = async (attachment, opts) => {
    seen.opens.push({ sizeGiB: opts.sizeGiB });
    const opened = await open(attachment, opts);
    return { ...opened, close: async () => void seen.closes++ } satisfies OpenVolume;
  };
  t.deps.volumes.detach = async () => void seen.detaches++;
  t.deps.snapshots.create = async (volumeId, input) => {
    seen.snapshots.push({ volumeId, ...input });
    return {
      snapshotId: 'snap-1',
      volumeId,
      state: 'completed',
      tags: input.tags,
      kmsKeyId: 'k',
      ...snapshot,
    };
  };
  return seen;
}

describe('Function: runBuild()', () => {
  it('claims the region, snapshots with the release tags, and records the snapshot and its sizes', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      const seen = observe(t, { deltaBytes: 4096, writtenBytes: 8192 });
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      assert.equal(outcome.kind, 'built');
      if (outcome.kind !== 'built') return;
      assert.equal(outcome.snapshotId, 'snap-1');
      assert.equal(outcome.volumeId, 'vol-1');
      assert.equal(outcome.apply.entries, 2);
      assert.deepEqual(seen.snapshots, [
        {
          volumeId: 'vol-1',
          description: `stemcell web r1 (sequence ${t.job.sequence})`,
          tags: {
            'stemcell:stream': 'web',
            'stemcell:revision': 'r1',
            'stemcell:sequence': String(t.job.sequence),
            'stemcell:release': t.releaseId,
            'stemcell:sha256': outcome.apply.inputSha256,
            'stemcell:region': 'eu-west-1',
          },
          clientToken: `${t.releaseId}:eu-west-1`,
        },
      ]);
      const region = (await t.releases.get(t.releaseId))?.regions['eu-west-1'];
      assert.equal(region?.state, 'snapshotting');
      assert.equal(region?.snapshotId, 'snap-1');
      assert.equal(region?.attempts, 1);
      assert.equal(region?.deltaBytes, 4096);
      assert.equal(region?.writtenBytes, 8192);
      assert.equal(region?.updatedAt, NOW.toISOString());
      assert.equal(seen.closes, 1);
      assert.equal(seen.detaches, 1);
      // every step took some time, none negative; applying took more than nothing
      for (const [step, ms] of Object.entries(outcome.stepMs)) assert.ok(ms >= 0, `${step}: ${ms}`);
      assert.ok(outcome.stepMs['download+apply'] > 0);
      assert.ok(outcome.stepMs.attach > 0);
      assert.equal(typeof region?.applyMs, 'number');
    }));

  it('records no sizes the snapshot does not report', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      observe(t);
      // act
      await runBuild(t.deps, t.job);
      // assess
      const region = (await t.releases.get(t.releaseId))?.regions['eu-west-1'];
      assert.equal(region?.snapshotId, 'snap-1');
      assert.equal('deltaBytes' in (region ?? {}), false);
      assert.equal('writtenBytes' in (region ?? {}), false);
    }));

  it('applies with the volume manifest, kept outside the tree', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      observe(t);
      const manifest = t.deps.manifestPath('vol-1');
      // act
      await runBuild(t.deps, t.job);
      // assess
      assert.ok(existsSync(manifest), `manifest at ${manifest}`);
    }));

  it('closes and detaches the volume when an attempt fails, and counts the attempts', () =>
    withBuilder({ tarball, makeBootable: async () => Promise.reject(new Error('EIO')) }, async (t) => {
      // prepare
      const seen = observe(t);
      // act
      await assert.rejects(runBuild(t.deps, t.job), /EIO/);
      await assert.rejects(runBuild(t.deps, t.job), /EIO/);
      // assess
      assert.equal(seen.closes, 2);
      assert.equal(seen.detaches, 2);
      assert.equal(seen.snapshots.length, 0);
      const region = (await t.releases.get(t.releaseId))?.regions['eu-west-1'];
      assert.equal(region?.state, 'building');
      assert.equal(region?.attempts, 2);
    }));

  it('creates the stream volume in its AZ when there is none, with the customer key', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      observe(t);
      const created: unknown[] = [];
      t.deps.volumes.findForStream = async () => undefined;
      t.deps.volumes.create = async (input) => {
        created.push(input);
        return { volumeId: 'vol-new', sizeGiB: input.sizeGiB } as VolumeInfo;
      };
      t.deps.kmsKeyId = 'arn:aws:kms:eu-west-1:111111111111:key/k';
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      assert.equal(outcome.kind === 'built' && outcome.volumeId, 'vol-new');
      assert.deepEqual(created, [
        {
          stream: 'web',
          availabilityZone: 'eu-west-1a',
          sizeGiB: 1,
          kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k',
          tags: { 'stemcell:stream': 'web', Name: 'stemcell-web' },
          clientToken: 'stemcell-volume-web-eu-west-1a',
        },
      ]);
    }));

  it('grows a volume smaller than the job asks for, and opens it at the job size', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      const seen = observe(t);
      // act
      await runBuild(t.deps, { ...t.job, volumeSizeGiB: 4 });
      // assess
      assert.deepEqual(t.grows, [4]);
      assert.deepEqual(seen.opens, [{ sizeGiB: 4 }]);
    }));

  it('skips a region already past building, saying what state it is in', () =>
    withBuilder({ tarball }, async (t) => {
      // prepare
      observe(t);
      await runBuild(t.deps, t.job);
      // act
      const again = await runBuild(t.deps, t.job);
      // assess
      assert.deepEqual(again, {
        kind: 'skipped',
        reason: `region eu-west-1 of ${t.releaseId} is already snapshotting`,
      });
    }));

  it('names the release and region of a job whose release is unknown', () =>
    withBuilder({ tarball }, async (t) => {
      // act + assess
      await assert.rejects(
        runBuild(t.deps, { ...t.job, releaseId: 'web#00000099' }),
        /^Error: release web#00000099 not found for job in eu-west-1$/,
      );
    }));
});

describe('Function: handleBuildFailure()', () => {
  const attempt = (receiveCount: number) => ({ receiveCount, maxReceiveCount: 3 });

  it('returns the job to the queue before the last attempt, publishing nothing', () =>
    withBuilder({ tarball }, async (t) => {
      // act
      const verdict = await handleBuildFailure(t.deps, t.job, new Error('EIO'), attempt(2));
      // assess
      assert.equal(verdict, 'retry');
      assert.equal(t.published.length, 0);
      const region = (await t.releases.get(t.releaseId))?.regions['eu-west-1'];
      assert.equal(region?.state, 'queued');
      assert.equal(region?.reason, 'EIO');
      assert.equal(region?.updatedAt, NOW.toISOString());
    }));

  it('on the last attempt records the failure and publishes Build Failed, leaving the message to the DLQ', () =>
    withBuilder({ tarball }, async (t) => {
      // act
      const verdict = await handleBuildFailure(t.deps, t.job, 'disk gone', attempt(3));
      // assess
      assert.equal(verdict, 'retry');
      assert.equal(t.published.length, 1);
      const detail = t.published[0]?.detail as { reason?: string; attempts?: number; region?: string };
      assert.deepEqual(
        [t.published[0]?.detailType, detail.reason, detail.attempts, detail.region],
        ['Build Failed', 'disk gone', 3, 'eu-west-1'],
      );
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.state, 'failed');
    }));

  it('a "Build Failed" that cannot be published on the last attempt is not lost: the region stays open for the reconciler', () =>
    withBuilder({ tarball }, async (t) => {
      // arrange: the bus refuses the event on the job's last attempt
      const bus = t.deps.publisher;
      t.deps.publisher = {
        publish: async () => {
          throw new Error('PutEvents: ServiceUnavailable');
        },
      };
      // act
      await assert.rejects(
        handleBuildFailure(t.deps, t.job, 'disk gone', attempt(3)),
        /PutEvents: ServiceUnavailable/,
      );
      // assess: not recorded as failed, so the reconciler's pass over the DLQ (recordBuildFailure) publishes it
      assert.notEqual((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.state, 'failed');
      const config = { busName: 'stemcell' } as StemcellConfig;
      const logger = { debug() {}, info() {}, warn() {}, error() {} };
      const { published } = await recordBuildFailure(
        { config, releases: t.releases, events: bus, clock: t.deps.clock, logger },
        { releaseId: t.releaseId, region: 'eu-west-1', reason: 'disk gone', attempts: 3 },
      );
      assert.equal(published, true);
      assert.deepEqual(
        t.published.map((e) => e.detailType),
        ['Build Failed'],
      );
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.state, 'failed');
    }));

  it('a rejected archive is final on its first attempt and acknowledged', () =>
    withBuilder({ tarball }, async (t) => {
      // act
      const verdict = await handleBuildFailure(
        t.deps as Pick<BuilderDeps, 'releases' | 'publisher' | 'clock'>,
        t.job,
        new RejectedArchiveError('etc/../x', "path contains a '..' component"),
        attempt(1),
      );
      // assess
      assert.equal(verdict, 'done');
      assert.equal(t.published.length, 1);
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.state, 'failed');
    }));
});

describe('Function: isOutOfSpace()', () => {
  it('recognises ENOSPC by its code alone', () => {
    assert.equal(isOutOfSpace(Object.assign(new Error('write failed'), { code: 'ENOSPC' })), true);
    assert.equal(isOutOfSpace(Object.assign(new Error('write failed'), { code: 'EIO' })), false);
  });
});
