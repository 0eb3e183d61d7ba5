// Making the applied tree bootable: fstab by label, the bootloader once per volume, grub.cfg from the newest
// kernel in the tree, and /etc/stemcell-release. Every file is rewritten only when its content changed, so an
// unchanged revision dirties no block here either.
//
// arm64 images are written by the same x86_64 builder: GRUB's arm64-efi image is assembled by the host's
// grub-mkimage from arm64 module files (Debian's grub-efi-arm64-bin:arm64, installed as data, see EFI_TARGET); nothing of
// the arm64 tree runs here.

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Architecture, BootMode } from '#core/model/types.ts';
import { InputError } from '#errors';
import { run } from './volume/exec.ts';
import { type DiskLayout, SECTOR } from './volume/gpt.ts';

export interface MakeBootableOptions {
  bootMode: BootMode;
  /** CPU architecture of the tree (x86_64 by default): picks GRUB's platform and the serial console. */
  architecture?: Architecture;
  stream: string;
  revision: string;
  sequence: number;
  /** sha256 of the source tarball. */
  sha256: string;
  /** Root filesystem label: fstab, GRUB and the kernel find the root by it. */
  label: string;
  /** The whole-disk device; without it (directory volumes) no bootloader is installed. */
  devicePath?: string;
  /** The disk's GPT (where the BIOS boot partition / ESP are); read from the device when absent. */
  layout?: DiskLayout;
  /** The block device the root filesystem is mounted from (grub-bios-setup must be able to name it). */
  rootDevice?: string;
  log?: (line: string) => void;
}

export interface BootResult {
  /** Kernel and initrd paths inside the tree, e.g. /boot/vmlinuz-6.1.0-26-cloud-amd64. */
  kernel?: string;
  initrd?: string;
  /** True when this call installed the bootloader (first revision on the volume). */
  bootloaderInstalled: boolean;
  /** Tree paths whose content changed and was written. */
  written: string[];
}

export class NoKernelError extends InputError {
  constructor(root: string, bootMode: BootMode) {
    super(`no kernel in ${root}/boot (expected vmlinuz-<version>): a ${bootMode} stream needs one`);
    this.name = 'NoKernelError';
  }
}

const GRUB_DIR = '/usr/lib/grub';

/**
 * GRUB platforms per architecture for UEFI, with the module directory and the ESP's fallback loader name. The
 * directories come from infra/builder/packages.list: grub-efi-amd64-bin, and grub-efi-arm64-bin:arm64 — a
 * Multi-Arch: foreign package of data files that apt installs on an amd64 builder once dpkg knows arm64.
 */
const EFI_TARGET = {
  x86_64: { format: 'x86_64-efi', dir: join(GRUB_DIR, 'x86_64-efi'), loader: 'BOOTX64.EFI' },
  arm64: { format: 'arm64-efi', dir: join(GRUB_DIR, 'arm64-efi'), loader: 'BOOTAA64.EFI' },
} as const;

/** Where GRUB's modules for an EFI target are; STEMCELL_GRUB_DIR overrides the root (a test's own modules). */
export function grubModuleDir(target: { format: string; dir: string }): string {
  const dir = process.env.STEMCELL_GRUB_DIR ? join(process.env.STEMCELL_GRUB_DIR, target.format) : target.dir;
  if (!existsSync(join(dir, 'linux.mod')))
    throw new Error(`GRUB modules for ${target.format} not found in ${dir}; run scripts/setup.sh`);
  return dir;
}
/** Everything GRUB needs is built into the image, so nothing is loaded from the tree at boot. */
const GRUB_MODULES_COMMON = [
  'part_gpt',
  'part_msdos',
  'ext2',
  'search',
  'search_label',
  'search_fs_uuid',
  'normal',
  'configfile',
  'linux',
  'boot',
  'echo',
  'test',
  'serial',
  'terminal',
  'gzio',
];
const GRUB_MODULES = {
  'legacy-bios': ['biosdisk', ...GRUB_MODULES_COMMON],
  uefi: ['fat', 'efi_gop', 'all_video', ...GRUB_MODULES_COMMON],
  // arm64-efi has no PC serial or video modules to speak of: the firmware's console is the serial port.
  uefiArm64: ['fat', ...GRUB_MODULES_COMMON.filter((m) => m !== 'serial' && m !== 'terminal')],
} as const;

