// The volume as the builder sees it: a whole-disk device (a loop device locally, an NVMe device on EC2) that
// carries a GPT, boot partition(s), the state partition (the apply manifest, see volume/state.ts) and one ext4
// root partition, mounted for the unpacker.
//
// The kernel here has no partition-table support, so the root partition is reached through a second loop
// device at its offset and size; the same works on EC2. The filesystem is created once per volume; every
// later revision mounts and rewrites it in place, which is what keeps snapshots incremental.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Architecture, BootMode } from '#core/model/types.ts';
import type { BuildJob } from '#events/aws.ts';
import type { Attachment } from '#ports';
import { type BootResult, makeBootable } from './boot.ts';
import { freeze, syncFilesystem } from './quiesce.ts';
import { run, ToolError } from './volume/exec.ts';
import { type DiskLayout, growRootPartition, readLayout, SECTOR, writeLayout } from './volume/gpt.ts';
import { attachLoop, detachLoop, loopsOf } from './volume/loop.ts';
import { probeFilesystem } from './volume/probe.ts';
import { type ManifestStore, openStatePartition } from './volume/state.ts';
import type { BootInfo, OpenVolume, Workspace } from './worker.ts';

export const ROOT_LABEL = 'stemcell-root';

/**
 * mkfs.ext4 options, chosen by measurement (bench/snapshot.ts) to dirty few 512 KiB blocks after the first
 * revision while staying an ordinary ext4 for the instance that boots from it:
 * - inode tables and journal zeroed now (lazy_*_init=0): otherwise the kernel's ext4lazyinit thread zeroes
 *   them in the background after mount, and on EBS those writes land in the next snapshot;
 * - packed_meta_blocks: superblock, group descriptors, bitmaps, inode tables and journal packed at the start
 *   of the filesystem, so a revision's metadata updates share a few 512 KiB blocks instead of one or more in
 *   each flex group;
 * - a 16 MiB journal: ample for a root filesystem; its size barely moved the delta (4, 16 and 64 MiB
 *   measured within noise);
 * - the default profile and 4 KiB blocks whatever the size (small volumes would otherwise get 1 KiB blocks).
 */
export const MKFS_EXT4_ARGS: readonly string[] = [
  '-T',
  'default',
  '-b',
  '4096',
  '-E',
  'lazy_itable_init=0,lazy_journal_init=0,packed_meta_blocks=1',
  '-J',
  'size=16',
];

/** No atime updates: reading a file must not dirty its inode's block. */
export const MOUNT_OPTIONS: readonly string[] = ['noatime'];

export interface OpenVolumeOptions {
  bootMode: BootMode;
  /** The tree's CPU architecture (x86_64 by default): which GRUB goes into the ESP. */
  architecture?: Architecture;
  /** Filesystem label of the root partition; fstab and the bootloader find the root by it. */
  label?: string;
  /** Where to mount the root partition; a fresh temporary directory by default. */
  mountPoint?: string;
  /** Overrides for measurement (bench); the defaults are MKFS_EXT4_ARGS and MOUNT_OPTIONS. */
  mkfsArgs?: readonly string[];
  mountOptions?: readonly string[];
  /**
   * Where to mount the state partition and keep the scratch copy of its manifest (both outside the root
   * mount). Without it the state partition stays unmounted and the volume has no `manifest`.
   */
  state?: { mountPoint: string; scratchPath: string };
  log?: (line: string) => void;
}

/** An opened volume: the root filesystem mounted at `root`. Implements the builder's OpenVolume. */
export interface MountedVolume extends OpenVolume {
  readonly kind: 'block' | 'directory';
  readonly root: string;
  /** True when this open created the filesystem (first revision on the volume). */
  readonly fresh: boolean;
  /** The whole-disk device (block kind). */
  readonly devicePath?: string;
  /** The loop device that exposes the root partition (block kind). */
  readonly rootDevice?: string;
  readonly layout?: DiskLayout;
  readonly label: string;
  readonly bootMode: BootMode;
  /** The apply manifest kept on the volume's state partition (block volumes that have one). */
  readonly manifest?: ManifestStore;
  makeBootable(info: BootInfo): Promise<void>;
  /** Same as makeBootable, with what was found and written. */
  makeBootableWithResult(info: BootInfo): Promise<BootResult>;
  /** Syncs and freezes the filesystem; returns the thaw. */
  freeze(): Promise<() => Promise<void>>;
  /** Syncs and unmounts: after this no write is in flight and none will come. */
  quiesce(): Promise<void>;
  /** Unmounts (if still mounted) and detaches the partition loop device; safe to call twice and on failure. */
  close(): Promise<void>;
}

async function deviceBytes(devicePath: string): Promise<number> {
  const s = await stat(devicePath);
  if (s.isFile()) return s.size;
  if (!s.isBlockDevice()) throw new Error(`${devicePath}: not a block device or disk-image file`);
  return Number((await run('blockdev', ['--getsize64', devicePath])).trim());
}

