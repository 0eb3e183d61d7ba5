// Small tree operations shared by the applier (main thread) and the file writer (its own thread).
import { type BigIntStats, lstatSync, readdirSync, rmdirSync, type Stats, unlinkSync } from 'node:fs';
import type { ManifestRecord } from './manifest.ts';
import type { EntryType } from './tar-reader.ts';

export function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

export function typeOfStats(st: Stats | BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'fifo';
}

export function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

export function minor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

/** rm -r without following symlinks; returns how many names it removed. */
export function removeTree(path: string | Buffer): number {
  const st = lstatSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) {
    unlinkSync(path);
    return 1;
  }
  let count = 1;
  const prefix = Buffer.isBuffer(path) ? path : Buffer.from(path);
  for (const name of readdirSync(path, { encoding: 'buffer' })) {
    count += removeTree(Buffer.concat([prefix, Buffer.from('/'), name]));
  }
  rmdirSync(path);
  return count;
}

/**
 * Whether the disk still holds the regular file the last apply left at this path: the same inode, size,
 * mtime and ctime as its manifest record's stamp (a write, chmod, chown, rename over it or touch all move
 * the ctime, which no caller can set back).
 */
export function inodeAgrees(st: Stats | undefined, rec: ManifestRecord): boolean {
  const stamp = rec.n;
  if (!stamp) return false;
  return (
    st?.isFile() === true &&
    st.ino === stamp[0] &&
    st.size === rec.s &&
    st.mtimeMs === stamp[1] &&
    st.ctimeMs === stamp[2]
  );
}

export function sameMtime(rec: ManifestRecord, entry: { mtime: number; mtimeNsec: number }): boolean {
  return rec.mt === entry.mtime && (rec.mn ?? 0) === entry.mtimeNsec;
}

/** Whether Node's double-precision time setters cannot set this mtime exactly (see fs-helper.ts). */
export function needsPreciseTime(entry: { mtime: number; mtimeNsec: number }): boolean {
  return entry.mtimeNsec !== 0 || entry.mtime < 0;
}

export type XattrList = Array<[name: string, value: Buffer]>;

export function xattrRecord(xattrs: ReadonlyMap<string, Buffer> | XattrList): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of xattrs) out[name] = value.toString('base64');
  return out;
}

export function xattrMap(record: Record<string, string>): Map<string, Buffer> {
  return new Map(Object.entries(record).map(([name, value]) => [name, Buffer.from(value, 'base64')]));
}

export function xattrsEqual(
  a: ReadonlyMap<string, Buffer> | null | undefined,
  b: ReadonlyMap<string, Buffer> | null | undefined,
): boolean {
  const sa = a?.size ?? 0;
  const sb = b?.size ?? 0;
  if (sa !== sb) return false;
  if (sa === 0) return true;
  for (const [name, value] of a!) {
    const other = b!.get(name);
    if (!other?.equals(value)) return false;
  }
  return true;
}
