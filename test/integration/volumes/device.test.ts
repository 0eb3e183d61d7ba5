// The device layer on real loop devices: partition table once, ext4 once, reuse, growth, boot code without the
// kernel's partition support, and nothing left attached or mounted whatever happens.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type MountedVolume, openVolume, ROOT_LABEL } from '#builder/device.ts';
import { PARTITION_TYPE, readLayout } from '#builder/volume/gpt.ts';
import { attachLoop, detachLoop, loopsOf, refreshLoopCapacity } from '#builder/volume/loop.ts';
import { needsRoot } from './helpers.ts';

const skip = needsRoot();
const work = skip ? '' : mkdtempSync(join('/var/tmp', 'stemcell-device-'));
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

const MiB = 2 ** 20;
const release = { stream: 'test', revision: '1', sequence: 1, sha256: 'a'.repeat(64) };

/** A sparse disk file attached to a loop device for the duration of `fn`. */
async function withDisk<T>(
  name: string,
  bytes: number,
  fn: (device: string, file: string) => Promise<T>,
): Promise<T> {
  const file = join(work, `${name}.img`);
  if (!existsSync(file)) execFileSync('truncate', ['--size', String(bytes), file]);
  const device = await attachLoop(file);
  try {
    return await fn(device, file);
  } finally {
    await detachLoop(device);
  }
}

async function withOpen<T>(
  device: string,
  opts: Parameters<typeof openVolume>[1],
  fn: (v: MountedVolume) => Promise<T>,
): Promise<T> {
  const volume = await openVolume(device, { log: () => {}, ...opts });
  try {
    return await fn(volume);
  } finally {
    await volume.close();
  }
}

function mounted(path: string): boolean {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === path);
}

function fsUuid(device: string): string {
  return execFileSync('blkid', ['--probe', '--match-tag', 'UUID', '--output', 'value', device], {
    encoding: 'utf8',
  }).trim();
}

/** A tree that looks bootable to makeBootable: a kernel and an initrd in /boot. */
function plantKernel(root: string, version: string): void {
  mkdirSync(join(root, 'boot'), { recursive: true });
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'boot', `vmlinuz-${version}`), 'kernel');
  writeFileSync(join(root, 'boot', `initrd.img-${version}`), 'initrd');
}

