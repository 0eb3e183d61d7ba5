// Applies one tar stream to a target tree: the tree ends up holding exactly the archive's entries, and
// only what differs from the last apply (its manifest) or, without one, from what is on disk is written.
//
// Safety: every path is resolved as if the target were a chroot. Parent components are checked one by
// one with lstat (or known from this apply) and must be real directories; a symlink or other non-directory
// left in a parent position by a previous revision is replaced by a directory, one placed there by this
// archive rejects the archive. Only this process writes the target, so a checked component stays checked.
//
// Two threads share the work. This one (the main thread) parses, decides and shapes the tree: directories,
// symlinks, hardlinks, removals. Regular files go to the file writer's thread (writer-client.ts), which
// hashes and writes them beside it, with extended attributes, device nodes and exact times (fs-helper.ts).
// Wherever this thread needs the writer's work done first (a hardlink to a file in flight, a path replaced
// by a later entry, the end), it settles.
import {
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  type Stats,
  symlinkSync,
} from 'node:fs';
import { WHOLE_BODY_MAX } from './content.ts';
import { toStamp } from './file-io.ts';
import type { FileJob } from './file-jobs.ts';
import { MAX_DEV_MAJOR, MAX_DEV_MINOR } from './fs-helper.ts';
import type { ManifestRecord } from './manifest.ts';
import { fsPath } from './names.ts';
import type { TarEntry } from './tar-reader.ts';
import { parentOf, sameMtime, typeOfStats, xattrMap, xattrRecord } from './tree-ops.ts';
import type { OldState } from './tree-state.ts';
import { type BodySink, type ChunkOwner, modeOf, TreeWrites, withMtime } from './tree-writes.ts';
import type { XattrMap } from './xattrs.ts';

/** The manifest's content window (content.ts), where the builder and the tests have always found it. */
export { WINDOW } from './content.ts';
export type { ApplyCounters } from './tree-state.ts';

/** What mkdir gives a directory GNU tar creates for an unlisted parent (0777 less the usual umask 022). */
const IMPLIED_DIR_MODE = 0o755;
/** New files inherit a default ACL: a directory with one is not plain (see plainDirs). */
const ACL_DEFAULT = 'system.posix_acl_default';

export type { BodySink } from './tree-writes.ts';

export class TreeApplier extends TreeWrites {
  private readonly trustMtime: boolean;
  /** Directories this apply made without setgid or a default ACL: a new file there needs no chown/chmod. */
  private readonly plainDirs = new Set<string>();
  private nextJob = 0;

  constructor(
    root: string,
    old: Map<string, ManifestRecord> | null,
    diskXattrs: Map<string, XattrMap>,
    source: ChunkOwner,
    trustMtime = false,
  ) {
    super(root, old, diskXattrs, source);
    this.trustMtime = trustMtime;
    // A fresh filesystem (nothing but lost+found): no entry needs looking for on disk.
    if (!old && readdirSync(root).every((name) => name === 'lost+found')) {
      this.freshDirs.add('');
      if ((lstatSync(root).mode & 0o2000) === 0) this.plainDirs.add('');
    }
  }

  /** Applies one entry; returns where its body goes (the caller pumps it, then calls bodyDone()). */
  apply(entry: TarEntry): BodySink {
    this.counters.entries++;
    const rel = entry.path;
    if (rel === '') {
      if (entry.type !== 'dir') this.reject(entry, `a ${entry.type} entry naming the target root`);
      this.applyDir(entry, rel);
      return null;
    }
    this.ensureParents(entry, rel);
    const prev = this.seen.get(rel);
    let old: OldState | null;
    if (prev) {
      // A duplicate: the last entry wins. Directory onto directory merges, like GNU tar; anything else
      // is replaced whole, so nothing is ever written through a name this archive set up before.
      if (prev.type === 'dir' && entry.type === 'dir') {
        old = this.diskState(rel);
      } else {
        this.removeSeen(rel, prev);
        old = null;
      }
    } else {
      old = this.oldState(rel);
    }
    switch (entry.type) {
      case 'file':
        return this.applyFile(entry, rel, old);
      case 'dir':
        this.applyDir(entry, rel, old);
        break;
      case 'symlink':
        this.applySymlink(entry, rel, old);
        break;
      case 'hardlink':
        this.applyHardlink(entry, rel, old);
        break;
      case 'char':
      case 'block':
      case 'fifo':
        this.applyNode(entry, rel, old);
        break;
    }
    return null;
  }