/**
 * Unmounts and detaches partition loop devices an interrupted run left on `devicePath`: the same filesystem
 * mounted twice through two loop devices would be corrupted.
 */
async function releaseStale(devicePath: string, log: (line: string) => void): Promise<void> {
  for (const loop of await loopsOf(devicePath)) {
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((line) => line.split(' '))
      .filter(([source]) => source === loop)
      .map(([, target]) => target as string);
    log(
      `volume ${devicePath}: releasing ${loop} left by an interrupted run${mounts.length ? ` (mounted at ${mounts.join(', ')})` : ''}`,
    );
    for (const target of mounts) await run('umount', [target]);
    await detachLoop(loop);
  }
}

/**
 * Opens the volume on `devicePath`: on first use writes the GPT for `bootMode` and makes the ext4 root;
 * afterwards reuses both. Grows the root partition and filesystem when the device has grown. Mounts the
 * root and returns it; every loop device and mount made here is undone by close(), and by this function
 * itself when it fails.
 */
export async function openVolume(devicePath: string, opts: OpenVolumeOptions): Promise<MountedVolume> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const label = opts.label ?? ROOT_LABEL;
  const diskBytes = await deviceBytes(devicePath);
  await releaseStale(devicePath, log);

  let layout = await readLayout(devicePath);
  let newTable = false;
  if (!layout) {
    log(`volume ${devicePath}: blank disk, writing a GPT for ${opts.bootMode}`);
    layout = await writeLayout(devicePath, opts.bootMode);
    newTable = true;
  }
  if (opts.bootMode === 'legacy-bios' && !layout.biosBoot)
    throw new Error(
      `${devicePath}: boot mode legacy-bios needs a BIOS boot partition, and this volume has none`,
    );
  if (opts.bootMode === 'uefi' && !layout.esp)
    throw new Error(`${devicePath}: boot mode uefi needs an EFI system partition, and this volume has none`);

  // The backup GPT occupies the last 33 sectors; anything beyond that and the root's end is growth.
  let grown: { fromBytes: number; toBytes: number } | undefined;
  const lastUsable = Math.floor(diskBytes / SECTOR) - 34;
  if (!newTable && lastUsable - (layout.root.start + layout.root.sectors - 1) >= 2048) {
    const fromBytes = layout.root.sectors * SECTOR;
    const after = await growRootPartition(devicePath, layout);
    if (after) {
      layout = after;
      grown = { fromBytes, toBytes: after.root.sectors * SECTOR };
      log(
        `volume ${devicePath}: device grew to ${gib(diskBytes)}; growing root partition and filesystem ` +
          `from ${gib(grown.fromBytes)} to ${gib(grown.toBytes)}`,
      );
    }
  }

  const cleanups: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => {});
  };
  try {
    const rootDevice = await attachLoop(devicePath, {
      offset: layout.root.start * SECTOR,
      sizeLimit: layout.root.sectors * SECTOR,
    });
    cleanups.push(() => detachLoop(rootDevice));

    const fs = newTable ? {} : await probeFilesystem(rootDevice);
    if (grown && fs.type === 'ext4') {
      // Offline: online resizing is refused on this kernel's loop devices, and resize2fs wants a checked fs.
      // e2fsck exits 1 when it corrected something: the filesystem is fine afterwards.
      await run('e2fsck', ['-f', '-p', rootDevice]).catch((err) => {
        if (!(err instanceof ToolError && err.exitCode === 1)) throw err;
        return '';
      });
      await run('resize2fs', [rootDevice]);
    }
    let fresh = false;
    if (!fs.type) {
      log(
        `volume ${devicePath}: creating ext4 "${label}" on the root partition (${gib(layout.root.sectors * SECTOR)})`,
      );
      await run('mkfs.ext4', ['-F', '-q', '-L', label, ...(opts.mkfsArgs ?? MKFS_EXT4_ARGS), rootDevice]);
      fresh = true;
    } else if (fs.type !== 'ext4') {
      throw new Error(`${devicePath}: root partition holds a ${fs.type} filesystem, expected ext4`);
    }

    const createdMount = !opts.mountPoint;
    const root = opts.mountPoint ?? (await mkdtemp(join(tmpdir(), 'stemcell-root-')));
    if (createdMount) cleanups.push(() => rmdir(root));
    else await mkdir(root, { recursive: true });
    const mountOptions = opts.mountOptions ?? MOUNT_OPTIONS;
    await run('mount', [
      '-t',
      'ext4',
      ...(mountOptions.length ? ['-o', mountOptions.join(',')] : []),
      rootDevice,
      root,
    ]);
    let mounted = true;
    const unmount = async () => {
      if (!mounted) return;
      await run('umount', [root]);
      mounted = false;
    };
    cleanups.push(unmount);

    let state: Awaited<ReturnType<typeof openStatePartition>> | undefined;
    if (opts.state && layout.state) {
      state = await openStatePartition(devicePath, layout.state, { ...opts.state, log });
      cleanups.push(state.close);
    } else if (opts.state) {
      log(
        `volume ${devicePath}: no state partition (partitioned before stemcell kept its manifest on the volume); the manifest stays on this builder`,
      );
    }

    const effectiveLabel = fs.label ?? label;
    const finalLayout = layout;
    const boot = (info: BootInfo) =>
      makeBootable(root, {
        ...info,
        bootMode: opts.bootMode,
        ...(opts.architecture ? { architecture: opts.architecture } : {}),
        label: effectiveLabel,
        devicePath,
        layout: finalLayout,
        rootDevice,
        log,
      });
    return {
      kind: 'block',
      root,
      fresh,
      devicePath,
      rootDevice,
      layout: finalLayout,
      label: effectiveLabel,
      bootMode: opts.bootMode,
      ...(state ? { manifest: state.manifest } : {}),
      makeBootableWithResult: boot,
      makeBootable: async (info) => {
        await boot(info);
      },
      freeze: () => freeze(root),
      flush: () => syncFilesystem(root),
      quiesce: async () => {
        await syncFilesystem(root);
        await unmount();
        await state?.quiesce();
      },
      // Read-only again after quiesce: a fresh mount reads the device, not the writer's page cache.
      inspect: async (work) => {
        if (mounted) throw new Error(`${root}: inspect() needs a quiesced (unmounted) volume`);
        await run('mount', ['-t', 'ext4', '-o', 'ro,noload', rootDevice, root]);
        mounted = true;
        try {
          return await work(root);
        } finally {
          await unmount();
        }
      },
      close: undo,
    };
  } catch (err) {
    await undo();
    throw err;
  }
}

