// Bringing a mounted filesystem to rest before its device is snapshotted: nothing dirty in memory, no write
// in flight. EBS snapshots a live device at an instant, so freezing is enough there; locally the device is
// usually unmounted as well, before its blocks are read.
import { open, readFile } from 'node:fs/promises';
import { run } from './volume/exec.ts';

/** Flushes one filesystem (syncfs), not the whole machine. */
export async function syncFilesystem(mountPoint: string): Promise<void> {
  await run('sync', ['--file-system', mountPoint]);
}

/** Flushes a block device's buffers to its backing store (fsync on the device node). */
export async function flushDevice(devicePath: string): Promise<void> {
  const handle = await open(devicePath, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Syncs and freezes the filesystem mounted at `mountPoint`; returns the thaw. While frozen every write to it
 * blocks, so the caller must thaw in finally.
 */
export async function freeze(mountPoint: string): Promise<() => Promise<void>> {
  await syncFilesystem(mountPoint);
  await run('fsfreeze', ['--freeze', mountPoint]);
  let thawed = false;
  return async () => {
    if (thawed) return;
    thawed = true;
    await run('fsfreeze', ['--unfreeze', mountPoint]);
  };
}

/** Runs `work` with the filesystem frozen, and thaws whatever happens. */
export async function whileFrozen<T>(mountPoint: string, work: () => Promise<T>): Promise<T> {
  const thaw = await freeze(mountPoint);
  try {
    return await work();
  } finally {
    await thaw();
  }
}

/**
 * The watchdog's half that survives a crash: a filesystem left frozen or mounted under our mount root by a dead
 * agent is thawed and unmounted before the next job (and by the unit's ExecStopPost).
 */
export async function recoverMounts(mountRoot: string, log: (line: string) => void): Promise<number> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((point): point is string => Boolean(point?.startsWith(`${mountRoot}/`)));
  for (const point of mounts) {
    await run('fsfreeze', ['--unfreeze', point]).catch(() => undefined); // not frozen: fine
    await run('umount', [point]);
    log(`builder: recovered ${point} left by a previous run (thawed, unmounted)`);
  }
  return mounts.length;
}
