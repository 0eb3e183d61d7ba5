// Applies one tar stream to a target tree: the tree ends up holding exactly the archive's entries, and
// only what differs from the last apply (its manifest) or, without one, from what is on disk is written.
//
// Safety: every path is resolved as if the target were a chroot. Parent components are checked one by
// one with lstat (or known from this apply) and must be real directories; a symlink or other non-directory
// left in a parent position by a previous revision is replaced by a directory, one placed there by this
// archive rejects the archive. Only this process writes the target, so a checked component stays checked.
// Tree operations run synchronously on the main thread; the decompressor (zlib thread pool or an xz
// process) runs beside it, so reading, inflating and writing overlap.
import { createHash } from 'node:crypto';
import {
  type BigIntStats,
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  rmdirSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { modeWithAcl } from './acl.ts';
import { ARCHIVE, RejectedArchiveError } from './errors.ts';
import type { ManifestRecord } from './manifest.ts';
import { createNodes, setPreciseTimes } from './node-archive.ts';
import type { EntryType, TarEntry, TarReader } from './tar-reader.ts';
import { removeXattrs, setXattrs, type XattrMap, xattrsEqual } from './xattrs.ts';

/** Content is compared and written in windows of this size; the manifest keeps one digest per window. */
export const WINDOW = 64 * 1024;
/** Bodies up to this size are read whole before anything is decided. */
const WHOLE_BODY_MAX = 1024 * 1024;
/** A file sharing its inode with hardlinks cannot be patched in place; up to this size it is buffered so
 *  an unchanged one keeps its inode. */
const SHARED_BODY_MAX = 16 * 1024 * 1024;
const XATTR_BATCH = 2000;
/** What mkdir gives a directory GNU tar creates for an unlisted parent (0777 less the usual umask 022). */
const IMPLIED_DIR_MODE = 0o755;
/** Setting the access ACL sets the group bits to its mask: a later chmod must be followed by the ACL. */
const ACL_ACCESS = 'system.posix_acl_access';

const O_NOFOLLOW = constants.O_NOFOLLOW;
const WRITE_FLAGS = constants.O_WRONLY | O_NOFOLLOW;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;
const READ_FLAGS = constants.O_RDONLY | O_NOFOLLOW;

/** What is at a path before this apply touches it: from the manifest, or read from disk. */
interface OldState {
  rec: ManifestRecord;
  xattrs: XattrMap | null;
  /** From disk only: more than one name for the inode. */
  nlink?: number;
  ino?: number;
}

interface Seen {
  type: EntryType;
  gen: number;
  rec: ManifestRecord;
}

interface PendingXattrs {
  path: string;
  gen: number;
  set: XattrMap;
  remove: string[];
}

export interface ApplyCounters {
  entries: number;
  filesWritten: number;
  bytesWritten: number;
  metadataUpdates: number;
  unchanged: number;
  removed: number;
}

export class TreeApplier {
  readonly counters: ApplyCounters = {
    entries: 0,
    filesWritten: 0,
    bytesWritten: 0,
    metadataUpdates: 0,
    unchanged: 0,
    removed: 0,
  };
  private readonly root: string;
  private readonly old: Map<string, ManifestRecord> | null;
  private readonly diskXattrs: Map<string, XattrMap>;
  private readonly oldShared = new Set<string>();
  readonly seen = new Map<string, Seen>();
  private readonly children = new Map<string, string[]>();
  /** Old directories removed whole: manifest records below them are void. */
  private readonly wiped = new Set<string>();
  private readonly inodeReplaced = new Set<string>();
  private readonly dirtyDirs = new Set<string>();
  private readonly dirMtimes = new Map<string, TarEntry>();
  /** Paths with a fractional or negative mtime, which Node cannot set exactly (it takes seconds as a double). */
  private readonly preciseTimes = new Map<string, TarEntry>();
  private readonly dirMtimeDiffers = new Set<string>();
  /** Directories this apply created: nothing can be inside them yet, so no lstat is needed there. */
  private readonly freshDirs = new Set<string>();
  private pendingXattrs: PendingXattrs[] = [];
  private readonly pendingNodes = new Map<string, TarEntry>();
  private gen = 0;
  private readonly reader: TarReader;
  private readonly trustMtime: boolean;

  /**
   * @param old the last apply's records, or null to compare against the disk (stat + content)
   * @param diskXattrs with old = null: every xattr under root, read before the apply
   */
  constructor(
    root: string,
    old: Map<string, ManifestRecord> | null,
    diskXattrs: Map<string, XattrMap>,
    reader: TarReader,
    trustMtime = false,
  ) {
    this.root = root;
    this.trustMtime = trustMtime;
    this.reader = reader;
    this.old = old;
    this.diskXattrs = diskXattrs;
    // A fresh filesystem (nothing but lost+found): no entry needs looking for on disk.
    if (!old && readdirSync(root).every((name) => name === 'lost+found')) this.freshDirs.add('');
    if (old) {
      for (const [p, rec] of old) {
        if (rec.t === 'hardlink' && rec.l !== undefined) {
          this.oldShared.add(p);
          this.oldShared.add(rec.l);
        }
      }
    }
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  private reject(entry: TarEntry, reason: string): never {
    throw new RejectedArchiveError(entry.rawPath || ARCHIVE, reason);
  }

  // ---- entries -------------------------------------------------------------------------------------

  async apply(entry: TarEntry): Promise<void> {
    this.counters.entries++;
    const rel = entry.path;
    if (rel === '') {
      if (entry.type !== 'dir') this.reject(entry, `a ${entry.type} entry naming the target root`);
      this.applyDir(entry, rel);
      return;
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
        await this.applyFile(entry, rel, old);
        break;
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
    if (this.pendingXattrs.length >= XATTR_BATCH) await this.flushXattrs();
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
  private resetImpliedDir(dir: string, abs: string, st: Stats): void {
    const rec = this.old && !this.underWiped(dir) ? this.old.get(dir) : undefined;
    if (rec?.i === 1) return;
    const uid = process.getuid?.() ?? st.uid;
    const gid = process.getgid?.() ?? st.gid;
    if (st.uid !== uid || st.gid !== gid) lchownSync(abs, uid, gid);
    // lstat said directory, and only this process writes the tree: chmod cannot follow a link here.
    if ((st.mode & 0o7777) !== IMPLIED_DIR_MODE) chmodSync(abs, IMPLIED_DIR_MODE);
    const had = this.old ? (rec?.x ? xattrMap(rec.x) : null) : (this.diskXattrs.get(dir) ?? null);
    if (had?.size) this.pendingXattrs.push({ path: dir, gen: 0, set: new Map(), remove: [...had.keys()] });
    const now = Date.now() / 1000;
    lutimesSync(abs, now, now);
  }

  private async applyFile(entry: TarEntry, rel: string, oldIn: OldState | null): Promise<void> {
    const abs = this.abs(rel);
    let old = oldIn;
    if (old && old.rec.t !== 'file') {
      this.removeOld(rel, old);
      old = null;
    }
    const shared = old !== null && (this.old ? this.oldShared.has(rel) : (old.nlink ?? 1) > 1);
    const size = entry.size;
    const rec = withMtime({ t: 'file', s: size, m: modeOf(entry), u: entry.uid, g: entry.gid }, entry);
    if (this.trustMtime && this.old && old?.rec.h && old.rec.s === size && sameMtime(old.rec, entry)) {
      // Opt-in quick check (like rsync's): same size and mtime as the manifest says means same content,
      // so the body is skipped unread and unhashed. Wrong for archives whose mtimes are clamped.
      rec.h = old.rec.h;
      if (old.rec.b) rec.b = old.rec.b;
      if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
      this.count(false, this.applyMetadata(entry, rel, old, false, null));
      this.addSeen(rel, 'file', rec);
      return;
    }
    let fd: number | null = null;
    let written = false;
    let created = false;
    try {
      if (size <= WHOLE_BODY_MAX || (shared && size <= SHARED_BODY_MAX)) {
        const body = size === 0 ? Buffer.alloc(0) : await this.reader.readBody(size);
        const digests = windowDigests(body);
        setContentHash(rec, body, digests);
        const same = old !== null && this.sameContent(rel, old, rec, body);
        if (!same) {
          // A changed file up to 1 MiB is written as a new inode, not patched in place: ext4 packs new small
          // files together, so 640 changed files dirty a handful of 512 KiB blocks instead of one each where
          // the old copies lie scattered (bench/unpack.ts, synthetic stream: 279 MiB dirtied in place, 35 MiB
          // as new inodes; rsync 51 MiB). Larger files are patched window by window below.
          if (old) this.removeOld(rel, old);
          old = null;
          fd = this.createFile(rel, abs);
          created = true;
          this.writeAll(fd, body, 0);
          written = true;
        }
      } else {
        // Streamed window by window; an unchanged window is neither read back nor written.
        if (old && shared) {
          this.removeOld(rel, old);
          old = null;
        }
        if (!old) {
          fd = this.createFile(rel, abs);
          created = true;
          written = true;
        }
        const oldFd = old && !this.old ? openSync(abs, READ_FLAGS) : null;
        const scratch = oldFd !== null ? Buffer.allocUnsafe(WINDOW) : null;
        const digests: Buffer[] = [];
        try {
          for (let offset = 0, i = 0; offset < size; offset += WINDOW, i++) {
            const length = Math.min(WINDOW, size - offset);
            const pieces = await this.reader.readBodyPieces(length);
            const hash = createHash('sha256');
            for (const piece of pieces) hash.update(piece);
            const digest = hash.digest().subarray(0, 16);
            digests.push(digest);
            const differs =
              created ||
              (oldFd !== null
                ? !readEquals(oldFd, scratch!, Buffer.concat(pieces, length), offset)
                : old?.rec.b?.[i] !== digest.toString('base64'));
            if (differs) {
              fd ??= openSync(abs, WRITE_FLAGS);
              this.writePieces(fd, pieces, length, offset);
              written = true;
            }
          }
        } finally {
          if (oldFd !== null) closeSync(oldFd);
        }
        if (old && old.rec.s !== size) {
          fd ??= openSync(abs, WRITE_FLAGS);
          ftruncateSync(fd, size);
          written = true;
        }
        rec.b = digests.map((d) => d.toString('base64'));
        rec.h = createHash('sha256').update(Buffer.concat(digests)).digest('hex');
      }
      if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
      const metaChanged = this.applyMetadata(entry, rel, old, written, fd);
      this.count(created || written, metaChanged);
    } finally {
      if (fd !== null) closeSync(fd);
    }
    if (created) this.inodeReplaced.add(rel);
    this.addSeen(rel, 'file', rec);
  }

  private sameContent(rel: string, old: OldState, rec: ManifestRecord, body: Buffer): boolean {
    if (old.rec.s !== rec.s) return false;
    if (this.old) return old.rec.h === rec.h;
    // No manifest: compare with the bytes on disk.
    const fd = openSync(this.abs(rel), READ_FLAGS);
    try {
      const onDisk = Buffer.allocUnsafe(body.length + 1);
      let got = 0;
      for (;;) {
        const n = readSync(fd, onDisk, got, onDisk.length - got, got);
        if (n === 0) break;
        got += n;
        if (got === onDisk.length) break;
      }
      return got === body.length && onDisk.subarray(0, got).equals(body);
    } finally {
      closeSync(fd);
    }
  }

  private createFile(rel: string, abs: string): number {
    this.markDirty(parentOf(rel));
    try {
      return openSync(abs, CREATE_FLAGS, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // The manifest did not know this name (someone else put it there): replace it, never open it.
      this.removeDiskEntry(rel);
      return openSync(abs, CREATE_FLAGS, 0o600);
    }
  }

  private writePieces(fd: number, pieces: Buffer[], length: number, position: number): void {
    if (pieces.length === 1) {
      this.writeAll(fd, pieces[0]!, position);
      return;
    }
    const done = writevSync(fd, pieces, position);
    this.counters.bytesWritten += done;
    // A short writev (rare) is finished piece by piece.
    if (done < length) this.writeAll(fd, Buffer.concat(pieces, length).subarray(done), position + done);
  }

  private writeAll(fd: number, data: Buffer, position: number): void {
    let done = 0;
    while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
    this.counters.bytesWritten += data.length;
  }

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
    const metaChanged = this.applyMetadata(entry, rel, old, false, null);
    this.count(created, metaChanged);
    const seen = this.seen.get(rel);
    if (rel === '' || !seen) {
      this.addSeen(rel, 'dir', rec);
    } else {
      // A duplicate directory merged into the first: keep its identity, claim any queued xattrs.
      seen.rec = rec;
      const last = this.pendingXattrs.at(-1);
      if (last && last.path === rel && last.gen === 0) last.gen = seen.gen;
    }
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
        symlinkSync(target, this.abs(rel));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENAMETOOLONG') this.reject(entry, 'symlink target too long for this filesystem');
        if (code !== 'EEXIST') throw err;
        this.removeDiskEntry(rel);
        symlinkSync(target, this.abs(rel));
      }
    }
    const rec = withMtime({ t: 'symlink', l: target, u: entry.uid, g: entry.gid }, entry);
    if (entry.xattrs?.size) rec.x = xattrRecord(entry.xattrs);
    const metaChanged = this.applyMetadata(entry, rel, old, false, null);
    this.count(!old, metaChanged);
    this.addSeen(rel, 'symlink', rec);
  }

  private applyHardlink(entry: TarEntry, rel: string, oldIn: OldState | null): void {
    const target = entry.linkname;
    if (this.pendingNodes.has(target)) this.flushNodes();
    const targetSeen = this.seen.get(target);
    if (!targetSeen)
      this.reject(entry, `hardlink target ${JSON.stringify(target)} is not an earlier entry of this archive`);
    if (targetSeen.type === 'dir') this.reject(entry, `hardlink to directory ${JSON.stringify(target)}`);
    if (target === rel) this.reject(entry, 'hardlink to itself');
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
    this.count(!same, false);
    // The link shares its target's inode; it is recorded by target so the group can be checked next time.
    this.addSeen(rel, 'hardlink', { t: 'hardlink', l: target });
  }

  private applyNode(entry: TarEntry, rel: string, oldIn: OldState | null): void {
    let old = oldIn;
    const rdev: [number, number] = [entry.devmajor, entry.devminor];
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
      // Created in batches (one process for many nodes); owner, mode and times follow at the flush.
      this.markDirty(parentOf(rel));
      this.pendingNodes.set(rel, entry);
      if (entry.xattrs?.size) this.pendingXattrs.push({ path: rel, gen: 0, set: entry.xattrs, remove: [] });
      this.count(true, false);
    } else {
      this.count(false, this.applyMetadata(entry, rel, old, false, null));
    }
    this.addSeen(rel, entry.type, rec);
  }

  /** Creates every queued device node and FIFO in one process (see node-archive.ts). */
  private flushNodes(): void {
    if (this.pendingNodes.size === 0) return;
    for (const rel of this.pendingNodes.keys()) {
      // Whatever the manifest did not know about is replaced, never reused.
      if (lstatSync(this.abs(rel), { throwIfNoEntry: false })) this.removeDiskEntry(rel);
    }
    createNodes(this.root, this.pendingNodes);
    this.pendingNodes.clear();
  }

  /**
   * Owner, mode, mtime and xattrs, each only if it differs. chown runs first (it clears setuid/setgid and
   * security.capability), then chmod, then times; xattrs are queued and set in batches afterwards.
   * Returns whether any metadata was changed.
   */
  private applyMetadata(
    entry: TarEntry,
    rel: string,
    old: OldState | null,
    contentWritten: boolean,
    fd: number | null,
  ): boolean {
    const abs = this.abs(rel);
    const o = old?.rec;
    let changed = false;
    let chowned = false;
    let chmodded = false;
    if (!o || o.u !== entry.uid || o.g !== entry.gid) {
      if (fd !== null) fchownSync(fd, entry.uid, entry.gid);
      else lchownSync(abs, entry.uid, entry.gid);
      chowned = true;
      changed = true;
    }
    if (entry.type !== 'symlink') {
      const hasSpecialBits = (entry.mode & 0o6000) !== 0;
      if (!o || o.m !== modeOf(entry) || (chowned && hasSpecialBits)) {
        if (fd !== null) fchmodSync(fd, entry.mode);
        else {
          // chmod(2) follows symlinks: make sure the name is still what the manifest said.
          if (old && this.old && lstatSync(abs).isSymbolicLink()) {
            throw new Error(
              `${abs} became a symlink behind the manifest's back; run without --manifest to repair`,
            );
          }
          chmodSync(abs, entry.mode);
        }
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
      if (fd !== null) futimesSync(fd, t, t);
      else lutimesSync(abs, t, t);
      this.queuePreciseTime(rel, entry);
      changed = true;
    }
    const want = entry.xattrs;
    const have = old?.xattrs ?? null;
    // A write or chown drops security.capability in the kernel, and a chmod rewrites an access ACL's
    // mask, so those re-set every attribute.
    const clobbered = chowned || contentWritten || (chmodded && want?.has(ACL_ACCESS) === true);
    if (!xattrsEqual(want, have) || (clobbered && want?.size)) {
      const remove = [...(have?.keys() ?? [])].filter((name) => !want?.has(name));
      this.pendingXattrs.push({ path: rel, gen: 0, set: want ?? new Map(), remove });
      changed = true;
    }
    return changed;
  }

  private queuePreciseTime(rel: string, entry: TarEntry): void {
    // Not even microseconds survive the double Node takes (1795296382.540854 lands 23 ns early), and
    // Node replaces a time before 1970 by the current time (a number) or clamps it to 1901 (a Date).
    if (entry.mtimeNsec !== 0 || entry.mtime < 0) this.preciseTimes.set(rel, entry);
  }

  private count(written: boolean, metaChanged: boolean): void {
    if (written) this.counters.filesWritten++;
    else if (metaChanged) this.counters.metadataUpdates++;
    else this.counters.unchanged++;
  }

  // ---- state ---------------------------------------------------------------------------------------

  private addSeen(rel: string, type: EntryType, rec: ManifestRecord): void {
    const gen = ++this.gen;
    const isNew = !this.seen.has(rel);
    this.seen.set(rel, { type, gen, rec });
    if (isNew && rel !== '') {
      const parent = parentOf(rel);
      const list = this.children.get(parent);
      if (list) list.push(rel);
      else this.children.set(parent, [rel]);
    }
    const last = this.pendingXattrs.at(-1);
    if (last && last.path === rel && last.gen === 0) last.gen = gen;
  }

  /** A path this archive already wrote, about to be replaced by a later entry of another type. */
  private removeSeen(rel: string, prev: Seen): void {
    if (this.pendingNodes.delete(rel)) {
      this.seen.delete(rel);
      return;
    }
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

  private forgetDescendants(rel: string): void {
    const list = this.children.get(rel);
    if (!list) return;
    this.children.delete(rel);
    for (const child of list) {
      if (this.seen.get(child)?.type === 'dir') this.forgetDescendants(child);
      this.seen.delete(child);
      this.pendingNodes.delete(child);
    }
  }

  /** The state before this apply, from the manifest, or from disk without one. */
  private oldState(rel: string): OldState | null {
    if (!this.old) return this.diskState(rel);
    if (this.wiped.size > 0 && this.underWiped(rel)) return null;
    const rec = this.old.get(rel);
    if (!rec) return null;
    return { rec, xattrs: rec.x ? xattrMap(rec.x) : null };
  }

  private diskOrManifest(rel: string): OldState | null {
    if (rel === '' && this.old) {
      const rec = this.old.get('');
      return rec ? { rec, xattrs: rec.x ? xattrMap(rec.x) : null } : this.diskState(rel);
    }
    return rel === '' ? this.diskState(rel) : this.oldState(rel);
  }

  private underWiped(rel: string): boolean {
    let slash = rel.indexOf('/');
    while (slash !== -1) {
      if (this.wiped.has(rel.slice(0, slash))) return true;
      slash = rel.indexOf('/', slash + 1);
    }
    return this.wiped.has(rel);
  }

  private diskState(rel: string): OldState | null {
    if (rel !== '' && this.freshDirs.has(parentOf(rel)) && !this.seen.has(rel)) return null;
    const abs = this.abs(rel);
    // bigint: the exact nanoseconds of the mtime.
    const st = lstatSync(abs, { throwIfNoEntry: false, bigint: true });
    if (!st) return null;
    const t = typeOfStats(st);
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
    if (t === 'symlink') rec.l = readlinkSync(abs);
    if (t === 'char' || t === 'block') rec.r = [major(Number(st.rdev)), minor(Number(st.rdev))];
    const seen = this.seen.get(rel);
    // A directory this apply already handled has its xattrs in its record; the dump predates the apply.
    const xattrs =
      seen && !seen.rec.i ? (seen.rec.x ? xattrMap(seen.rec.x) : null) : (this.diskXattrs.get(rel) ?? null);
    return { rec, xattrs, nlink: Number(st.nlink), ino: Number(st.ino) };
  }

  private removeOld(rel: string, old: OldState): void {
    if (rel === '') throw new Error('internal: refusing to remove the target root');
    const abs = this.abs(rel);
    if (old.rec.t === 'dir') {
      this.wiped.add(rel);
      removeTree(abs);
    } else {
      try {
        unlinkSync(abs);
      } catch (err) {
        if (
          (err as NodeJS.ErrnoException).code === 'EISDIR' ||
          (err as NodeJS.ErrnoException).code === 'EPERM'
        ) {
          this.removeDiskEntry(rel);
        } else if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.markDirty(parentOf(rel));
  }

  /** Removes whatever is at rel on disk (a name the manifest did not know about). */
  private removeDiskEntry(rel: string): number {
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

  private markDirty(dir: string): void {
    this.dirtyDirs.add(dir);
  }

  // ---- end of archive ------------------------------------------------------------------------------

  /** Removes what the archive does not hold, sets queued xattrs and the directories' mtimes. */
  async finish(): Promise<void> {
    this.flushNodes();
    // A walk, even with a manifest: names someone else added since the last apply must go too, and
    // readdir of every directory costs little next to the stream (no stat per entry).
    this.removeByWalk('');
    await this.flushXattrs();
    for (const [rel, entry] of this.dirMtimes) {
      if (!this.dirMtimeDiffers.has(rel) && !this.dirtyDirs.has(rel)) continue;
      if (this.seen.get(rel)?.type !== 'dir') continue;
      const t = entry.mtime + entry.mtimeNsec / 1e9;
      lutimesSync(this.abs(rel), t, t);
      this.queuePreciseTime(rel, entry);
    }
    const precise = [...this.preciseTimes].filter(([rel, entry]) => {
      const rec = this.seen.get(rel)?.rec;
      return rec !== undefined && sameMtime(rec, entry);
    });
    setPreciseTimes(this.root, precise);
  }

  private removeByWalk(dir: string): void {
    const abs = this.abs(dir);
    for (const dirent of readdirSync(abs, { withFileTypes: true, encoding: 'buffer' })) {
      const nameBytes = dirent.name;
      const name = nameBytes.toString('utf8');
      const valid = Buffer.from(name).equals(nameBytes);
      const rel = dir === '' ? name : `${dir}/${name}`;
      const seen = valid ? this.seen.get(rel) : undefined;
      if (!seen) {
        const path = Buffer.concat([Buffer.from(`${abs}/`), nameBytes]);
        this.counters.removed += removeTree(path);
        this.markDirty(dir);
      } else if (seen.type === 'dir' && dirent.isDirectory() && !this.freshDirs.has(rel)) {
        // A directory this apply created holds only what it created since (anything superseded was
        // removed at once), so only directories that were there before are read.
        this.removeByWalk(rel);
      }
    }
  }

  private async flushXattrs(): Promise<void> {
    this.flushNodes();
    const batch = this.pendingXattrs.filter((p) => this.seen.get(p.path)?.gen === p.gen);
    this.pendingXattrs = [];
    if (batch.length === 0) return;
    await setXattrs(
      this.root,
      batch.filter((p) => p.set.size > 0).map((p) => ({ path: p.path, xattrs: p.set })),
    );
    const removals = batch.filter((p) => p.remove.length > 0).map((p) => ({ path: p.path, names: p.remove }));
    if (removals.length) await removeXattrs(this.root, removals);
  }

  /** The new manifest's records: every path of this apply, in the order it was applied. */
  *records(): Generator<[string, ManifestRecord]> {
    for (const [rel, seen] of this.seen) yield [rel, seen.rec];
  }
}

function setContentHash(rec: ManifestRecord, body: Buffer, digests: Buffer[]): void {
  if (body.length <= WINDOW) {
    rec.h = createHash('sha256').update(body).digest('hex');
  } else {
    rec.b = digests.map((d) => d.toString('base64'));
    rec.h = createHash('sha256').update(Buffer.concat(digests)).digest('hex');
  }
}

/** 128 bits of sha256 per window: enough to tell changed windows apart, half the manifest size. */
function windowDigest(chunk: Buffer): Buffer {
  return createHash('sha256').update(chunk).digest().subarray(0, 16);
}

function windowDigests(body: Buffer): Buffer[] {
  if (body.length <= WINDOW) return [];
  const out: Buffer[] = [];
  for (let start = 0; start < body.length; start += WINDOW) {
    out.push(windowDigest(body.subarray(start, Math.min(start + WINDOW, body.length))));
  }
  return out;
}

function readEquals(fd: number, scratch: Buffer, chunk: Buffer, position: number): boolean {
  let got = 0;
  while (got < chunk.length) {
    const n = readSync(fd, scratch, got, chunk.length - got, position + got);
    if (n === 0) return false;
    got += n;
  }
  return scratch.subarray(0, chunk.length).equals(chunk);
}

function xattrRecord(xattrs: XattrMap): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of xattrs) out[name] = value.toString('base64');
  return out;
}

function xattrMap(record: Record<string, string>): XattrMap {
  return new Map(Object.entries(record).map(([name, value]) => [name, Buffer.from(value, 'base64')]));
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

function sameMtime(rec: ManifestRecord, entry: TarEntry): boolean {
  return rec.mt === entry.mtime && (rec.mn ?? 0) === entry.mtimeNsec;
}

function parentOf(rel: string): string {
  const slash = rel.lastIndexOf('/');
  return slash === -1 ? '' : rel.slice(0, slash);
}

function typeOfStats(st: Stats | BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  return 'fifo';
}

function major(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

function minor(rdev: number): number {
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
