// The regular files of an apply, on the file writer's thread: each body is hashed as it arrives, compared with
// what was there (the last apply's manifest, or the disk), and written only where it differs; then owner,
// mode, mtime and extended attributes. The main thread parses and decides the tree's shape meanwhile.
//
// With a manifest, the manifest's word for the old content is taken (its hash, its window digests), and every
// body is hashed: a file is written only where its hash differs, so a changed file with a forged mtime is
// caught, and the main thread never waits for a hash to decide anything.
import { createHash, hash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  ftruncateSync,
  futimesSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  openSync,
  readSync,
  type Stats,
  unlinkSync,
  writeSync,
  writevSync,
} from 'node:fs';
import { ContentDigest, SHARED_BODY_MAX, WHOLE_BODY_MAX, WINDOW, windowDigest } from './content.ts';
import {
  diskContentId,
  diskRecord,
  forEachSegmentPiece,
  READ_FLAGS,
  readEquals,
  toMap,
  toStamp,
} from './file-io.ts';
import type { FileJob, FileResult, InodeStamp } from './file-jobs.ts';
import type { AttributeRequests } from './fs-helper.ts';
import { fsPath } from './names.ts';
import { inodeAgrees, needsPreciseTime, removeTree, sameMtime, xattrMap, xattrsEqual } from './tree-ops.ts';

const O_NOFOLLOW = constants.O_NOFOLLOW;
const WRITE_FLAGS = constants.O_WRONLY | O_NOFOLLOW;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW;
/** Setting the access ACL sets the group bits to its mask: a later chmod must be followed by the ACL. */
const ACL_ACCESS = 'system.posix_acl_access';
/** Without a manifest, a sparse file is compared with the disk only up to this real size (holes read as zeros). */
const SPARSE_COMPARE_MAX = 64 * 1024 * 1024;
const IOV_MAX = 1024;

/** The file being applied: its job, and its body as it arrives. */
interface Open {
  job: FileJob;
  abs: string | Buffer;
  /** The old file, unless it was found replaced or is to be replaced whole. */
  old: FileJob['old'];
  /** The old content is compared with the disk's bytes (no manifest, or the file changed behind it). */
  byDisk: boolean;
  /** The quick check holds: the body is neither hashed nor written. */
  skip: boolean;
  wiped: boolean;
  /** Whole mode: the body is held until it is complete (pieces), then decided on. */
  whole: boolean;
  pieces: Buffer[];
  fd: number | null;
  created: boolean;
  written: boolean;
  bytesWritten: number;
  /** Stream mode: the current window's pieces, and the window digests so far. */
  window: Buffer[];
  windowBytes: number;
  offset: number;
  digests: Buffer[];
  oldFd: number | null;
  /** Streamed sparse data: the content digest, and where the next byte goes in the map. */
  digest: ContentDigest | null;
  segment: number;
  segmentDone: number;
}

export class FileWriter {
  /** Where attribute and exact-time requests go (HelperRequests on the writer's thread). */
  private readonly requests: AttributeRequests;
  private readonly root: string;
  private readonly umask: number;
  private readonly uid = process.getuid?.() ?? -1;
  private readonly gid = process.getgid?.() ?? -1;
  private open: Open | null = null;

  constructor(root: string, umask: number, requests: AttributeRequests) {
    this.root = root;
    this.umask = umask;
    this.requests = requests;
  }

  abs(rel: string): string | Buffer {
    return fsPath(rel === '' ? this.root : `${this.root}/${rel}`);
  }