/**
 * Kernel command line. The root is found by filesystem label when the tree has an initrd (its udev resolves
 * labels); without one the kernel itself must find it, which it can only by GPT partition UUID. The console is
 * the serial port (systemd starts a getty there): ttyS0 on x86_64; on arm64 both ttyS0 (EC2 Graviton's UART)
 * and ttyAMA0 (the PL011 of qemu's virt machine), the last one present becoming /dev/console.
 */
export function kernelCommandLine(
  label: string,
  opts: { architecture?: Architecture; rootPartUuid?: string } = {},
): string {
  const root = opts.rootPartUuid
    ? `root=PARTUUID=${opts.rootPartUuid.toLowerCase()} rootwait`
    : `root=LABEL=${label}`;
  const console =
    opts.architecture === 'arm64'
      ? 'console=ttyS0,115200n8 console=ttyAMA0,115200n8'
      : 'console=tty0 console=ttyS0,115200n8';
  return `${root} ro ${console}`;
}

export async function makeBootable(root: string, opts: MakeBootableOptions): Promise<BootResult> {
  const written: string[] = [];
  const put = async (path: string, content: string) => {
    if (await writeIfChanged(join(root, path), content)) written.push(path);
  };

  await put('etc/stemcell-release', stemcellRelease(opts));
  await put('etc/fstab', fstab(await readFile(join(root, 'etc/fstab'), 'utf8').catch(() => ''), opts.label));

  const kernel = await newestKernel(root);
  if (!kernel) {
    if (opts.bootMode !== 'none') throw new NoKernelError(root, opts.bootMode);
    return { bootloaderInstalled: false, written };
  }
  const result: BootResult = { kernel: kernel.kernel, bootloaderInstalled: false, written };
  if (kernel.initrd) result.initrd = kernel.initrd;
  if (opts.bootMode === 'none') return result;

  const architecture = opts.architecture ?? 'x86_64';
  if (architecture === 'arm64' && opts.bootMode !== 'uefi')
    throw new Error(`arm64 images boot with UEFI only; boot mode ${opts.bootMode} is not possible`);
  // Without an initrd the kernel finds its root by partition UUID (directory volumes have none: label).
  const rootPartUuid = !kernel.initrd ? opts.layout?.root.uuid || undefined : undefined;
  await put(
    'boot/grub/grub.cfg',
    grubConfig(kernel, opts.label, { architecture, ...(rootPartUuid ? { rootPartUuid } : {}) }),
  );
  if (opts.devicePath) {
    if (opts.bootMode === 'legacy-bios')
      result.bootloaderInstalled = await installGrubBios(root, opts.devicePath, opts, opts.log);
    else result.bootloaderInstalled = await installGrubEfi(opts.devicePath, architecture, opts, opts.log);
  }
  return result;
}

export function stemcellRelease(r: {
  stream: string;
  revision: string;
  sequence: number;
  sha256: string;
}): string {
  return (
    '# Written by stemcell: which release this image holds.\n' +
    `STREAM=${r.stream}\nREVISION=${r.revision}\nSEQUENCE=${r.sequence}\nSOURCE_SHA256=${r.sha256}\n`
  );
}

/** The tree's fstab with its root entry replaced by ours (by label); other mounts are kept. */
export function fstab(existing: string, label: string): string {
  const kept = existing
    .split('\n')
    .filter((line) => line.trim() !== '' && !/UNCONFIGURED FSTAB/.test(line))
    .filter((line) => line.trim().startsWith('#') || line.trim().split(/\s+/)[1] !== '/');
  const ours = [
    '# Root filesystem, found by its label (written by stemcell).',
    `LABEL=${label} / ext4 defaults,noatime,errors=remount-ro 0 1`,
  ];
  return `${[...ours, ...kept.filter((l) => !ours.includes(l))].join('\n')}\n`;
}

