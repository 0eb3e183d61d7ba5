import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { isOutOfSpace, runBuild } from '#builder/worker.ts';
import { fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

const tarball = new TarBuilder().dir('etc/').file('etc/hostname', 'web\n').build();
const enospc = () =>
  Object.assign(new Error("ENOSPC: no space left on device, write '/boot/grub/core.img'"), {
    code: 'ENOSPC',
  });

describe('Function: runBuild()', () => {
  it('grows a volume the revision no longer fits, with a log line, and applies again', async () => {
    // prepare: the first attempt runs out of space while making the volume bootable
    let attempts = 0;
    const t = await fakeBuilder({
      tarball,
      makeBootable: async () => {
        attempts++;
        if (attempts === 1) throw enospc();
      },
    });
    try {
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      assert.equal(outcome.kind, 'built');
      assert.deepEqual(t.grows, [2]);
      assert.equal(attempts, 2);
      assert.match(t.logs.join('\n'), /vol-1 \(web\): r1 does not fit in 1 GiB; growing to 2 GiB/);
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.snapshotId, 'snap-1');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('gives up after a bounded number of grows, and never grows for other errors', async () => {
    // prepare
    const full = await fakeBuilder({ tarball, makeBootable: async () => Promise.reject(enospc()) });
    const broken = await fakeBuilder({ tarball, makeBootable: async () => Promise.reject(new Error('EIO')) });
    try {
      // act + assess
      await assert.rejects(runBuild(full.deps, full.job), /ENOSPC/);
      assert.deepEqual(full.grows, [2, 3, 5]);
      await assert.rejects(runBuild(broken.deps, broken.job), /EIO/);
      assert.deepEqual(broken.grows, []);
    } finally {
      await rm(full.dir, { recursive: true, force: true });
      await rm(broken.dir, { recursive: true, force: true });
    }
  });

  it('does not build again a region whose snapshot is already taken (a redelivered job)', async () => {
    // prepare
    const t = await fakeBuilder({ tarball });
    try {
      await runBuild(t.deps, t.job);
      // act
      const again = await runBuild(t.deps, t.job);
      // assess
      assert.equal(again.kind, 'skipped');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});

describe('Function: isOutOfSpace()', () => {
  it('recognises ENOSPC by code or message only', () => {
    assert.equal(isOutOfSpace(enospc()), true);
    assert.equal(isOutOfSpace(new Error('tar: write error: No space left on device')), true);
    assert.equal(isOutOfSpace(new Error('EIO')), false);
    assert.equal(isOutOfSpace(undefined), false);
  });
});
