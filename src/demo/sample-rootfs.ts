// Small, deterministic root-filesystem trees for `stemcell demo` and the integration tests: enough shape
// (directories, binaries, symlinks, a hardlink, a kernel for bootable streams) to exercise the whole flow,
// and a revision 2 that changes a few percent of the files, adds some and removes some.
//
// A bootable sample is small but real: Debian's cloud kernel (NVMe and ext4 built in, so no initrd is needed)
// and a busybox init that prints the release from /etc/stemcell-release and a login-style marker on the serial
// console, then powers off. Both come from Debian's packages (see debian-packages.ts).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Architecture } from '#core/model/types.ts';
import { debianArch, kernelPackage, unpackedPackage } from './debian-packages.ts';

const run = promisify(execFile);

/** A real kernel and busybox for one architecture, unpacked from Debian's packages. */
export interface SampleBoot {
  architecture: Architecture;
  /** Kernel release, e.g. 6.1.0-57-cloud-arm64. */
  kernelVersion: string;
  vmlinuz: string;
  busybox: string;
}

/** The login-style line the sample's init prints; the demo's boot checks wait for it. */
export const SAMPLE_MARKER = 'login:';

export interface SampleSpec {
  stream: string;
  revision: number;
  /** Adds /boot/vmlinuz-* (and, without `boot`, a stand-in initrd) so a bootable stream finds a kernel. */
  withKernel: boolean;
  /** A real kernel and init (from prepareSampleBoot): the image boots. Without it the kernel is random bytes. */
  boot?: SampleBoot;
  /** Leaves the init (and /bin/sh) out: the kernel panics at boot ("No working init found"). For gate tests. */
  withoutInit?: boolean;
  files?: number;
}

