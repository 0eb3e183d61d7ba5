// What the main thread shares with the file writer's thread, and how an apply ends: owner, mode, times and
// extended attributes of what this thread applies (directories, symlinks, nodes, files the quick check
// skips), the writer's answers, settling with it, and the end of the archive (removals, directory mtimes,
// exact times). TreeApplier (apply.ts) applies the entries on top of this.
import { chmodSync, lchownSync, lstatSync, lutimesSync, readdirSync, unlinkSync } from 'node:fs';
import { modeWithAcl } from './acl.ts';
import { WHOLE_BODY_MAX } from './content.ts';
import type { FileJob, FileResult, InodeStamp } from './file-jobs.ts';
import { FileWriter } from './file-writer.ts';
import type { ManifestRecord } from './manifest.ts';
import { decodeName, nameBytes } from './names.ts';
import type { TarEntry } from './tar-reader.ts';
import { needsPreciseTime, parentOf, removeTree, sameMtime, xattrsEqual } from './tree-ops.ts';
import { type OldState, type Seen, TreeState } from './tree-state.ts';
import { WriterClient } from './writer-client.ts';
import type { XattrMap } from './xattrs.ts';

/** Setting the access ACL sets the group bits to its mask: a later chmod must be followed by the ACL. */
const ACL_ACCESS = 'system.posix_acl_access';
/**
 * Batches (about 1 MiB each) posted to the writer and not yet done, from which on this thread writes small
 * files itself: one in progress and two more waiting means the writer is the slower of the two.
 */
const INLINE_BACKLOG = 3;
/**
 * STEMCELL_UNPACK_WRITER=here: every regular file is written on this thread, whatever its size and the backlog.
 * For the mutation runs, whose coverage sees only this thread; the same FileWriter code runs either way.
 */
const WRITE_HERE_ALWAYS = process.env.STEMCELL_UNPACK_WRITER === 'here';

/** Where an entry's body goes: the writer (a file job), or nowhere (skipped, or no body). */
export type BodySink = ((piece: Buffer) => void) | null;

/** What the applier reads of the byte source: which chunks it may hand over, and idle work. */
export interface ChunkOwner {
  isRetired(memory: ArrayBufferLike): boolean;
  hashInputWhileIdle(): boolean;
}

export class TreeWrites extends TreeState {
  protected readonly writer: WriterClient;
  /** Directories and the entries that set their mtime, set at the very end (children change them). */
  private readonly dirMtimes = new Map<string, TarEntry>();
  private readonly dirMtimeDiffers = new Set<string>();
  /** Symlinks and directories with a fractional or negative mtime, which Node cannot set exactly. */
  private readonly preciseTimes = new Map<string, TarEntry>();
  /** File jobs handed to the writer and not yet answered, by id; and their paths. */
  protected readonly inFlight = new Map<number, { rel: string; rec: ManifestRecord }>();
  protected readonly inFlightPaths = new Map<string, number>();
  /** Device nodes and FIFOs handed to the writer's helper batch, not yet settled. */
  protected readonly pendingNodes = new Set<string>();
  /** This thread's own file writer, for when the writer's thread is behind (writeHereIfBehind). */
  private readonly inline: FileWriter;
  private inlineOpen = false;

  constructor(
    root: string,
    old: Map<string, ManifestRecord> | null,
    diskXattrs: Map<string, XattrMap>,
    source: ChunkOwner,
  ) {
    super(root, old, diskXattrs);
    this.writer = new WriterClient(
      root,
      (memory) => source.isRetired(memory),
      (result) => this.fileDone(result),
      (rel, stamp) => this.restamped(rel, stamp),
      () => source.hashInputWhileIdle(),
    );
    // Its attribute and exact-time requests join the writer's queue, so they run in order with the rest.
    this.inline = new FileWriter(root, process.umask(), {
      xattrs: (rel, set, remove) => this.writer.xattrsOfFile(rel, set, remove),
      times: (rel, sec, nsec) => this.writer.timesOfFile(rel, sec, nsec),
    });
  }

  /** The body handed to the sink apply() returned is complete. */
  bodyDone(): void {
    if (this.inlineOpen) {
      this.inlineOpen = false;
      this.fileDone(this.inline.end());
    } else this.writer.end();
  }

  /**
   * When the writer is this far behind, this thread writes the next small file itself, with the same code,
   * rather than queue more and wait: the two threads then share the files (the first apply, mostly).
   */
  protected writeHereIfBehind(job: FileJob): BodySink {
    if (!WRITE_HERE_ALWAYS) {
      if (job.sparse || job.size > WHOLE_BODY_MAX) return null;
      if (this.writer.backlog() < INLINE_BACKLOG) return null;
    }
    this.inline.begin(job);
    this.inlineOpen = true;
    return this.inlineSink;
  }

  private readonly inlineSink = (piece: Buffer): void => this.inline.data(piece);

  /** Reads the writer's answers so far (between chunks); throws its failure, if any. */
  poll(): void {
    this.writer.poll();
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

  /**
   * Owner, mode, mtime and xattrs of a directory, symlink, node or skipped file, each only if it differs.
   * chown runs first (it clears setuid/setgid and security.capability), then chmod, then times; xattrs go to
   * the writer's helper batch, after all of them. Returns whether any metadata was changed.
   */
  protected applyMetadata(
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
  protected settle(): void {
    this.writer.settle();
    this.pendingNodes.clear();
  }

  /** A path this archive already wrote, about to be replaced by a later entry of another type. */
  protected removeSeen(rel: string, prev: Seen): void {
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

/** The mode the entry ends with on disk: its access ACL, if any, sets the permission bits. */
export function modeOf(entry: TarEntry): number {
  const acl = entry.xattrs?.get(ACL_ACCESS);
  return acl ? modeWithAcl(entry.mode, acl) : entry.mode;
}

export function withMtime(rec: ManifestRecord, entry: TarEntry): ManifestRecord {
  rec.mt = entry.mtime;
  if (entry.mtimeNsec) rec.mn = entry.mtimeNsec;
  return rec;
}
