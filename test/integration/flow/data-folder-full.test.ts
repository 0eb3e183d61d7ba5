// Fault 4 of issue 9: the data folder (not the volume) fills up in the middle of an apply. The build must not
// grow the volume, must say once "data folder full: … free, … needed", must not crash the stack, must wait
// and build again when space returns, and the image it then announces must hold the whole tarball.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { freeBytes } from '#builder/space.ts';
import { loopsOf } from '#builder/volume/loop.ts';
import { parseConfig } from '#config/load.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import { realSleep } from '#local/clock.ts';
import { LocalStack } from '#local/stack.ts';
import { chooseVolumeBackend } from '#local/volumes.ts';
import { imageHoldsTarball } from '#test/support/image-content.ts';

const blockVolumes = chooseVolumeBackend('auto', () => {}) === 'block';
const REGION = 'eu-west-1';

describe('Flow: a full data folder', () => {
  it('waits with one clear error, never grows the volume, and announces a complete image once space returns', {
    skip: blockVolumes ? false : 'needs root and loop devices (block volumes)',
    timeout: 300_000,
  }, async () => {
    // prepare: the data folder is a 160 MiB tmpfs of its own
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-full-'));
    const data = join(dir, 'data');
    mkdirSync(data);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=160m', 'stemcell-test-full', data]);
    const filler = join(data, 'filler');
    const logs: string[] = [];
    let stack: LocalStack | undefined;
    try {
      const tarball = await buildSampleTarball(join(dir, 'work'), join(dir, 'web-1.tar.zst'), {
        stream: 'web',
        revision: 1,
        withKernel: false,
        files: 300,
      });
      const config = parseConfig({
        homeRegion: REGION,
        streams: { web: { regions: [REGION], bootMode: 'none', volumeSizeGiB: 1 } },
        local: {
          organizationId: 'o-full000001',
          managementAccountId: '100000000000',
          ous: [{ id: 'ou-ab12-11111111', name: 'x' }],
          accounts: [{ id: '100000000001', name: 'a', ou: 'ou-ab12-11111111' }],
        },
      });
      let filled = false;
      stack = new LocalStack({
        dataDir: data,
        config,
        volumeBackend: 'block',
        dataFolderNeededBytes: 16 * 2 ** 20,
        log: (line) => logs.push(line),
        onProgress: (event) => {
          // The host fills up while the tarball is being applied to the volume.
          if (event.kind === 'build' && event.step === 'download+apply' && !filled) {
            filled = true;
            const room = freeBytes(data) - 2 ** 20;
            execFileSync('fallocate', ['-l', String(room), filler]);
          }
        },
      });
      await stack.start();
      // act
      const body = readFileSync(tarball);
      const sha256 = createHash('sha256').update(body).digest('hex');
      await stack.publish('streams/web/r1.tar.zst', body, { sha256 });
      const deadline = Date.now() + 120_000;
      while (!logs.some((l) => /data folder full/.test(l)) && Date.now() < deadline) await realSleep(200);
      const whileFull = (await stack.releases.list('web'))[0]?.regions[REGION];
      rmSync(filler);
      await stack.settle();
      // assess
      const full = logs.filter((l) => /data folder full/.test(l));
      assert.equal(full.length, 1, logs.join('\n'));
      assert.match(full[0] ?? '', /data folder full: \d+\.\d MiB free, 16\.0 MiB needed/);
      assert.notEqual(whileFull?.state, 'announced');
      assert.doesNotMatch(logs.join('\n'), /growing to/);
      const [release] = await stack.releases.list('web');
      const region = release?.regions[REGION];
      assert.equal(region?.state, 'announced', JSON.stringify(release?.regions));
      const runtime = stack.region(REGION);
      assert.equal(runtime.volumes.list()[0]?.sizeGiB, 1);
      const checked = await imageHoldsTarball(runtime.images, region?.imageId ?? '', tarball, dir);
      assert.ok(checked >= 300, `only ${checked} files compared`);
    } finally {
      await stack?.stop();
      for (const volume of stack?.region(REGION).volumes.list() ?? []) {
        const image = stack?.region(REGION).volumes.imagePath(volume.volumeId) ?? '';
        assert.deepEqual(await loopsOf(image), [], `loop devices left on ${image}`);
      }
      execFileSync('umount', [data]);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