/** Fetches (once, cached) Debian's cloud kernel and busybox-static for `architecture`. */
export async function prepareSampleBoot(
  architecture: Architecture,
  log?: (line: string) => void,
): Promise<SampleBoot> {
  const arch = debianArch(architecture);
  const kernelPkg = await kernelPackage(arch);
  const [kernelDir, busyboxDir] = await Promise.all([
    unpackedPackage(kernelPkg, arch, log),
    unpackedPackage('busybox-static', arch, log),
  ]);
  const vmlinuz = (await readdir(join(kernelDir, 'boot'))).find((n) => n.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new Error(`${kernelPkg}:${arch}: no /boot/vmlinuz-* in the package`);
  return {
    architecture,
    kernelVersion: vmlinuz.slice('vmlinuz-'.length),
    vmlinuz: join(kernelDir, 'boot', vmlinuz),
    busybox: join(busyboxDir, 'bin', 'busybox'),
  };
}

/**
 * PID 1 of a sample image. The kernel mounts no devtmpfs by itself, so the script mounts one and then takes
 * /dev/console as its output. `-f`: no init to ask, power off now (ACPI on x86_64, PSCI on arm64).
 */
export function sampleInit(): string {
  return [
    '#!/usr/bin/busybox sh',
    '# stemcell sample init: shows which release booted, prints a login-style marker, powers off.',
    'export PATH=/usr/bin',
    'busybox mount -t devtmpfs devtmpfs /dev',
    'exec </dev/console >/dev/console 2>&1',
    'busybox mount -t proc proc /proc',
    'busybox mount -t sysfs sysfs /sys',
    '. /etc/stemcell-release',
    'echo',
    'echo "stemcell sample: stream $STREAM revision $REVISION sequence $SEQUENCE ($(busybox uname -m))"',
    `echo "$(busybox cat /etc/hostname) ${SAMPLE_MARKER} "`,
    'busybox sync',
    'busybox poweroff -f',
    '',
  ].join('\n');
}

/** Deterministic pseudo-random bytes: the same (seed, size) gives the same content on every machine. */
function bytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Writes the tree of one revision into `dir` (which must not exist yet). */
export async function writeSampleTree(dir: string, spec: SampleSpec): Promise<void> {
  const files = spec.files ?? 400;
  const put = async (path: string, content: Buffer | string, mode = 0o644) => {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content);
    await chmod(full, mode);
  };
  await put('etc/hostname', `${spec.stream}\n`);
  await put('etc/os-release', `NAME="stemcell sample"\nID=stemcell-sample\nVERSION_ID="${spec.revision}"\n`);
  await put('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  await mkdir(join(dir, 'usr/share/zoneinfo'), { recursive: true });
  await put('usr/share/zoneinfo/UTC', bytes('tz', 128));
  await symlink('/usr/share/zoneinfo/UTC', join(dir, 'etc/localtime'));
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await symlink('usr/bin', join(dir, 'bin'));
  await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o1777 });
  await chmod(join(dir, 'tmp'), 0o1777);
  for (let i = 0; i < files; i++) {
    // About 2 % of the files change per revision, a few are added and a few removed.
    const changed = i % 50 === 7 ? spec.revision : 1;
    if (spec.revision > 1 && i % 97 === 3) continue;
    const size = i % 40 === 0 ? 256 * 1024 : 2 * 1024 + (i % 13) * 512;
    const area = i % 3 === 0 ? 'usr/bin' : i % 3 === 1 ? 'usr/lib/sample' : 'usr/share/doc/sample';
    await put(
      `${area}/file-${String(i).padStart(5, '0')}`,
      bytes(`${spec.stream}:${i}:${changed}`, size),
      i % 3 === 0 ? 0o755 : 0o644,
    );
  }
  for (let i = 0; i < (spec.revision - 1) * 5; i++) {
    await put(
      `usr/lib/sample/added-r${spec.revision}-${i}`,
      bytes(`${spec.stream}:added:${spec.revision}:${i}`, 4096),
    );
  }
  await link(join(dir, 'usr/bin/file-00000'), join(dir, 'usr/bin/file-00000-hardlink'));
  if (spec.boot) {
    await put(`boot/vmlinuz-${spec.boot.kernelVersion}`, Buffer.alloc(0));
    await copyFile(spec.boot.vmlinuz, join(dir, `boot/vmlinuz-${spec.boot.kernelVersion}`));
    await put('usr/bin/busybox', Buffer.alloc(0), 0o755);
    await copyFile(spec.boot.busybox, join(dir, 'usr/bin/busybox'));
    await symlink('usr/bin', join(dir, 'sbin'));
    // Without an init there is no shell either: the kernel would fall back to /bin/sh as PID 1.
    if (!spec.withoutInit) {
      await symlink('busybox', join(dir, 'usr/bin/sh'));
      await put('usr/bin/init', sampleInit(), 0o755);
    }
    for (const mountPoint of ['dev', 'proc', 'sys']) await mkdir(join(dir, mountPoint), { recursive: true });
  } else if (spec.withKernel) {
    const version = `6.1.0-${spec.revision}-stemcell-sample`;
    await put(`boot/vmlinuz-${version}`, bytes(`kernel:${spec.revision}`, 512 * 1024));
    await put(`boot/initrd.img-${version}`, bytes(`initrd:${spec.revision}`, 256 * 1024));
  }
}

/** Builds revision `spec.revision` as a zstd tarball at `out` (GNU tar, numeric owners, xattrs kept). */
export async function buildSampleTarball(workDir: string, out: string, spec: SampleSpec): Promise<string> {
  const tree = join(workDir, `${spec.stream}-r${spec.revision}`);
  await rm(tree, { recursive: true, force: true });
  await writeSampleTree(tree, spec);
  await mkdir(dirname(out), { recursive: true });
  await run('tar', [
    '--zstd',
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--xattrs',
    '-C',
    tree,
    '-cf',
    out,
    '.',
  ]);
  await rm(tree, { recursive: true, force: true });
  return out;
}
