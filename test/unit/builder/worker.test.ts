import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DataFolderFullError } from '#builder/space.ts';
import { VolumeMismatchError } from '#builder/verify.ts';
import { handleBuildFailure, isOutOfSpace, runBuild } from '#builder/worker.ts';
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

const eio = () =>
  Object.assign(new Error('sync: error syncing /mnt/root: Input/output error'), { code: 'EIO' });
const bigTarball = () => {
  const tar = new TarBuilder().dir('etc/').dir('boot/').file('boot/vmlinuz-6.1', 'kernel\n'.repeat(5000));
  for (let i = 0; i < 50; i++) tar.file(`etc/f${i}`, `content ${i}\n`);
  return tar.build();
};
const manifestState = (t: { dir: string }) =>
  JSON.parse(readFileSync(join(t.dir, 'manifest.json'), 'utf8').split('\n')[0] ?? '{}').state;

describe('Function: runBuild() — never snapshot what was not written (issue 9, fault 4)', () => {
  it('marks the apply manifest complete only after the volume was flushed; a failed flush leaves it invalid', async () => {
    // prepare: the flush reports a write that never reached the volume (EIO from a loop over a full host)
    let flushes = 0;
    const t = await fakeBuilder({
      tarball: bigTarball(),
      volume: () => ({
        flush: async () => {
          flushes++;
          throw eio();
        },
      }),
    });
    try {
      // act
      await assert.rejects(runBuild(t.deps, t.job), /Input\/output error/);
      // assess
      assert.equal(flushes, 1);
      assert.equal(existsSync(join(t.dir, 'manifest.json')), false, 'manifest must not survive');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('leaves the manifest invalid when anything after the apply fails, so the retry verifies the whole tree', async () => {
    // prepare: quiesce fails once, after the apply completed
    let quiesces = 0;
    const t = await fakeBuilder({
      tarball: bigTarball(),
      volume: () => ({
        quiesce: async () => {
          quiesces++;
          if (quiesces === 1) throw eio();
        },
      }),
    });
    try {
      await assert.rejects(runBuild(t.deps, t.job), /Input\/output error/);
      await t.releases.updateRegion(t.releaseId, 'eu-west-1', { state: 'queued' });
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      assert.equal(outcome.kind, 'built');
      assert.equal(outcome.kind === 'built' && outcome.apply.verified, true);
      assert.equal(manifestState(t), 'complete');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('blames a full data folder, not the volume: DataFolderFullError, and the volume is not grown', async () => {
    // prepare: room at the start, then the host fills while the volume is made bootable
    let free = 2 ** 30;
    const t = await fakeBuilder({
      tarball,
      makeBootable: async () => {
        free = 3 * 2 ** 20;
        throw enospc();
      },
      hostSpace: { dir: '/data', neededBytes: 256 * 2 ** 20, free: () => free },
    });
    try {
      // act
      const err = await runBuild(t.deps, t.job).catch((e: unknown) => e);
      // assess
      assert.ok(err instanceof DataFolderFullError, String(err));
      assert.match(err.message, /^data folder full: 3\.0 MiB free, 256\.0 MiB needed \(\/data\)$/);
      assert.deepEqual(t.grows, []);
      assert.equal(
        await handleBuildFailure(t.deps, t.job, err, { receiveCount: 3, maxReceiveCount: 3 }),
        'wait',
      );
      assert.deepEqual(t.published, [], 'no Build Failed for a full data folder');
      const region = (await t.releases.get(t.releaseId))?.regions['eu-west-1'];
      assert.equal(region?.state, 'queued');
      assert.match(region?.reason ?? '', /data folder full/);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('does not start a build while the data folder lacks room', async () => {
    // prepare
    const t = await fakeBuilder({
      tarball,
      hostSpace: { dir: '/data', neededBytes: 2 ** 20, free: () => 1024 },
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), DataFolderFullError);
      assert.equal(existsSync(join(t.dir, 'manifest.json')), false);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('verifies the quiesced volume against the manifest, and writes the revision again when it differs', async () => {
    // prepare: the first time, the kernel reads back empty from the device (writes lost under the filesystem)
    let inspections = 0;
    const t = await fakeBuilder({
      tarball: bigTarball(),
      volume: (root) => ({
        inspect: async <T>(work: (r: string) => Promise<T>) => {
          inspections++;
          if (inspections === 1) writeFileSync(join(root, 'boot/vmlinuz-6.1'), Buffer.alloc(35000));
          return work(root);
        },
      }),
    });
    try {
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      assert.equal(outcome.kind, 'built');
      assert.equal(inspections, 2);
      assert.match(
        t.logs.join('\n'),
        /boot\/vmlinuz-6\.1: content differs from the manifest; writing r1 again/,
      );
      assert.equal(readFileSync(join(t.dir, 'root', 'boot/vmlinuz-6.1'), 'utf8'), 'kernel\n'.repeat(5000));
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('fails the attempt when the volume still differs after writing it again', async () => {
    // prepare
    const t = await fakeBuilder({
      tarball: bigTarball(),
      volume: (root) => ({
        inspect: async <T>(work: (r: string) => Promise<T>) => {
          writeFileSync(join(root, 'etc/f7'), 'x');
          return work(root);
        },
      }),
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), VolumeMismatchError);
      assert.equal(existsSync(join(t.dir, 'manifest.json')), false);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});