  begin(job: FileJob): void {
    const abs = this.abs(job.rel);
    let old = job.old;
    let byDisk = !job.fromManifest;
    let skip = false;
    let wiped = false;
    if (job.quick && old) {
      const st = lstatSync(abs, { throwIfNoEntry: false });
      if (inodeAgrees(st, old.rec)) skip = true;
      else if (st?.isFile()) {
        // Changed behind the manifest's back: compared with what the disk holds, not the manifest's word.
        old = { rec: diskRecord(lstatSync(abs, { bigint: true }), old.rec) };
        byDisk = true;
      } else {
        if (st) wiped = this.removeAny(abs, st);
        old = null;
      }
    }
    const size = job.size;
    const whole = job.sparse
      ? size <= SHARED_BODY_MAX
      : size <= WHOLE_BODY_MAX || (old !== null && job.shared && size <= SHARED_BODY_MAX);
    const o: Open = {
      job,
      abs,
      old,
      byDisk,
      skip,
      wiped,
      whole,
      pieces: [],
      fd: null,
      created: false,
      written: false,
      bytesWritten: 0,
      window: [],
      windowBytes: 0,
      offset: 0,
      digests: [],
      oldFd: null,
      digest: null,
      segment: 0,
      segmentDone: 0,
    };
    this.open = o;
    if (whole || skip) return;
    // Streamed: a sparse file is always written whole (a new inode keeps its holes); a shared inode is never
    // patched in place; a new file is created now. Otherwise windows are compared and patched in place.
    if (o.old && (job.sparse || job.shared)) {
      this.removeOld(o);
      o.old = null;
    }
    if (!o.old) this.create(o);
    else if (byDisk) o.oldFd = openSync(abs, READ_FLAGS);
    if (job.sparse) o.digest = new ContentDigest(false);
  }

  data(piece: Buffer): void {
    const o = this.open!;
    if (o.skip) return;
    if (o.whole) {
      o.pieces.push(piece);
      return;
    }
    if (o.job.sparse) {
      this.sparseData(o, piece);
      return;
    }
    let at = 0;
    while (at < piece.length) {
      const take = Math.min(WINDOW - o.windowBytes, piece.length - at);
      o.window.push(at === 0 && take === piece.length ? piece : piece.subarray(at, at + take));
      o.windowBytes += take;
      at += take;
      if (o.windowBytes === WINDOW) this.closeWindow(o);
    }
  }

  end(): FileResult {
    const o = this.open!;
    this.open = null;
    try {
      let h: string;
      let b: Buffer[] | undefined;
      if (o.skip) ({ h, b } = { h: o.old!.rec.h!, b: undefined });
      else if (o.whole) ({ h, b } = this.endWhole(o));
      else if (o.job.sparse) ({ h, b } = this.endSparseStream(o));
      else ({ h, b } = this.endStream(o));
      const metaChanged = this.metadata(o);
      return {
        id: o.job.id,
        h,
        b: o.skip ? o.old!.rec.b : b?.map((d) => d.toString('base64')),
        created: o.created,
        written: o.written,
        metaChanged,
        bytesWritten: o.bytesWritten,
        wiped: o.wiped,
        n: this.stamp(o, metaChanged),
      };
    } finally {
      if (o.fd !== null) closeSync(o.fd);
      if (o.oldFd !== null) closeSync(o.oldFd);
    }
  }

  // ---- whole bodies (up to 1 MiB; 16 MiB for hardlinked and sparse files) ----------------------------

  private endWhole(o: Open): { h: string; b?: Buffer[] } {
    const { job } = o;
    const sparse = job.sparse;
    const digest = new ContentDigest(!sparse);
    if (sparse) this.feedSparse(digest, o.pieces, sparse);
    else for (const piece of o.pieces) digest.update(piece);
    const id = digest.finish();
    const logicalSize = sparse ? sparse.realSize : job.size;
    if (!o.old || !this.sameContent(o, logicalSize, id.h)) {
      // A changed file up to 1 MiB is written as a new inode, not patched in place: ext4 packs new small
      // files together, so 640 changed files dirty a handful of 512 KiB blocks instead of one each where
      // the old copies lie scattered (bench/unpack.ts, synthetic stream: 279 MiB dirtied in place, 35 MiB
      // as new inodes; rsync 51 MiB). Larger files are patched window by window.
      if (o.old) this.removeOld(o);
      o.old = null;
      this.create(o);
      if (sparse) this.writeSparse(o, o.pieces, sparse);
      else this.writePieces(o, o.pieces, 0);
    }
    return { h: id.h, b: id.windows };
  }

