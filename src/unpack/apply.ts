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
  unlinkSync,
} from 'node:fs';
import { modeWithAcl } from './acl.ts';
import { WHOLE_BODY_MAX } from './content.ts';
import type { FileJob, FileResult, InodeStamp } from './file-jobs.ts';
import { MAX_DEV_MAJOR, MAX_DEV_MINOR } from './fs-helper.ts';
import type { ManifestRecord } from './manifest.ts';
import { decodeName, fsPath, nameBytes } from './names.ts';
import type { TarEntry } from './tar-reader.ts';
import {
  inodeAgrees,
  needsPreciseTime,
  parentOf,
  removeTree,
  sameMtime,
  typeOfStats,
  xattrMap,
  xattrRecord,
  xattrsEqual,
} from './tree-ops.ts';
import { type OldState, type Seen, TreeState } from './tree-state.ts';
import { WriterClient } from './writer-client.ts';
import type { XattrMap } from './xattrs.ts';

/** The manifest's content window (content.ts), where the builder and the tests have always found it. */
export { WINDOW } from './content.ts';
export type { ApplyCounters } from './tree-state.ts';

/** What mkdir gives a directory GNU tar creates for an unlisted parent (0777 less the usual umask 022). */
const IMPLIED_DIR_MODE = 0o755;
/** Setting the access ACL sets the group bits to its mask: a later chmod must be followed by the ACL. */
const ACL_ACCESS = 'system.posix_acl_access';
const ACL_DEFAULT = 'system.posix_acl_default';

/** Where an entry's body goes: the writer (a file job), or nowhere (skipped, or no body). */
export type BodySink = ((piece: Buffer) => void) | null;

export class TreeApplier extends TreeState {
  private readonly writer: WriterClient;
  private readonly trustMtime: boolean;
  /** Directories and the entries that set their mtime, set at the very end (children change them). */
  private readonly dirMtimes = new Map<string, TarEntry>();
  private readonly dirMtimeDiffers = new Set<string>();
  /** Symlinks and directories with a fractional or negative mtime, which Node cannot set exactly. */
  private readonly preciseTimes = new Map<string, TarEntry>();
  /** Directories this apply made without setgid or a default ACL: a new file there needs no chown/chmod. */
  private readonly plainDirs = new Set<string>();
  /** File jobs handed to the writer and not yet answered, by id; and their paths. */
  private readonly inFlight = new Map<number, { rel: string; rec: ManifestRecord }>();
  private readonly inFlightPaths = new Map<string, number>();
  /** Device nodes and FIFOs handed to the writer's helper batch, not yet settled. */
  private readonly pendingNodes = new Set<string>();
  private nextJob = 0;

  constructor(
    root: string,
    old: Map<string, ManifestRecord> | null,
    diskXattrs: Map<string, XattrMap>,
    source: { isRetired(memory: ArrayBufferLike): boolean; hashInputWhileIdle(): boolean },
    trustMtime = false,
  ) {
    super(root, old, diskXattrs);
    this.trustMtime = trustMtime;
    this.writer = new WriterClient(
      root,
      (memory) => source.isRetired(memory),
      (result) => this.fileDone(result),
      (rel, stamp) => this.restamped(rel, stamp),
      () => source.hashInputWhileIdle(),
    );
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

  /** The body handed to the sink apply() returned is complete. */
  bodyDone(): void {
    this.writer.end();
  }

  /** Reads the writer's answers so far (between chunks); throws its failure, if any. */
  poll(): void {
    this.writer.poll();
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
    let fromManifest = this.old !== null;
    if (this.trustMtime && this.old && old?.rec.h && old.rec.s === size && sameMtime(old.rec, entry)) {
      // Opt-in quick check (like rsync's): same size and mtime as the manifest says, and the disk still as
      // the last apply left it, means same content, so the body is skipped unread and unhashed. Wrong for
      // archives whose mtimes are clamped (an edit may keep both).
      if (this.unmoved(rel, old.rec)) return this.quickCheckSkip(entry, rel, old, rec);
      // The disk changed behind the manifest's back (its stamp disagrees): what is there is compared with the
      // archive, as without a manifest, rather than taken on the manifest's word.
      const disk = this.diskState(rel);
      if (disk && disk.rec.t !== 'file') this.removeOld(rel, disk);
      old = disk?.rec.t === 'file' ? { ...disk, xattrs: old.xattrs } : null;
      fromManifest = false;
    }
    const shared = old !== null && (fromManifest ? this.oldShared.has(rel) : (old.nlink ?? 1) > 1);
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
      fromManifest,
      shared,
      freshParent: this.plainDirs.has(parent),
    };
    this.inFlight.set(job.id, { rel, rec });
    this.inFlightPaths.set(rel, job.id);
    this.addSeen(rel, 'file', rec);
    this.writer.file(job);
    return this.bodySink;
  }

