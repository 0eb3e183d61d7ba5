// State files of the local adapters. Writes go to a temporary file that is renamed over the target, so a reader
// in another process (`stemcell status`) sees the old or the new content, never half of it. Each write is
// durable before it returns, as the AWS services it stands for are once their call succeeds: the temporary
// file is fsynced before the rename, and its directory after it (without the second fsync a power loss can
// forget the rename). Synchronous on purpose: a read-modify-write then runs in one tick and cannot interleave
// with another async operation of the same (single) writer process.
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

let tmpCounter = 0;

export function readJson<T>(path: string, fallback: T): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new Error(`state file ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

export function writeJsonAtomic(path: string, value: unknown, mode?: number): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

export function writeFileAtomic(path: string, data: string | Uint8Array, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${++tmpCounter}.tmp`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

/** Makes the entries of a directory (a rename into it, a new file) survive a power loss. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Read-modify-write of one JSON state file; `update` returns the value to write and what to hand back. */
export function updateJson<T, R>(
  path: string,
  fallback: T,
  update: (state: T) => { state: T; result: R },
): R {
  const { state, result } = update(readJson(path, fallback));
  writeJsonAtomic(path, state);
  return result;
}

/** Every record of a folder of `<id>.json` files whose name matches `pattern` (none if the folder is absent). */
export function readJsonDir<T>(dir: string, pattern: RegExp = /\.json$/): T[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => pattern.test(n))
    .map((n) => readJson<T | undefined>(join(dir, n), undefined))
    .filter((r): r is T => r !== undefined);
}
