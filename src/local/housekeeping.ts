// What a killed local stack leaves in its data folder, and how a restarted one clears it:
// - child processes (sgdisk, grub-bios-setup, mkfs, tar…) that outlived it: every process the stack starts
//   inherits STEMCELL_DATA_FOLDER=<its data folder>, so a restart finds exactly those (and no other engineer's
//   or test's processes) in /proc and kills them;
// - a second stack on the same folder would corrupt it: the pid file refuses one while the first is alive;
// - temporary files of writes that never reached their rename (`….<pid>.<n>.tmp`, `.tmp-<pid>`, uploads),
//   removed when the process that wrote them is gone.

import { readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '#errors';
import { writeFileAtomic } from './json-state.ts';

export const DATA_FOLDER_ENV = 'STEMCELL_DATA_FOLDER';
const PID_FILE = 'stack.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Processes (not this one, not its children) whose environment names `dataDir` as their stack's data folder. */
export function processesOf(dataDir: string): Array<{ pid: number; command: string }> {
  const marker = `${DATA_FOLDER_ENV}=${realpathSync(dataDir)}`;
  const found: Array<{ pid: number; command: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      if (!environ.includes(marker)) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) continue; // a child of this (live) stack
      const command = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim();
      found.push({ pid, command });
    } catch {
      // gone meanwhile, or not readable: not ours to judge
    }
  }
  return found;
}

export class DataFolderInUseError extends InputError {
  override readonly name = 'DataFolderInUseError';
}

/**
 * Makes this process the data folder's stack: refuses while another live stack holds it, kills what the
 * previous (dead) one left running, and marks the environment so every child started from here on is
 * recognisable. Returns the processes killed.
 */
export function claimDataFolder(dataDir: string): Array<{ pid: number; command: string }> {
  const pidFile = join(dataDir, PID_FILE);
  let previous: number | undefined;
  try {
    previous = Number(readFileSync(pidFile, 'utf8').trim());
  } catch {
    previous = undefined;
  }
  if (previous && previous !== process.pid && alive(previous) && isStackOf(previous, dataDir))
    throw new DataFolderInUseError(
      `data folder ${dataDir} is in use by another stemcell process (pid ${previous}); stop it first`,
    );
  const leftovers = processesOf(dataDir);
  for (const { pid } of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  writeFileAtomic(pidFile, `${process.pid}\n`);
  process.env[DATA_FOLDER_ENV] = realpathSync(dataDir);
  return leftovers;
}

export function releaseDataFolder(dataDir: string): void {
  try {
    if (Number(readFileSync(join(dataDir, PID_FILE), 'utf8').trim()) === process.pid)
      rmSync(join(dataDir, PID_FILE), { force: true });
  } catch {
    // no pid file: nothing to release
  }
}

function isStackOf(pid: number, dataDir: string): boolean {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    return environ.includes(`${DATA_FOLDER_ENV}=${realpathSync(dataDir)}`);
  } catch {
    return false;
  }
}

/** `….<pid>.<n>.tmp`, `….tmp-<pid>`, `….<pid>.<hex>.upload`, `….<pid>.restore.tmp`: the writer's pid. */
const TEMPORARY = [
  /\.(\d+)\.\d+\.tmp$/,
  /\.tmp-(\d+)$/,
  /\.(\d+)\.[0-9a-f]+\.upload$/,
  /\.(\d+)\.restore\.tmp$/,
];

/** Every temporary file under the data folder, with the pid of its writer (mounts and volume trees skipped). */
export function findTemporaries(dataDir: string): Array<{ path: string; pid: number }> {
  const found: Array<{ path: string; pid: number }> = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const st = statSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) {
        // Never inside a mounted volume or a directory volume's tree: that is image content.
        if (path !== join(dataDir, 'mnt') && !/^vol-[0-9a-f]+\.d$/.test(name)) walk(path);
        continue;
      }
      for (const pattern of TEMPORARY) {
        const pid = Number(pattern.exec(name)?.[1]);
        if (pid) {
          found.push({ path, pid });
          break;
        }
      }
    }
  };
  walk(dataDir);
  return found;
}

/** Removes temporary files whose writer is gone. Returns their paths. */
export function removeOrphanTemporaries(dataDir: string): string[] {
  const removed: string[] = [];
  for (const { path, pid } of findTemporaries(dataDir)) {
    if (pid === process.pid || alive(pid)) continue; // a write in progress
    rmSync(path, { force: true });
    removed.push(path);
  }
  return removed;
}