/** The fallback volume: a plain directory. No partition table, bootloader or block snapshot. */
export async function openDirectoryVolume(
  path: string,
  opts: { bootMode: BootMode; label?: string; log?: (line: string) => void },
): Promise<MountedVolume> {
  await mkdir(path, { recursive: true });
  const fresh = (await readdir(path)).length === 0;
  const label = opts.label ?? ROOT_LABEL;
  const boot = (info: BootInfo) =>
    makeBootable(path, { ...info, bootMode: opts.bootMode, label, ...(opts.log ? { log: opts.log } : {}) });
  return {
    kind: 'directory',
    root: path,
    fresh,
    label,
    bootMode: opts.bootMode,
    makeBootableWithResult: boot,
    makeBootable: async (info) => {
      await boot(info);
    },
    freeze: async () => {
      if (existsSync(path)) await syncFilesystem(path);
      return async () => {};
    },
    flush: () => syncFilesystem(path),
    quiesce: () => syncFilesystem(path),
    close: async () => {},
  };
}

/**
 * The builder's Workspace over attachments: a block device gets the partitioned ext4 volume, a directory
 * attachment the directory fallback. Mount points live under `mountRoot`, one per volume.
 */
export class DeviceWorkspace implements Workspace {
  readonly #mountRoot: string;
  readonly #log: (line: string) => void;
  readonly #mkfsArgs: readonly string[] | undefined;

  constructor(opts: { mountRoot?: string; log?: (line: string) => void; mkfsArgs?: readonly string[] } = {}) {
    this.#mountRoot = opts.mountRoot ?? join(tmpdir(), 'stemcell-mnt');
    this.#log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#mkfsArgs = opts.mkfsArgs;
  }

  async open(
    attachment: Attachment,
    opts: {
      volumeId: string;
      bootMode: BuildJob['bootMode'];
      sizeGiB: number;
      architecture?: BuildJob['architecture'];
    },
  ): Promise<MountedVolume> {
    if (attachment.kind === 'directory')
      return openDirectoryVolume(attachment.path, { bootMode: opts.bootMode, log: this.#log });
    const bytes = await deviceBytes(attachment.devicePath);
    if (bytes < opts.sizeGiB * 2 ** 30)
      this.#log(
        `volume ${opts.volumeId}: ${attachment.devicePath} is ${gib(bytes)}, smaller than ${opts.sizeGiB} GiB`,
      );
    return openVolume(attachment.devicePath, {
      bootMode: opts.bootMode,
      ...(opts.architecture ? { architecture: opts.architecture } : {}),
      mountPoint: join(this.#mountRoot, opts.volumeId),
      state: {
        mountPoint: join(this.#mountRoot, `${opts.volumeId}.state`),
        scratchPath: join(this.#mountRoot, `${opts.volumeId}.manifest`, 'manifest.json'),
      },
      log: this.#log,
      ...(this.#mkfsArgs ? { mkfsArgs: this.#mkfsArgs } : {}),
    });
  }
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
}