  private readonly bodySink = (piece: Buffer): void => this.writer.data(piece);

  /** The quick check's skip: the body goes unread; owner, mode, mtime and xattrs are still applied. */
  private quickCheckSkip(entry: TarEntry, rel: string, old: OldState, rec: ManifestRecord): null {
    rec.h = old.rec.h;
    if (old.rec.b) rec.b = old.rec.b;
    const changed = this.applyMetadata(entry, rel, old, false);
    // The stamp goes on unless this thread changed the inode (the helper's requests restamp it later).
    if (!changed && old.rec.n) rec.n = old.rec.n;
    else if (changed) rec.n = stampOf(lstatSync(this.abs(rel)));
    this.count(false, changed);
    this.addSeen(rel, 'file', rec);
    return null;
  }

  /** Whether a file the manifest knows is still the inode the last apply left (see file-writer.ts). */
  private unmoved(rel: string, rec: ManifestRecord): boolean {
    return !rec.n || inodeAgrees(lstatSync(this.abs(rel), { throwIfNoEntry: false }), rec);
  }

  /** The writer's answer for one file: its content id and what it did. */
  private fileDone(result: FileResult): void {
    const job = this.inFlight.get(result.id);
    if (!job) throw new Error(`internal: an answer for file job ${result.id}, which is not in flight`);
    this.inFlight.delete(result.id);
    this.inFlightPaths.delete(job.rel);
    job.rec.h = result.h;
    if (result.b) job.rec.b = result.b;
    if (result.n) job.rec.n = result.n;
    this.counters.bytesWritten += result.bytesWritten;
    if (result.created) {
      this.inodeReplaced.add(job.rel);
      this.markDirty(parentOf(job.rel));
    }
    if (result.wiped) this.wiped.add(job.rel);
    this.count(result.written, result.metaChanged);
  }