  private sameContent(o: Open, logicalSize: number, h: string): boolean {
    const rec = o.old!.rec;
    if (rec.s !== logicalSize) return false;
    if (!o.byDisk) return rec.h === h;
    // No manifest: compare with the bytes on disk (a large sparse file is rewritten rather than read).
    if (o.job.sparse) return logicalSize <= SPARSE_COMPARE_MAX && diskContentId(o.abs, logicalSize) === h;
    const fd = openSync(o.abs, READ_FLAGS);
    try {
      const body = o.pieces.length === 1 ? o.pieces[0]! : Buffer.concat(o.pieces);
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

  // ---- streamed bodies, window by window --------------------------------------------------------------

  private closeWindow(o: Open): void {
    const pieces = o.window;
    const length = o.windowBytes;
    // Pieces hashed and written as they are: a window rarely lies within one chunk, and copying it would cost
    // as much as hashing it.
    let digest: Buffer;
    if (pieces.length === 1) digest = windowDigest(pieces[0]!);
    else {
      const hash = createHash('sha256');
      for (const piece of pieces) hash.update(piece);
      digest = hash.digest().subarray(0, 16);
    }
    const i = o.digests.length;
    o.digests.push(digest);
    const differs =
      o.created ||
      (o.oldFd !== null
        ? !readEquals(o.oldFd, pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length), o.offset)
        : o.old?.rec.b?.[i] !== digest.toString('base64'));
    if (differs) {
      o.fd ??= openSync(o.abs, WRITE_FLAGS);
      this.writePieces(o, pieces, o.offset);
      o.written = true;
    }
    o.offset += length;
    o.window = [];
    o.windowBytes = 0;
  }

  private endStream(o: Open): { h: string; b: Buffer[] } {
    if (o.windowBytes > 0) this.closeWindow(o);
    if (o.old && o.old.rec.s !== o.job.size) {
      o.fd ??= openSync(o.abs, WRITE_FLAGS);
      ftruncateSync(o.fd, o.job.size);
      o.written = true;
    }
    // sha256 of the window digests: the same id the whole-body path gives a body above one window.
    return { h: hash('sha256', Buffer.concat(o.digests), 'hex'), b: o.digests };
  }

  // ---- sparse files: data at the map's offsets, holes left as holes -----------------------------------

  private feedSparse(digest: ContentDigest, pieces: Buffer[], map: NonNullable<FileJob['sparse']>): void {
    let at = 0;
    forEachSegmentPiece(pieces, map, (offset, piece) => {
      if (offset > at) digest.zeros(offset - at);
      digest.update(piece);
      at = offset + piece.length;
    });
    if (map.realSize > at) digest.zeros(map.realSize - at);
  }

  private writeSparse(o: Open, pieces: Buffer[], map: NonNullable<FileJob['sparse']>): void {
    forEachSegmentPiece(pieces, map, (offset, piece) => this.writeAll(o, piece, offset));
    ftruncateSync(o.fd!, map.realSize);
    o.written = true;
  }

  private sparseData(o: Open, piece: Buffer): void {
    const map = o.job.sparse!;
    let at = 0;
    while (at < piece.length) {
      const segment = map.segments[o.segment]!;
      const left = segment[1] - o.segmentDone;
      if (left === 0) {
        o.segment++;
        o.segmentDone = 0;
        continue;
      }
      const take = Math.min(left, piece.length - at);
      const offset = segment[0] + o.segmentDone;
      const part = piece.subarray(at, at + take);
      if (o.digest!.total < offset) o.digest!.zeros(offset - o.digest!.total);
      o.digest!.update(part);
      this.writeAll(o, part, offset);
      o.segmentDone += take;
      at += take;
    }
  }

  private endSparseStream(o: Open): { h: string; b?: Buffer[] } {
    const map = o.job.sparse!;
    const digest = o.digest!;
    if (digest.total < map.realSize) digest.zeros(map.realSize - digest.total);
    ftruncateSync(o.fd!, map.realSize);
    o.written = true;
    return { h: digest.finish().h };
  }

  // ---- metadata ---------------------------------------------------------------------------------------

  /**
   * Owner, mode, mtime and xattrs, each only if it differs. chown runs first (it clears setuid/setgid and
   * security.capability), then chmod, then times; xattrs and exact times go to the helper batch.
   */
  private metadata(o: Open): boolean {
    const { job } = o;
    const rec = o.old?.rec;
    const fresh = o.created && job.freshParent;
    let changed = false;
    let chowned = false;
    let chmodded = false;
    if (!rec || rec.u !== job.uid || rec.g !== job.gid) {
      // A new file in a new plain directory already has the writer's user and group.
      if (!(fresh && job.uid === this.uid && job.gid === this.gid)) {
        if (o.fd !== null) fchownSync(o.fd, job.uid, job.gid);
        else lchownSync(o.abs, job.uid, job.gid);
        chowned = true;
      }
      changed = true;
    }
    const special = (job.mode & 0o7000) !== 0;
    if (!rec || rec.m !== job.recMode || (chowned && special)) {
      // ... and its creation mode less the umask, which is all it needs unless the bits differ.
      if (!(fresh && !special && (job.mode & ~this.umask) === job.mode)) {
        if (o.fd !== null) fchmodSync(o.fd, job.mode);
        else {
          // chmod(2) follows symlinks: make sure the name is still what the manifest said.
          if (!o.byDisk && lstatSync(o.abs).isSymbolicLink()) {
            throw new Error(
              `${this.root}/${job.rel} became a symlink behind the manifest's back; run without --manifest to repair`,
            );
          }
          chmodSync(o.abs, job.mode);
        }
        chmodded = true;
      }
      changed = true;
    }
    let timesSet = false;
    if (!rec || !sameMtime(rec, job) || o.written) {
      const t = job.mtime + job.mtimeNsec / 1e9;
      if (o.fd !== null) futimesSync(o.fd, t, t);
      else lutimesSync(o.abs, t, t);
      timesSet = true;
      changed = true;
    }
    const want = job.xattrs ? toMap(job.xattrs) : null;
    const have = o.old?.rec.x ? xattrMap(o.old.rec.x) : null;
    // A write or chown drops security.capability in the kernel, and a chmod rewrites an access ACL's mask,
    // so those re-set every attribute.
    const clobbered = chowned || o.written || (chmodded && want?.has(ACL_ACCESS) === true);
    if (!xattrsEqual(want, have) || (clobbered && want?.size)) {
      const remove = [...(have?.keys() ?? [])].filter((name) => !want?.has(name));
      this.requests.xattrs(job.rel, job.xattrs ?? [], remove, true);
      changed = true;
    }
    if (timesSet && needsPreciseTime(job)) this.requests.times(job.rel, job.mtime, job.mtimeNsec, true);
    return changed;
  }

  /**
   * The file's inode stamp now: from its descriptor, or its name if only metadata changed; the old one if
   * nothing was done to it (a stamp that no longer agrees only costs the next quick check a hash).
   */
  private stamp(o: Open, metaChanged: boolean): InodeStamp | undefined {
    if (o.fd !== null) return toStamp(fstatSync(o.fd));
    if (metaChanged) return toStamp(lstatSync(o.abs));
    return o.old?.rec.n;
  }

  // ---- creating and removing --------------------------------------------------------------------------

  private create(o: Open): void {
    const mode = o.job.freshParent ? o.job.mode & 0o777 : 0o600;
    try {
      o.fd = openSync(o.abs, CREATE_FLAGS, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // The manifest did not know this name (someone else put it there): replace it, never open it.
      const st = lstatSync(o.abs, { throwIfNoEntry: false });
      if (st && this.removeAny(o.abs, st)) o.wiped = true;
      o.fd = openSync(o.abs, CREATE_FLAGS, mode);
    }
    o.created = true;
    o.written = true;
  }

  private removeOld(o: Open): void {
    try {
      unlinkSync(o.abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EISDIR' || code === 'EPERM') {
        const st = lstatSync(o.abs, { throwIfNoEntry: false });
        if (st && this.removeAny(o.abs, st)) o.wiped = true;
      } else if (code !== 'ENOENT') throw err;
    }
  }

  /** Removes whatever is at abs; true when it was a directory. */
  private removeAny(abs: string | Buffer, st: Stats): boolean {
    if (st.isDirectory()) {
      removeTree(abs);
      return true;
    }
    unlinkSync(abs);
    return false;
  }

  private writePieces(o: Open, pieces: Buffer[], position: number): void {
    if (pieces.length === 1) {
      this.writeAll(o, pieces[0]!, position);
      return;
    }
    let at = position;
    for (let i = 0; i < pieces.length; i += IOV_MAX) {
      const group = pieces.slice(i, i + IOV_MAX);
      const length = group.reduce((n, p) => n + p.length, 0);
      const done = writevSync(o.fd!, group, at);
      o.bytesWritten += done;
      // A short writev (rare) is finished piece by piece.
      if (done < length) this.writeAll(o, Buffer.concat(group, length).subarray(done), at + done);
      at += length;
    }
  }

  private writeAll(o: Open, data: Buffer, position: number): void {
    let done = 0;
    while (done < data.length) done += writeSync(o.fd!, data, done, data.length - done, position + done);
    o.bytesWritten += data.length;
  }
}