export function grubConfig(
  k: { kernel: string; initrd?: string; version: string },
  label: string,
  opts: { architecture?: Architecture; rootPartUuid?: string } = {},
): string {
  // GRUB's own serial driver is for the PC UART; on arm64 the firmware's console already is the serial port.
  const terminal =
    opts.architecture === 'arm64'
      ? []
      : ['serial --unit=0 --speed=115200', 'terminal_input serial console', 'terminal_output serial console'];
  return [
    '# Written by stemcell from the newest kernel in /boot; regenerated on every revision.',
    'set timeout=0',
    ...terminal,
    `menuentry 'Linux ${k.version}' {`,
    `  search --no-floppy --label --set=root ${label}`,
    `  linux ${k.kernel} ${kernelCommandLine(label, opts)}`,
    ...(k.initrd ? [`  initrd ${k.initrd}`] : []),
    '}',
    '',
  ].join('\n');
}

/** The newest /boot/vmlinuz-<version> (by version order) and its initrd, if any. */
export async function newestKernel(
  root: string,
): Promise<{ kernel: string; initrd?: string; version: string } | undefined> {
  const names = await readdir(join(root, 'boot')).catch(() => [] as string[]);
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const version = versions.at(-1);
  if (!version) return undefined;
  const initrd = names.includes(`initrd.img-${version}`) ? `/boot/initrd.img-${version}` : undefined;
  return { kernel: `/boot/vmlinuz-${version}`, version, ...(initrd ? { initrd } : {}) };
}

/** Writes `content` to `path` unless it already holds exactly that; returns whether it wrote. */
export async function writeIfChanged(path: string, content: string): Promise<boolean> {
  const current = await readFile(path, 'utf8').catch(() => undefined);
  if (current === content) return false;
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content, { mode: 0o644 });
  return true;
}

function earlyConfig(label: string): string {
  // Finds the root by label wherever the firmware numbers the disk, then reads /boot/grub/grub.cfg from it.
  return `search --no-floppy --label --set=root ${label}\nset prefix=($root)/boot/grub\n`;
}

async function readBytes(device: string, offset: number, length: number): Promise<Buffer> {
  const handle = await open(device, 'r');
  try {
    const buf = Buffer.alloc(length);
    await handle.read(buf, 0, length, offset);
    return buf;
  } finally {
    await handle.close();
  }
}

/** GRUB's boot.img says "GRUB" in its message area and points at core.img in the BIOS boot partition. */
async function grubBiosInstalled(device: string, layout: DiskLayout): Promise<boolean> {
  const mbr = await readBytes(device, 0, SECTOR);
  const coreSector = mbr.readBigUInt64LE(0x5c);
  return (
    mbr.includes('GRUB ') && layout.biosBoot !== undefined && coreSector === BigInt(layout.biosBoot.start)
  );
}