  /** Every parent must be a real directory. Ones this archive made something else reject the entry. */
  private ensureParents(entry: TarEntry, rel: string): void {
    let slash = rel.indexOf('/');
    while (slash !== -1) {
      const dir = rel.slice(0, slash);
      const seen = this.seen.get(dir);
      if (seen) {
        if (seen.type !== 'dir') {
          this.reject(
            entry,
            `parent ${JSON.stringify(dir)} is a ${seen.type} in this archive, not a directory`,
          );
        }
      } else {
        this.ensureImplicitDir(dir);
      }
      slash = rel.indexOf('/', slash + 1);
    }
  }

  private ensureImplicitDir(dir: string): void {
    const abs = this.abs(dir);
    const st = lstatSync(abs, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      // Whatever a previous revision left here (a planted symlink included) is replaced, never followed.
      if (st) this.removeOld(dir, { rec: { t: typeOfStats(st) }, xattrs: null });
      mkdirSync(abs, IMPLIED_DIR_MODE);
      this.freshDirs.add(dir);
      this.plainDirs.add(dir);
      // Nothing below a directory made now is on disk, whatever the manifest says was there.
      this.wiped.add(dir);
      this.markDirty(parentOf(dir));
    } else {
      this.resetImpliedDir(dir, abs, st);
    }
    this.addSeen(dir, 'dir', { t: 'dir', i: 1 });
  }

  /**
   * An implied parent that is already there ends as a fresh extract makes one: owned by the extracting
   * user, mode 0755, no extended attributes, the time of the apply — not what an earlier revision that
   * listed it set. One that the last apply implied as well was reset then.
   */
  private resetImpliedDir(dir: string, abs: string | Buffer, st: Stats): void {
    const rec = this.old && !this.underWiped(dir) ? this.old.get(dir) : undefined;
    if (rec?.i === 1) return;
    const uid = process.getuid?.() ?? st.uid;
    const gid = process.getgid?.() ?? st.gid;
    if (st.uid !== uid || st.gid !== gid) lchownSync(abs, uid, gid);
    // lstat said directory, and only this process writes the tree: chmod cannot follow a link here.
    if ((st.mode & 0o7777) !== IMPLIED_DIR_MODE) chmodSync(abs, IMPLIED_DIR_MODE);
    const had = this.old ? (rec?.x ? xattrMap(rec.x) : null) : (this.diskXattrs.get(dir) ?? null);
    if (had?.size) this.writer.xattrs(dir, [], [...had.keys()]);
    const now = Date.now() / 1000;
    lutimesSync(abs, now, now);
  }

  // ---- regular files: decided here, hashed and written by the writer ----------------------------------

  private applyFile(entry: TarEntry, rel: string, oldIn: OldState | null): BodySink {
    let old = oldIn;
    if (old && old.rec.t !== 'file') {
      this.removeOld(rel, old);
      old = null;
    }
    const size = entry.sparse ? entry.sparse.realSize : entry.size;
    const rec = withMtime({ t: 'file', s: size, m: modeOf(entry), u: entry.uid, g: entry.gid }, entry);
    if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
    let quick = false;
    if (this.trustMtime && this.old && old?.rec.h && old.rec.s === size && sameMtime(old.rec, entry)) {
      // Opt-in quick check (like rsync's): same size and mtime as the manifest says, and the disk still as the
      // last apply left it (the writer checks the inode stamp), means same content: the body goes unhashed.
      // Wrong for archives whose mtimes are clamped (an edit may keep both). A manifest without stamps (an
      // older stemcell's) is taken at its word, and the body skipped here.
      if (!old.rec.n) return this.quickCheckSkip(entry, rel, old, rec);
      quick = true;
    }
    const shared = old !== null && (this.old ? this.oldShared.has(rel) : (old.nlink ?? 1) > 1);
    const parent = parentOf(rel);
    const job: FileJob = {
      id: ++this.nextJob,
      rel,
      size: entry.size,
      sparse: entry.sparse,
      uid: entry.uid,
      gid: entry.gid,
      mode: entry.mode,
      recMode: rec.m!,
      mtime: entry.mtime,
      mtimeNsec: entry.mtimeNsec,
      xattrs: entry.xattrs?.size ? [...entry.xattrs] : null,
      old: old ? { rec: oldFileRecord(old, entry.size, shared || entry.sparse !== null) } : null,
      fromManifest: this.old !== null,
      quick,
      shared,
      freshParent: this.plainDirs.has(parent),
    };
    this.inFlight.set(job.id, { rel, rec });
    this.inFlightPaths.set(rel, job.id);
    this.addSeen(rel, 'file', rec);
    const here = this.writeHereIfBehind(job);
    if (here) return here;
    this.writer.file(job);
    return this.bodySink;
  }

