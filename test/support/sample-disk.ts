// A bootable raw disk made the way the builder makes one (GPT, ext4, makeBootable), from a demo sample tree:
// for tests that boot the builder's output directly, without the whole flow around it.
import { execFileSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openVolume } from '#builder/device.ts';
import { attachLoop, detachLoop } from '#builder/volume/loop.ts';
import type { Architecture, BootMode } from '#core/model/types.ts';
import { buildSampleTarball, type SampleBoot } from '#demo/sample-rootfs.ts';
import { applyTarball } from '#unpack/index.ts';

export async function buildSampleDisk(opts: {
  dir: string;
  name: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'>;
  boot: SampleBoot;
  withoutInit?: boolean;
  log?: (line: string) => void;
}): Promise<{ disk: string; bootloaderInstalled: boolean }> {
  await mkdir(opts.dir, { recursive: true });
  const tarball = await buildSampleTarball(join(opts.dir, 'work'), join(opts.dir, `${opts.name}.tar.zst`), {
    stream: opts.name,
    revision: 1,
    withKernel: true,
    boot: opts.boot,
    files: 40,
    ...(opts.withoutInit ? { withoutInit: true } : {}),
  });
  const disk = join(opts.dir, `${opts.name}.raw`);
  await writeFile(disk, '');
  await truncate(disk, 512 * 2 ** 20);
  const loop = await attachLoop(disk);
  let bootloaderInstalled = false;
  try {
    const volume = await openVolume(loop, {
      bootMode: opts.bootMode,
      architecture: opts.architecture,
      mountPoint: join(opts.dir, `mnt-${opts.name}`),
      log: opts.log ?? (() => {}),
    });
    try {
      const stats = await applyTarball(createReadStream(tarball), volume.root, {
        manifestPath: join(opts.dir, `${opts.name}.manifest.json`),
      });
      const result = await volume.makeBootableWithResult({
        stream: opts.name,
        revision: '1',
        sequence: 1,
        sha256: stats.inputSha256,
      });
      bootloaderInstalled = result.bootloaderInstalled;
      await volume.quiesce();
    } finally {
      await volume.close();
    }
  } finally {
    await detachLoop(loop);
  }
  return { disk, bootloaderInstalled };
}

/** Loop devices still backed by files under `dir` (a test's own leak check). */
export function loopsUnder(dir: string): string[] {
  const out = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
    encoding: 'utf8',
  });
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([name, file]) => name && file?.startsWith(dir))
    .map(([name]) => name as string);
}
