// What an apply knows about the target tree: the paths it has applied (in order, for the manifest), what was
// at a path before it (the last apply's manifest, or the disk without one), which directories it made or
// emptied, and which directories' mtimes it disturbed. TreeApplier (apply.ts) builds on this.
import { lstatSync, readlinkSync, unlinkSync } from 'node:fs';
import { ARCHIVE, RejectedArchiveError } from './errors.ts';
import { statRecord } from './file-io.ts';
import type { ManifestRecord } from './manifest.ts';
import { decodeName, fsPath } from './names.ts';
import type { EntryType, TarEntry } from './tar-reader.ts';
import { major, minor, parentOf, removeTree, typeOfStats, xattrMap } from './tree-ops.ts';
import type { XattrMap } from './xattrs.ts';

/** What is at a path before this apply touches it: from the manifest, or read from disk. */
export interface OldState {
  rec: ManifestRecord;
  xattrs: XattrMap | null;
  /** From disk only: more than one name for the inode. */
  nlink?: number;
  ino?: number;
}

export interface Seen {
  type: EntryType;
  rec: ManifestRecord;
}

export interface ApplyCounters {
  entries: number;
  filesWritten: number;
  bytesWritten: number;
  metadataUpdates: number;
  unchanged: number;
  removed: number;
}

export class TreeState {
  readonly counters: ApplyCounters = {
    entries: 0,
    filesWritten: 0,
    bytesWritten: 0,
    metadataUpdates: 0,
    unchanged: 0,
    removed: 0,
  };
  /** Every path of this apply, in the order it was applied: the new manifest. */
  readonly seen = new Map<string, Seen>();
  protected readonly root: string;
  protected readonly old: Map<string, ManifestRecord> | null;
  protected readonly diskXattrs: Map<string, XattrMap>;
  /** Paths the last apply recorded as one hardlink group: never patched in place. */
  protected readonly oldShared = new Set<string>();
  protected readonly children = new Map<string, string[]>();
  /** Old directories removed whole: manifest records below them are void. */
  protected readonly wiped = new Set<string>();
  /** Files whose inode this apply replaced (their old hardlinks no longer share it). */
  protected readonly inodeReplaced = new Set<string>();
  /** Directories whose entries changed: their mtime is set again at the end. */
  protected readonly dirtyDirs = new Set<string>();
  /** Directories this apply created: nothing can be inside them yet, so no lstat is needed there. */
  protected readonly freshDirs = new Set<string>();

  /**
   * @param old the last apply's records, or null to compare against the disk (stat + content)
   * @param diskXattrs with old = null: every xattr under root, read before the apply
   */
  constructor(root: string, old: Map<string, ManifestRecord> | null, diskXattrs: Map<string, XattrMap>) {
    this.root = root;
    this.old = old;
    this.diskXattrs = diskXattrs;
    if (old) {
      for (const [p, rec] of old) {
        if (rec.t === 'hardlink' && rec.l !== undefined) {
          this.oldShared.add(p);
          this.oldShared.add(rec.l);
        }
      }
    }
  }

  protected abs(rel: string): string | Buffer {
    return fsPath(rel === '' ? this.root : `${this.root}/${rel}`);
  }

  protected reject(entry: TarEntry, reason: string): never {
    throw new RejectedArchiveError(entry.rawPath || ARCHIVE, reason);
  }

  protected count(written: boolean, metaChanged: boolean): void {
    if (written) this.counters.filesWritten++;
    else if (metaChanged) this.counters.metadataUpdates++;
    else this.counters.unchanged++;
  }

  protected addSeen(rel: string, type: EntryType, rec: ManifestRecord): void {
    const isNew = !this.seen.has(rel);
    this.seen.set(rel, { type, rec });
    if (isNew && rel !== '') {
      const parent = parentOf(rel);
      const list = this.children.get(parent);
      if (list) list.push(rel);
      else this.children.set(parent, [rel]);
    }
  }

  protected forgetDescendants(rel: string): void {
    const list = this.children.get(rel);
    if (!list) return;
    this.children.delete(rel);
    for (const child of list) {
      if (this.seen.get(child)?.type === 'dir') this.forgetDescendants(child);
      this.seen.delete(child);
    }
  }

  /** The state before this apply, from the manifest, or from disk without one. */
  protected oldState(rel: string): OldState | null {
    if (!this.old) return this.diskState(rel);
    if (this.wiped.size > 0 && this.underWiped(rel)) return null;
    const rec = this.old.get(rel);
    if (!rec) return null;
    return { rec, xattrs: rec.x ? xattrMap(rec.x) : null };
  }

  protected diskOrManifest(rel: string): OldState | null {
    if (rel === '' && this.old) {
      const rec = this.old.get('');
      return rec ? { rec, xattrs: rec.x ? xattrMap(rec.x) : null } : this.diskState(rel);
    }
    return rel === '' ? this.diskState(rel) : this.oldState(rel);
  }

  protected underWiped(rel: string): boolean {
    let slash = rel.indexOf('/');
    while (slash !== -1) {
      if (this.wiped.has(rel.slice(0, slash))) return true;
      slash = rel.indexOf('/', slash + 1);
    }
    return this.wiped.has(rel);
  }

  protected diskState(rel: string): OldState | null {
    if (rel !== '' && this.freshDirs.has(parentOf(rel)) && !this.seen.has(rel)) return null;
    const abs = this.abs(rel);
    // bigint: the exact nanoseconds of the mtime.
    const st = lstatSync(abs, { throwIfNoEntry: false, bigint: true });
    if (!st) return null;
    const t = typeOfStats(st);
    const rec = statRecord(t, st);
    if (t === 'symlink') rec.l = decodeName(readlinkSync(abs, { encoding: 'buffer' }));
    if (t === 'char' || t === 'block') rec.r = [major(Number(st.rdev)), minor(Number(st.rdev))];
    const seen = this.seen.get(rel);
    // A directory this apply already handled has its xattrs in its record; the dump predates the apply.
    const xattrs =
      seen && !seen.rec.i ? (seen.rec.x ? xattrMap(seen.rec.x) : null) : (this.diskXattrs.get(rel) ?? null);
    return { rec, xattrs, nlink: Number(st.nlink), ino: Number(st.ino) };
  }

  protected removeOld(rel: string, old: OldState): void {
    if (rel === '') throw new Error('internal: refusing to remove the target root');
    const abs = this.abs(rel);
    if (old.rec.t === 'dir') {
      this.wiped.add(rel);
      removeTree(abs);
    } else {
      try {
        unlinkSync(abs);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EISDIR' || code === 'EPERM') this.removeDiskEntry(rel);
        else if (code !== 'ENOENT') throw err;
      }
    }
    this.markDirty(parentOf(rel));
  }

  /** Removes whatever is at rel on disk (a name the manifest did not know about). */
  protected removeDiskEntry(rel: string): number {
    if (rel === '') throw new Error('internal: refusing to remove the target root');
    const abs = this.abs(rel);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return 0;
    this.markDirty(parentOf(rel));
    if (st.isDirectory()) {
      this.wiped.add(rel);
      return removeTree(abs);
    }
    unlinkSync(abs);
    return 1;
  }

  protected markDirty(dir: string): void {
    this.dirtyDirs.add(dir);
  }

  /** The new manifest's records: every path of this apply, in the order it was applied. */
  *records(): Generator<[string, ManifestRecord]> {
    for (const [rel, seen] of this.seen) yield [rel, seen.rec];
  }
}
