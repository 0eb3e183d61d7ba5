// The stream's own state, kept on its volume: a small GPT partition of stemcell's own type that the booted
// image never mounts (fstab names only the root, by label, and no OS knows the type). The apply manifest lives
// there, so any builder that attaches the volume applies the next revision incrementally, whoever applied
// the last one. A builder's root disk holds only a scratch copy while a build runs.
//
// The copy on the volume is gzip'd: it lands in every snapshot of the volume, so its size is snapshot delta.
// Its life: on open the volume's copy becomes the scratch copy; before the apply touches the tree the volume's
// copy is removed (durably), so a crash mid-apply leaves no manifest that a later builder would trust; after a
// completed apply the new manifest goes back, written to a temporary name, fsynced and renamed.
//
// Next to it, the per-block digests of the stream's last direct-API snapshot (../snapshot/digests.ts): the
// table the next build compares the disk with. It is written the same way, and may be written after quiesce
// (the snapshot is taken from the quiesced disk), so the partition is mounted again for that write.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { syncFilesystem } from '../quiesce.ts';
import { type BlockDigests, decodeDigests, encodeDigests } from '../snapshot/digests.ts';
import { run } from './exec.ts';
import { type Partition, SECTOR } from './gpt.ts';
import { attachLoop, detachLoop } from './loop.ts';
import { probeFilesystem } from './probe.ts';

export const STATE_LABEL = 'stemcell-state';
const MANIFEST = 'manifest.gz';
const DIGESTS = 'block-digests.gz';

/** The apply manifest of one open volume, as the worker uses it around an apply. */
export interface ManifestStore {
  /** Where the applier reads and writes the manifest during this open: the scratch copy. */
  readonly path: string;
  /** The tree is about to change: the volume's copy stops being trusted. */
  invalidate(): Promise<void>;
  /** The apply completed: the scratch copy becomes the volume's copy. */
  commit(): Promise<void>;
}

/** The parent snapshot's block digests, kept on the state partition. */
export interface DigestStore {
  /** The table found on the volume when it was opened, if any and readable. */
  load(): Promise<BlockDigests | undefined>;
  /** Replaces the table durably (mounting the partition again if it was quiesced). */
  save(digests: BlockDigests): Promise<void>;
}

export interface StatePartition {
  manifest: ManifestStore;
  digests: DigestStore;
  /** Syncs and unmounts, before the snapshot. */
  quiesce(): Promise<void>;
  /** Unmounts (if still mounted), detaches, removes the mount point; safe twice and on failure. */
  close(): Promise<void>;
}

/**
 * Mounts the state partition of the disk on `devicePath` at `mountPoint` (making its filesystem on first
 * use) and copies the volume's manifest, if any, to `scratchPath` (a file outside the image tree).
 */
export async function openStatePartition(
  devicePath: string,
  partition: Partition,
  opts: { mountPoint: string; scratchPath: string; log: (line: string) => void },
): Promise<StatePartition> {
  const cleanups: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch(() => {});
  };
  try {
    const device = await attachLoop(devicePath, {
      offset: partition.start * SECTOR,
      sizeLimit: partition.sectors * SECTOR,
    });
    cleanups.push(() => detachLoop(device));
    const fs = await probeFilesystem(device);
    if (!fs.type) {
      opts.log(`volume ${devicePath}: creating the state partition's filesystem "${STATE_LABEL}"`);
      await run('mkfs.ext4', ['-F', '-q', '-L', STATE_LABEL, '-b', '4096', device]);
    } else if (fs.type !== 'ext4') {
      throw new Error(`${devicePath}: state partition holds a ${fs.type} filesystem, expected ext4`);
    }
    await mkdir(opts.mountPoint, { recursive: true });
    cleanups.push(() => rmdir(opts.mountPoint));
    const mount = () => run('mount', ['-t', 'ext4', '-o', 'noatime', device, opts.mountPoint]);
    await mount();
    let mounted = true;
    const unmount = async () => {
      if (!mounted) return;
      await run('umount', [opts.mountPoint]);
      mounted = false;
    };
    cleanups.push(unmount);

    const digestsPath = join(opts.mountPoint, DIGESTS);
    const found = await readFile(digestsPath).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const decoded = found ? decodeDigests(found) : {};
    if (decoded.problem)
      opts.log(
        `volume ${devicePath}: the block digests on the state partition are unusable (${decoded.problem})`,
      );
    let current = decoded.digests;
    const digests: DigestStore = {
      load: async () => current,
      save: async (table) => {
        const wasMounted = mounted;
        if (!wasMounted) {
          await mount();
          mounted = true;
        }
        try {
          const tmp = `${digestsPath}.tmp`;
          await writeFile(tmp, encodeDigests(table));
          await fsyncPath(tmp);
          await rename(tmp, digestsPath);
          await fsyncPath(opts.mountPoint);
          current = table;
        } finally {
          if (!wasMounted) {
            await syncFilesystem(opts.mountPoint);
            await unmount();
          }
        }
      },
    };

    const onVolume = join(opts.mountPoint, MANIFEST);
    await mkdir(dirname(opts.scratchPath), { recursive: true });
    await rm(opts.scratchPath, { force: true });
    const had = await pipeline(
      createReadStream(onVolume),
      createGunzip(),
      createWriteStream(opts.scratchPath),
    )
      .then(() => true)
      .catch(async (err: NodeJS.ErrnoException) => {
        await rm(opts.scratchPath, { force: true });
        if (err.code === 'ENOENT') return false;
        // A damaged copy is no copy: the next apply verifies the tree, and writes a good one.
        opts.log(`volume ${devicePath}: the manifest on the state partition is unreadable (${err.message})`);
        return false;
      });
    if (!had)
      opts.log(`volume ${devicePath}: no apply manifest on the volume; the next apply verifies the tree`);
    cleanups.push(() => rm(opts.scratchPath, { force: true }));

    const manifest: ManifestStore = {
      path: opts.scratchPath,
      invalidate: async () => {
        await rm(onVolume, { force: true });
        await fsyncPath(opts.mountPoint);
      },
      commit: async () => {
        const tmp = `${onVolume}.tmp`;
        await pipeline(createReadStream(opts.scratchPath), createGzip(), createWriteStream(tmp));
        await fsyncPath(tmp);
        await rename(tmp, onVolume);
        await fsyncPath(opts.mountPoint);
      },
    };
    return {
      manifest,
      digests,
      quiesce: async () => {
        await syncFilesystem(opts.mountPoint);
        await unmount();
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