  /** A file's inode stamp taken again after a helper request or a hardlink changed its ctime. */
  private restamped(rel: string, stamp: InodeStamp | null): void {
    const seen = this.seen.get(rel);
    if (seen?.type !== 'file') return;
    if (stamp) seen.rec.n = stamp;
    else delete seen.rec.n;
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

  /**
   * Owner, mode, mtime and xattrs of a directory, symlink, node or skipped file, each only if it differs.
   * chown runs first (it clears setuid/setgid and security.capability), then chmod, then times; xattrs go to
   * the writer's helper batch, after all of them. Returns whether any metadata was changed.
   */
  private applyMetadata(
    entry: TarEntry,
    rel: string,
    old: OldState | null,
    contentWritten: boolean,
  ): boolean {
    const abs = this.abs(rel);
    const o = old?.rec;
    let changed = false;
    let chowned = false;
    let chmodded = false;
    if (!o || o.u !== entry.uid || o.g !== entry.gid) {
      lchownSync(abs, entry.uid, entry.gid);
      chowned = true;
      changed = true;
    }
    if (entry.type !== 'symlink') {
      const hasSpecialBits = (entry.mode & 0o6000) !== 0;
      if (!o || o.m !== modeOf(entry) || (chowned && hasSpecialBits)) {
        // chmod(2) follows symlinks: make sure the name is still what the manifest said.
        if (old && this.old && lstatSync(abs).isSymbolicLink()) {
          throw new Error(
            `${String(abs)} became a symlink behind the manifest's back; run without --manifest to repair`,
          );
        }
        chmodSync(abs, entry.mode);
        chmodded = true;
        changed = true;
      }
    }
    if (entry.type === 'dir') {
      // Children change a directory's mtime: directories get theirs at the very end.
      this.dirMtimes.set(rel, entry);
      if (!o || !sameMtime(o, entry)) this.dirMtimeDiffers.add(rel);
    } else if (!o || !sameMtime(o, entry) || contentWritten) {
      const t = entry.mtime + entry.mtimeNsec / 1e9;
      lutimesSync(abs, t, t);
      if (needsPreciseTime(entry)) {
        if (entry.type === 'file') this.writer.timesOfFile(rel, entry.mtime, entry.mtimeNsec);
        else this.preciseTimes.set(rel, entry);
      }
      changed = true;
    }
    const want = entry.xattrs;
    const have = old?.xattrs ?? null;
    // A chown drops security.capability in the kernel, and a chmod rewrites an access ACL's mask, so those
    // re-set every attribute.
    const clobbered = chowned || contentWritten || (chmodded && want?.has(ACL_ACCESS) === true);
    if (!xattrsEqual(want, have) || (clobbered && want?.size)) {
      const remove = [...(have?.keys() ?? [])].filter((name) => !want?.has(name));
      if (entry.type === 'file') this.writer.xattrsOfFile(rel, want ? [...want] : [], remove);
      else this.writer.xattrs(rel, want ? [...want] : [], remove);
      changed = true;
    }
    return changed;
  }

  // ---- paths replaced within this apply ---------------------------------------------------------------

  /** Waits until the writer has done everything handed to it so far. */
  private settle(): void {
    this.writer.settle();
    this.pendingNodes.clear();
  }

  /** A path this archive already wrote, about to be replaced by a later entry of another type. */
  private removeSeen(rel: string, prev: Seen): void {
    // Whatever the writer still has queued for it (or below it) lands first, then goes with it.
    if (this.writer.busy) this.settle();
    if (prev.type === 'dir') {
      this.forgetDescendants(rel);
      this.wiped.add(rel);
      removeTree(this.abs(rel));
    } else {
      unlinkSync(this.abs(rel));
    }
    this.seen.delete(rel);
    this.markDirty(parentOf(rel));
  }

  // ---- end of archive ---------------------------------------------------------------------------------

  /**
   * Removes what the archive does not hold, sets the directories' mtimes and the exact times, and (with a
   * manifest to write) records each file's inode stamp once everything is done.
   */
  finish(): void {
    // A walk, even with a manifest: names someone else added since the last apply must go too, and readdir
    // of every directory costs little next to the stream (no stat per entry). It runs while the writer
    // finishes: it removes only names this apply never had, which the writer never touches.
    this.removeByWalk('');
    this.settle();
    for (const [rel, entry] of this.dirMtimes) {
      if (!this.dirMtimeDiffers.has(rel) && !this.dirtyDirs.has(rel)) continue;
      if (this.seen.get(rel)?.type !== 'dir') continue;
      const t = entry.mtime + entry.mtimeNsec / 1e9;
      lutimesSync(this.abs(rel), t, t);
      if (needsPreciseTime(entry)) this.preciseTimes.set(rel, entry);
    }
    for (const [rel, entry] of this.preciseTimes) {
      const rec = this.seen.get(rel)?.rec;
      if (rec !== undefined && sameMtime(rec, entry)) this.writer.times(rel, entry.mtime, entry.mtimeNsec);
    }
    this.settle();
  }

  private removeByWalk(dir: string): void {
    const abs = this.abs(dir);
    const prefix = nameBytes(dir === '' ? this.root : `${this.root}/${dir}`);
    for (const dirent of readdirSync(abs, { withFileTypes: true, encoding: 'buffer' })) {
      const name = decodeName(dirent.name);
      const rel = dir === '' ? name : `${dir}/${name}`;
      const seen = this.seen.get(rel);
      if (!seen) {
        this.counters.removed += removeTree(Buffer.concat([prefix, Buffer.from('/'), dirent.name]));
        this.markDirty(dir);
      } else if (seen.type === 'dir' && dirent.isDirectory() && !this.freshDirs.has(rel)) {
        // A directory this apply created holds only what it created since (anything superseded was
        // removed at once), so only directories that were there before are read.
        this.removeByWalk(rel);
      }
    }
  }

  async close(): Promise<void> {
    await this.writer.close();
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

function stampOf(st: Stats): InodeStamp {
  return [st.ino, st.mtimeMs, st.ctimeMs];
}

/** The mode the entry ends with on disk: its access ACL, if any, sets the permission bits. */
function modeOf(entry: TarEntry): number {
  const acl = entry.xattrs?.get(ACL_ACCESS);
  return acl ? modeWithAcl(entry.mode, acl) : entry.mode;
}

function withMtime(rec: ManifestRecord, entry: TarEntry): ManifestRecord {
  rec.mt = entry.mtime;
  if (entry.mtimeNsec) rec.mn = entry.mtimeNsec;
  return rec;
}