  private readonly bodySink = (piece: Buffer): void => this.writer.data(piece);

  /**
   * The quick check's skip for a record without an inode stamp (an older stemcell's manifest, taken at its
   * word): the body goes unread; owner, mode, mtime and xattrs are still applied.
   */
  private quickCheckSkip(entry: TarEntry, rel: string, old: OldState, rec: ManifestRecord): null {
    rec.h = old.rec.h;
    if (old.rec.b) rec.b = old.rec.b;
    const changed = this.applyMetadata(entry, rel, old, false);
    // Stamped now, so the next quick check can tell an edit made behind the manifest's back (the helper's
    // attribute requests restamp it later).
    const st = lstatSync(this.abs(rel), { throwIfNoEntry: false });
    if (st?.isFile()) rec.n = toStamp(st);
    this.count(false, changed);
    this.addSeen(rel, 'file', rec);
    return null;
  }

  // ---- directories, symlinks, hardlinks, nodes --------------------------------------------------------

  private applyDir(entry: TarEntry, rel: string, oldIn?: OldState | null): void {
    let old = oldIn === undefined ? this.diskOrManifest(rel) : oldIn;
    const abs = this.abs(rel);
    let created = false;
    // Directories are what later paths resolve through: the manifest's word is checked against the disk
    // (a symlink put there behind the manifest's back is replaced, never followed).
    if (
      this.old &&
      old?.rec.t === 'dir' &&
      rel !== '' &&
      !lstatSync(abs, { throwIfNoEntry: false })?.isDirectory()
    ) {
      old = this.diskState(rel);
    }
    if (old && old.rec.t !== 'dir') {
      this.removeOld(rel, old);
      old = null;
    }
    if (!old) {
      this.markDirty(parentOf(rel));
      try {
        mkdirSync(abs, 0o700);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        this.removeDiskEntry(rel);
        mkdirSync(abs, 0o700);
      }
      this.freshDirs.add(rel);
      // A manifest-known directory found gone or replaced behind its back: its records below are void too.
      this.wiped.add(rel);
      created = true;
    }
    const rec = withMtime({ t: 'dir', m: modeOf(entry), u: entry.uid, g: entry.gid }, entry);
    if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
    const metaChanged = this.applyMetadata(entry, rel, old, false);
    this.count(created, metaChanged);
    // New files inherit a setgid directory's group and a default ACL: those need the full chown and chmod.
    if (this.freshDirs.has(rel) && (entry.mode & 0o2000) === 0 && !entry.xattrs?.has(ACL_DEFAULT)) {
      this.plainDirs.add(rel);
    } else {
      this.plainDirs.delete(rel);
    }
    const seen = this.seen.get(rel);
    if (rel === '' || !seen) this.addSeen(rel, 'dir', rec);
    else seen.rec = rec; // a duplicate directory merged into the first: keep its place in the manifest
  }

  private applySymlink(entry: TarEntry, rel: string, oldIn: OldState | null): void {
    let old = oldIn;
    const target = entry.linkname;
    if (old && !(old.rec.t === 'symlink' && old.rec.l === target)) {
      this.removeOld(rel, old);
      old = null;
    }
    if (!old) {
      this.markDirty(parentOf(rel));
      try {
        symlinkSync(fsPath(target), this.abs(rel));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENAMETOOLONG') this.reject(entry, 'symlink target too long for this filesystem');
        if (code !== 'EEXIST') throw err;
        this.removeDiskEntry(rel);
        symlinkSync(fsPath(target), this.abs(rel));
      }
    }
    const rec = withMtime({ t: 'symlink', l: target, u: entry.uid, g: entry.gid }, entry);
    if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
    const metaChanged = this.applyMetadata(entry, rel, old, false);
    this.count(!old, metaChanged);
    this.addSeen(rel, 'symlink', rec);
  }