describe('Function: openVolume()', { skip }, () => {
  it('partitions and formats a blank disk once, then reuses the filesystem', async () => {
    await withDisk('reuse', 256 * MiB, async (device) => {
      // prepare + act: first open creates, second open reuses
      const first = await withOpen(device, { bootMode: 'legacy-bios' }, async (v) => {
        writeFileSync(join(v.root, 'kept.txt'), 'from revision 1');
        return { fresh: v.fresh, uuid: fsUuid(v.rootDevice!), root: v.root, rootDevice: v.rootDevice! };
      });
      const second = await withOpen(device, { bootMode: 'legacy-bios' }, async (v) => ({
        fresh: v.fresh,
        uuid: fsUuid(v.rootDevice!),
        kept: readFileSync(join(v.root, 'kept.txt'), 'utf8'),
        label: v.label,
      }));
      const layout = await readLayout(device);

      // assess
      assert.equal(first.fresh, true);
      assert.equal(second.fresh, false);
      assert.equal(second.uuid, first.uuid, 'the filesystem was not made again');
      assert.equal(second.kept, 'from revision 1');
      assert.equal(second.label, ROOT_LABEL);
      assert.equal(layout?.biosBoot?.type, PARTITION_TYPE.biosBoot);
      assert.equal(layout?.root.type, PARTITION_TYPE.linux);
      assert.equal(mounted(first.root), false, 'close unmounts');
      assert.equal((await loopsOf(device)).length, 0, 'close detaches the partition loop device');
    });
  });

  it('grows the root partition and filesystem when the device has grown', async () => {
    await withDisk('grow', 256 * MiB, async (device, file) => {
      // prepare
      await withOpen(device, { bootMode: 'legacy-bios' }, async (v) => {
        writeFileSync(join(v.root, 'kept.txt'), 'x');
      });
      execFileSync('truncate', ['--size', String(512 * MiB), file]);
      await refreshLoopCapacity(device);
      const logged: string[] = [];

      // act
      const after = await withOpen(
        device,
        { bootMode: 'legacy-bios', log: (l) => logged.push(l) },
        async (v) => ({
          fresh: v.fresh,
          sizeBytes: Number(
            execFileSync('df', ['--output=size', '-B1', v.root], { encoding: 'utf8' }).split('\n')[1],
          ),
          kept: existsSync(join(v.root, 'kept.txt')),
        }),
      );

      // assess
      assert.equal(after.fresh, false);
      assert.equal(after.kept, true);
      assert.ok(after.sizeBytes > 400 * MiB, `filesystem is ${after.sizeBytes} bytes after growth`);
      assert.ok(
        logged.some((l) => /growing root partition and filesystem/.test(l)),
        'growth is logged',
      );
    });
  });

  it('installs GRUB into the BIOS boot partition once, and rewrites no unchanged boot file', async () => {
    await withDisk('bios', 256 * MiB, async (device, file) => {
      // prepare + act
      const [first, second] = await withOpen(device, { bootMode: 'legacy-bios' }, async (v) => {
        plantKernel(v.root, '6.1.0-9-cloud-amd64');
        plantKernel(v.root, '6.1.0-10-cloud-amd64');
        const a = await v.makeBootableWithResult(release);
        const b = await v.makeBootableWithResult(release);
        return [a, { ...b, cfg: readFileSync(join(v.root, 'boot/grub/grub.cfg'), 'utf8') }] as const;
      });
      const mbr = readFileSync(file).subarray(0, 512);

      // assess
      assert.equal(first.bootloaderInstalled, true);
      assert.equal(second.bootloaderInstalled, false, 'installed once per volume');
      assert.deepEqual(second.written, [], 'nothing changed, nothing written');
      assert.equal(first.kernel, '/boot/vmlinuz-6.1.0-10-cloud-amd64', 'the newest kernel by version');
      assert.match(second.cfg, /console=ttyS0/);
      assert.match(second.cfg, /initrd \/boot\/initrd\.img-6\.1\.0-10-cloud-amd64/);
      assert.ok(mbr.includes('GRUB'), 'GRUB boot code in the MBR');
      assert.equal(mbr.readUInt16LE(510), 0xaa55, 'protective MBR signature kept');
    });
  });

  it('builds the EFI system partition without mounting FAT', async () => {
    await withDisk('uefi', 256 * MiB, async (device) => {
      // prepare + act
      const installed = await withOpen(device, { bootMode: 'uefi' }, async (v) => {
        plantKernel(v.root, '6.1.0-10-cloud-amd64');
        const a = await v.makeBootableWithResult(release);
        const b = await v.makeBootableWithResult(release);
        return [a.bootloaderInstalled, b.bootloaderInstalled, v.layout?.esp?.start ?? 0] as const;
      });
      const listing = execFileSync('mdir', ['-b', '-i', `${device}@@${installed[2] * 512}`, '::/EFI/BOOT'], {
        encoding: 'utf8',
        env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
      });

      // assess
      assert.deepEqual(installed.slice(0, 2), [true, false]);
      assert.match(listing, /BOOTX64\.EFI/);
    });
  });

  it('fails on a root partition holding another filesystem, and leaves nothing attached', async () => {
    await withDisk('foreign', 256 * MiB, async (device) => {
      // prepare: a valid GPT whose root partition holds FAT
      const layout = await withOpen(device, { bootMode: 'none' }, async (v) => v.layout!);
      const part = await attachLoop(device, {
        offset: layout.root.start * 512,
        sizeLimit: layout.root.sectors * 512,
      });
      try {
        execFileSync('mkfs.vfat', [part], { stdio: 'ignore' });
      } finally {
        await detachLoop(part);
      }

      // act + assess
      await assert.rejects(
        openVolume(device, { bootMode: 'none', log: () => {} }),
        /holds a vfat filesystem/,
      );
      assert.equal((await loopsOf(device)).length, 0);
    });
  });

  it('releases the mount and loop device an interrupted run left behind before mounting again', async () => {
    await withDisk('stale', 256 * MiB, async (device) => {
      // prepare: an open that is never closed, as after a crash
      const crashed = await openVolume(device, { bootMode: 'none', log: () => {} });
      const logged: string[] = [];
      try {
        // act
        const reopened = await withOpen(
          device,
          { bootMode: 'none', log: (l) => logged.push(l) },
          async (v) => ({
            fresh: v.fresh,
            loops: (await loopsOf(device)).length,
          }),
        );
        // assess
        assert.equal(reopened.fresh, false);
        assert.equal(reopened.loops, 1, 'only the new partition loop device');
        assert.equal(mounted(crashed.root), false, 'the stale mount is gone');
        assert.ok(logged.some((l) => /releasing \/dev\/loop\d+ left by an interrupted run/.test(l)));
      } finally {
        // Its loop device was detached above and its number may already serve someone else: only tidy up
        // through close() if the release did not happen.
        if (mounted(crashed.root)) await crashed.close();
        else rmdirSync(crashed.root);
      }
    });
  });

  it('refuses a boot mode the volume was not partitioned for', async () => {
    await withDisk('mode', 256 * MiB, async (device) => {
      // prepare
      await withOpen(device, { bootMode: 'legacy-bios' }, async () => {});
      // act + assess
      await assert.rejects(
        openVolume(device, { bootMode: 'uefi', log: () => {} }),
        /needs an EFI system partition/,
      );
      assert.equal((await loopsOf(device)).length, 0);
    });
  });
});
