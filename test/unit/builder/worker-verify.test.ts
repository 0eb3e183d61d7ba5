// What the worker's mutation run left alive: a volume that differs is written again exactly once, a volume
// that cannot be inspected after quiesce is verified before it, step times are durations, and a failed attempt
// with no manifest yet removes nothing it could complain about.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { VolumeMismatchError } from '#builder/verify.ts';
import { runBuild } from '#builder/worker.ts';
import { fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

const tarball = () =>
  new TarBuilder().dir('etc/').file('etc/hostname', 'web\n').file('etc/motd', 'hi\n').build();

describe('Function: runBuild()', () => {
  it('writes a volume that still differs again once only, then fails the attempt', async () => {
    // prepare: every read-back after quiesce finds etc/motd changed
    let inspections = 0;
    const t = await fakeBuilder({
      tarball: tarball(),
      volume: (root) => ({
        inspect: async <T>(work: (r: string) => Promise<T>) => {
          inspections++;
          writeFileSync(join(root, 'etc/motd'), 'changed behind the manifest\n');
          return work(root);
        },
      }),
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), VolumeMismatchError);
      assert.equal(inspections, 2, 'the first write and one rewrite');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('verifies the tree before quiesce when the volume cannot be read back after it', async () => {
    // prepare: no inspect; making the volume bootable changes a file the manifest recorded
    const t = await fakeBuilder({
      tarball: tarball(),
      volume: (root) => ({
        makeBootable: async () => writeFileSync(join(root, 'etc/hostname'), 'not what was applied\n'),
      }),
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), VolumeMismatchError);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('records step times as durations of this build', async () => {
    // prepare
    const t = await fakeBuilder({ tarball: tarball() });
    try {
      const started = performance.now();
      // act
      const outcome = await runBuild(t.deps, t.job);
      // assess
      const elapsed = performance.now() - started;
      assert.equal(outcome.kind, 'built');
      if (outcome.kind !== 'built') return;
      for (const [step, ms] of Object.entries(outcome.stepMs)) {
        assert.ok(ms >= 0 && ms <= elapsed, `${step}: ${ms} ms of ${elapsed} ms`);
      }
      const applyMs = (await t.releases.get(t.releaseId))?.regions['eu-west-1']?.applyMs ?? -1;
      assert.ok(applyMs >= 0 && applyMs <= Math.ceil(elapsed), `applyMs ${applyMs} of ${elapsed} ms`);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('fails an attempt before any manifest exists without complaining that it could not remove one', async () => {
    // prepare: the tarball cannot be read
    const t = await fakeBuilder({ tarball: tarball() });
    t.deps.objects.get = async () => {
      throw new Error('NoSuchKey: streams/web/r1.tar');
    };
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), /NoSuchKey/);
      assert.deepEqual(
        t.logs.filter((l) => l.includes('could not be removed')),
        [],
      );
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('fails the attempt, naming the manifest and why, when the apply manifest is gone before verification', async () => {
    // prepare: making the volume bootable removes what the apply recorded
    const t = await fakeBuilder({
      tarball: tarball(),
      makeBootable: async () => rmSync(join(t.dir, 'manifest.json')),
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), {
        message: `apply manifest ${join(t.dir, 'manifest.json')}: no manifest`,
      });
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it("keeps a failed attempt's own error when the volume's manifest cannot be invalidated, and logs why", async () => {
    // prepare: the volume keeps its own manifest; invalidating it works before the apply, then fails
    let invalidations = 0;
    const t = await fakeBuilder({
      tarball: tarball(),
      volume: (root) => ({
        manifest: {
          path: join(root, '..', 'volume-manifest.json'),
          invalidate: async () => {
            if (++invalidations > 1) throw new Error('EROFS: read-only file system');
          },
          commit: async () => {},
        },
        makeBootable: async () => {
          throw new Error('grub-install: no space for core.img');
        },
      }),
    });
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), /grub-install: no space for core.img/);
      assert.ok(t.logs.includes('apply manifest: EROFS: read-only file system'), t.logs.join('\n'));
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it("keeps a failed attempt's own error when the host manifest cannot be removed, and logs which and why", async () => {
    // prepare: the manifest path is a directory, so reading it fails the apply and removing it fails too
    const t = await fakeBuilder({ tarball: tarball() });
    const manifestPath = join(t.dir, 'manifest.json');
    mkdirSync(manifestPath);
    try {
      // act + assess
      await assert.rejects(runBuild(t.deps, t.job), { code: 'EISDIR' });
      assert.equal(
        t.logs.filter((l) => l.startsWith(`apply manifest ${manifestPath} could not be removed: `)).length,
        1,
        t.logs.join('\n'),
      );
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});