  private applyHardlink(entry: TarEntry, rel: string, oldIn: OldState | null): void {
    const target = entry.linkname;
    const targetSeen = this.seen.get(target);
    if (!targetSeen)
      this.reject(entry, `hardlink target ${JSON.stringify(target)} is not an earlier entry of this archive`);
    if (targetSeen.type === 'dir') this.reject(entry, `hardlink to directory ${JSON.stringify(target)}`);
    if (target === rel) this.reject(entry, 'hardlink to itself');
    // The target must exist as the writer leaves it (and its inode be known) before a name is linked to it.
    const targetJob = this.inFlightPaths.get(target);
    if (targetJob !== undefined) this.writer.waitUntil(() => !this.inFlight.has(targetJob));
    if (this.pendingNodes.has(target)) this.settle();
    let old = oldIn;
    let same = false;
    if (old) {
      if (this.old) {
        same = old.rec.t === 'hardlink' && old.rec.l === target && !this.inodeReplaced.has(target);
      } else {
        const targetStat = lstatSync(this.abs(target));
        same = old.ino !== undefined && old.ino === targetStat.ino;
      }
    }
    if (!same) {
      if (old) this.removeOld(rel, old);
      old = null;
      this.markDirty(parentOf(rel));
      try {
        linkSync(this.abs(target), this.abs(rel));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        this.removeDiskEntry(rel);
        linkSync(this.abs(target), this.abs(rel));
      }
    }
    // A new name changes the target's ctime: its stamp is taken again.
    if (!same && targetSeen.type === 'file') this.writer.stampAgain([target]);
    this.count(!same, false);
    // The link shares its target's inode; it is recorded by target so the group can be checked next time.
    this.addSeen(rel, 'hardlink', { t: 'hardlink', l: target });
  }

  private applyNode(entry: TarEntry, rel: string, oldIn: OldState | null): void {
    let old = oldIn;
    const rdev: [number, number] = [entry.devmajor, entry.devminor];
    if (entry.type !== 'fifo' && (entry.devmajor > MAX_DEV_MAJOR || entry.devminor > MAX_DEV_MINOR)) {
      this.reject(entry, `device number ${entry.devmajor}:${entry.devminor} out of range`);
    }
    const sameNode =
      old !== null &&
      old.rec.t === entry.type &&
      (entry.type === 'fifo' || (old.rec.r?.[0] === rdev[0] && old.rec.r?.[1] === rdev[1]));
    if (old && !sameNode) {
      this.removeOld(rel, old);
      old = null;
    }
    const rec = withMtime({ t: entry.type, m: modeOf(entry), u: entry.uid, g: entry.gid }, entry);
    if (entry.type !== 'fifo') rec.r = rdev;
    if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
    if (!old) {
      // Made by the writer's helper (one process for many nodes), with owner, mode and exact time.
      this.markDirty(parentOf(rel));
      // Whatever the manifest did not know about is replaced, never reused.
      if (lstatSync(this.abs(rel), { throwIfNoEntry: false })) this.removeDiskEntry(rel);
      this.writer.node({
        rel,
        type: entry.type as 'char' | 'block' | 'fifo',
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        major: entry.devmajor,
        minor: entry.devminor,
        mtime: entry.mtime,
        mtimeNsec: entry.mtimeNsec,
      });
      this.pendingNodes.add(rel);
      if (entry.xattrs?.size) this.writer.xattrs(rel, [...entry.xattrs], []);
      this.count(true, false);
    } else {
      this.count(false, this.applyMetadata(entry, rel, old, false));
    }
    this.addSeen(rel, entry.type, rec);
  }
}

/**
 * What the writer needs of the old file's record: window digests only where it streams the body and may
 * patch it in place (above 1 MiB, one inode, not sparse), so the message stays small.
 */
function oldFileRecord(old: OldState, size: number, wholeOnly: boolean): ManifestRecord {
  const { rec } = old;
  const out: ManifestRecord = { t: 'file', s: rec.s, h: rec.h, m: rec.m, u: rec.u, g: rec.g, mt: rec.mt };
  if (rec.mn) out.mn = rec.mn;
  if (rec.n) out.n = rec.n;
  if (rec.b && !wholeOnly && size > WHOLE_BODY_MAX) out.b = rec.b;
  const x = rec.x ?? (old.xattrs?.size ? xattrRecord(old.xattrs) : undefined);
  if (x) out.x = x;
  return out;
}
