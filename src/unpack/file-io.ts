// Reading and comparing file bytes for the file writer (file-writer.ts): sparse maps walked piece by piece,
// windows compared with the disk, a file's content id read back from disk.
import { type BigIntStats, closeSync, constants, openSync, readSync, type Stats } from 'node:fs';
import { ContentDigest, WINDOW } from './content.ts';
import type { FileJob, InodeStamp } from './file-jobs.ts';
import type { ManifestRecord } from './manifest.ts';
import type { XattrList } from './tree-ops.ts';

export const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW;

export function toStamp(st: Stats): InodeStamp {
  return [st.ino, st.mtimeMs, st.ctimeMs];
}

/** Attributes as they crossed threads (structured clone makes Buffers plain Uint8Arrays). */
export function toMap(list: XattrList): Map<string, Buffer> {
  return new Map(
    list.map(([name, value]) => [name, Buffer.from(value.buffer, value.byteOffset, value.byteLength)]),
  );
}

/** Calls back with each piece of stored data at its offset in the file, following the map. */
export function forEachSegmentPiece(
  pieces: Buffer[],
  map: NonNullable<FileJob['sparse']>,
  each: (offset: number, piece: Buffer) => void,
): void {
  let segment = 0;
  let done = 0;
  for (const piece of pieces) {
    let at = 0;
    while (at < piece.length) {
      const [offset, length] = map.segments[segment]!;
      if (done === length) {
        segment++;
        done = 0;
        continue;
      }
      const take = Math.min(length - done, piece.length - at);
      each(offset + done, piece.subarray(at, at + take));
      done += take;
      at += take;
    }
  }
}

export function readEquals(fd: number, chunk: Buffer, position: number): boolean {
  const scratch = Buffer.allocUnsafe(chunk.length);
  let got = 0;
  while (got < chunk.length) {
    const n = readSync(fd, scratch, got, chunk.length - got, position + got);
    if (n === 0) return false;
    got += n;
  }
  return scratch.equals(chunk);
}

/** The content id of a file on disk (holes read as zeros). */
export function diskContentId(abs: string | Buffer, size: number): string {
  const fd = openSync(abs, READ_FLAGS);
  try {
    const digest = new ContentDigest(false);
    let position = 0;
    while (position < size) {
      // A fresh buffer per read: the digest may hold a window's bytes until the next one arrives.
      const buffer = Buffer.allocUnsafe(WINDOW);
      const n = readSync(fd, buffer, 0, Math.min(WINDOW, size - position), position);
      if (n === 0) break;
      digest.update(buffer.subarray(0, n));
      position += n;
    }
    return digest.finish().h;
  } finally {
    closeSync(fd);
  }
}

/** An entry's record of what lstat says: type, size, mode, owner and the exact mtime (seconds, nanoseconds). */
export function statRecord(t: ManifestRecord['t'], st: BigIntStats): ManifestRecord {
  const ns = st.mtimeNs;
  let sec = ns / 1_000_000_000n;
  if (ns < 0n && sec * 1_000_000_000n !== ns) sec -= 1n;
  const rec: ManifestRecord = {
    t,
    s: Number(st.size),
    m: Number(st.mode) & 0o7777,
    u: Number(st.uid),
    g: Number(st.gid),
    mt: Number(sec),
  };
  const nsec = Number(ns - sec * 1_000_000_000n);
  if (nsec) rec.mn = nsec;
  return rec;
}

/** A regular file's record as the disk has it (exact mtime), with the manifest's attributes (the disk's are not read). */
export function diskRecord(st: BigIntStats, manifest: ManifestRecord): ManifestRecord {
  const rec = statRecord('file', st);
  if (manifest.x) rec.x = manifest.x;
  return rec;
}
