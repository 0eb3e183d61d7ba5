// The build worker's promise about its input: it builds the tarball that was published, or nothing. A
// tarball whose SHA-256 differs from the published one (replaced or tampered with after the upload) fails the
// build before any snapshot is taken, naming the object and both digests.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { runBuild } from '#builder/worker.ts';
import { fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

const tarball = new TarBuilder().dir('etc/').file('etc/hostname', 'web\n').build();
const digest = createHash('sha256').update(tarball).digest('hex');

describe('Function: runBuild()', () => {
  it('refuses a tarball whose SHA-256 is not the published one, and takes no snapshot', async () => {
    // prepare
    const published = createHash('sha256').update('the tarball that was published').digest('hex');
    const t = await fakeBuilder({ tarball });
    let snapshots = 0;
    let bootable = 0;
    t.deps.snapshots.create = async () => {
      snapshots++;
      return { snapshotId: 'snap-1', volumeId: 'vol-1', state: 'completed', tags: {}, kmsKeyId: 'k' };
    };
    const opened = t.deps.workspace.open.bind(t.deps.workspace);
    t.deps.workspace.open = async (...args) => ({
      ...(await opened(...args)),
      makeBootable: async () => void bootable++,
    });
    const job = { ...t.job, source: { ...t.job.source, sha256: published } };
    try {
      // act
      const run = runBuild(t.deps, job);
      // assess
      await assert.rejects(
        run,
        new RegExp(`tarball s3://b/streams/web/r1.tar changed: sha256 ${digest} != ${published}`),
      );
      assert.equal(snapshots, 0);
      assert.equal(bootable, 0, 'nothing is made bootable from the wrong tarball');
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.snapshotId, undefined);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('builds the tarball whose SHA-256 is the published one, and tags the snapshot with it', async () => {
    // prepare
    const t = await fakeBuilder({ tarball });
    let tags: Record<string, string> = {};
    t.deps.snapshots.create = async (_volume, input) => {
      tags = input.tags;
      return { snapshotId: 'snap-1', volumeId: 'vol-1', state: 'completed', tags: input.tags, kmsKeyId: 'k' };
    };
    try {
      // act
      const outcome = await runBuild(t.deps, { ...t.job, source: { ...t.job.source, sha256: digest } });
      // assess
      assert.equal(outcome.kind, 'built');
      assert.equal(tags['stemcell:sha256'], digest);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});