async function installGrubBios(
  root: string,
  device: string,
  opts: MakeBootableOptions,
  log?: (line: string) => void,
): Promise<boolean> {
  const layout = opts.layout;
  if (!layout?.biosBoot) throw new Error(`${device}: no BIOS boot partition to hold GRUB's core image`);
  if (await grubBiosInstalled(device, layout)) return false;
  log?.(`volume ${device}: installing GRUB (i386-pc) into the BIOS boot partition`);
  // grub-bios-setup names the filesystem its files live on, so they are staged on the target's root
  // filesystem, and both devices go in a device map: no probing of partitions by the kernel.
  const rootDevice =
    opts.rootDevice ?? (await run('findmnt', ['-n', '-o', 'SOURCE', '--target', root])).trim();
  const stage = join(root, 'boot', 'grub', `.stemcell-setup-${process.pid}`);
  await mkdir(stage, { recursive: true });
  try {
    await writeFile(join(stage, 'early.cfg'), earlyConfig(opts.label));
    await writeFile(join(stage, 'device.map'), `(hd0) ${device}\n(hd1) ${rootDevice}\n`);
    await writeFile(join(stage, 'boot.img'), await readFile(join(GRUB_DIR, 'i386-pc', 'boot.img')));
    await run('grub-mkimage', [
      '--format=i386-pc',
      `--directory=${join(GRUB_DIR, 'i386-pc')}`,
      `--output=${join(stage, 'core.img')}`,
      `--config=${join(stage, 'early.cfg')}`,
      '--prefix=/boot/grub',
      ...GRUB_MODULES['legacy-bios'],
    ]);
    await run(join(GRUB_DIR, 'i386-pc', 'grub-bios-setup'), [
      `--directory=${stage}`,
      `--device-map=${join(stage, 'device.map')}`,
      device,
    ]);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  if (!(await grubBiosInstalled(device, layout)))
    throw new Error(`${device}: grub-bios-setup left no GRUB boot code`);
  return true;
}

async function installGrubEfi(
  device: string,
  architecture: Architecture,
  opts: MakeBootableOptions,
  log?: (line: string) => void,
): Promise<boolean> {
  const target = EFI_TARGET[architecture];
  const esp = opts.layout?.esp;
  if (!esp) throw new Error(`${device}: no EFI system partition to hold GRUB`);
  const espOffset = esp.start * SECTOR;
  const env = { MTOOLS_SKIP_CHECK: '1' };
  const present = await runEnv(
    'mdir',
    ['-b', '-i', `${device}@@${espOffset}`, `::/EFI/BOOT/${target.loader}`],
    env,
  )
    .then(() => true)
    .catch(() => false);
  if (present) return false;
  log?.(`volume ${device}: installing GRUB (${target.format}) into the EFI system partition`);
  // No FAT mount: the ESP is built in a file with mkfs.vfat and mtools, then written at its offset.
  const work = await mkdtemp(join(tmpdir(), 'stemcell-esp-'));
  try {
    const efi = join(work, target.loader);
    const image = join(work, 'esp.img');
    await writeFile(join(work, 'early.cfg'), earlyConfig(opts.label));
    await run('grub-mkimage', [
      `--format=${target.format}`,
      `--directory=${grubModuleDir(target)}`,
      `--output=${efi}`,
      `--config=${join(work, 'early.cfg')}`,
      '--prefix=/boot/grub',
      ...(architecture === 'arm64' ? GRUB_MODULES.uefiArm64 : GRUB_MODULES.uefi),
    ]);
    await run('truncate', ['--size', String(esp.sectors * SECTOR), image]);
    await run('mkfs.vfat', ['-F', '32', '-S', '512', '-s', '1', '-n', 'ESP', image]);
    await runEnv('mmd', ['-i', image, '::/EFI', '::/EFI/BOOT'], env);
    await runEnv('mcopy', ['-i', image, efi, `::/EFI/BOOT/${target.loader}`], env);
    await copyInto(image, device, espOffset);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return true;
}

function runEnv(cmd: string, args: string[], env: Record<string, string>): Promise<string> {
  return run(cmd, args, { env });
}

/** Copies a file into a device at `offset`; chunks the device already holds are not rewritten. */
async function copyInto(file: string, device: string, offset: number): Promise<void> {
  const src = await open(file, 'r');
  const dst = await open(device, 'r+');
  try {
    const chunk = Buffer.alloc(1024 * 1024);
    const current = Buffer.alloc(chunk.length);
    for (let pos = 0; ; ) {
      const { bytesRead } = await src.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break;
      const part = chunk.subarray(0, bytesRead);
      const { bytesRead: have } = await dst.read(current, 0, bytesRead, offset + pos);
      if (have !== bytesRead || !current.subarray(0, bytesRead).equals(part))
        await dst.write(part, 0, bytesRead, offset + pos);
      pos += bytesRead;
    }
    await dst.sync();
  } finally {
    await src.close();
    await dst.close();
  }
}
