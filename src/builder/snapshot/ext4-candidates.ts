// The fast way to find changed blocks: ask the filesystem which blocks an apply can have written, and read only
// those, instead of hashing the whole disk. The candidates are:
// 1. everything outside the root filesystem: GPT, BIOS boot partition, ESP, the state partition (small, and
//    written by tools that keep no record of where);
// 2. ext4's own metadata, wherever dumpe2fs places it: superblocks, group descriptors, reserved GDT blocks,
//    block and inode bitmaps, inode tables (a deleted file changes its inode's slot, and no tree walk finds a
//    deleted file), and the reserved inodes (journal, resize inode, orphan file) with their blocks;
// 3. every block of every inode the apply or the boot step touched: an inode's ctime is set by the kernel on
//    every change of its data or metadata and cannot be set back from user space, so "ctime at or after the
//    start" finds every file, directory and symlink written, created, renamed into, chmod'ed or relinked. Their
//    blocks (data, extent-tree blocks, the external xattr block) are read by debugfs from the quiesced device:
//    the extents FIEMAP reports, plus the tree's own blocks, which FIEMAP does not.
// What this cannot see: a block that one apply allocated, wrote back to disk and freed again. It is free space at
// the end, which no file reads; its new content stays out of the snapshot. The tests compare the fast set with a
// full hash of the disk (test/integration/volumes/direct-snapshots.test.ts) to show no other block is missed.
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DependencyError } from '#errors';
import { run } from '../volume/exec.ts';
import { BLOCK_SIZE, blockCount } from './digests.ts';

/** Inodes whose ctime is this far before the tracker started still count: the kernel's clock is coarse. */
const CLOCK_MARGIN_NS = 2_000_000_000n;

export interface CandidateReport {
  /** Disk block indices (BLOCK_SIZE) to read, ascending. */
  indices: number[];
  /** Inodes found changed by ctime. */
  changedInodes: number;
  /** Candidates by reason (a block may have several), in disk blocks. */
  outsideRoot: number;
  metadata: number;
  inodeBlocks: number;
  ms: number;
}

/** The filesystem could not say which blocks may have changed: the caller hashes every block instead. */
export class CandidateError extends DependencyError {}

/**
 * Records the moment an apply starts on a mounted ext4 root; `noteChanges` (after the last write, before
 * unmount) lists the inodes touched since; `candidates` (after quiesce) maps them and the metadata to disk blocks.
 */
export class Ext4WriteTracker {
  readonly #root: string;
  readonly #since: bigint;
  #inodes: number[] | undefined;
  #walkMs = 0;

  constructor(root: string, now: () => number = Date.now) {
    this.#root = root;
    this.#since = BigInt(now()) * 1_000_000n - CLOCK_MARGIN_NS;
  }

  /** Walks the mounted tree (no crossing into other filesystems) for inodes changed since the start. */
  noteChanges(): number {
    const started = performance.now();
    const rootDev = lstatSync(this.#root, { bigint: true }).dev;
    const changed = new Set<number>();
    const visit = (path: string) => {
      const st = lstatSync(path, { bigint: true });
      if (st.dev !== rootDev) return;
      if (st.ctimeNs >= this.#since) changed.add(Number(st.ino));
      if (!st.isDirectory()) return;
      for (const name of readdirSync(path)) visit(join(path, name));
    };
    visit(this.#root);
    this.#inodes = [...changed].sort((a, b) => a - b);
    this.#walkMs = performance.now() - started;
    return changed.size;
  }

  async candidates(disk: {
    /** The root filesystem's block device (a loop device at the partition's offset), unmounted. */
    rootDevice: string;
    rootStartBytes: number;
    rootBytes: number;
    diskBytes: number;
  }): Promise<CandidateReport> {
    if (!this.#inodes) throw new CandidateError('noteChanges() was not called before unmounting');
    const started = performance.now();
    const count = blockCount(disk.diskBytes);
    const picked = new Uint8Array(count);
    const rootEnd = disk.rootStartBytes + disk.rootBytes;
    let outsideRoot = 0;
    for (let i = 0; i < count; i++) {
      if (i * BLOCK_SIZE < disk.rootStartBytes || Math.min((i + 1) * BLOCK_SIZE, disk.diskBytes) > rootEnd) {
        picked[i] = 1;
        outsideRoot++;
      }
    }
    const dump = await run('dumpe2fs', [disk.rootDevice], { env: { DEBUGFS_PAGER: '__none__' } });
    const fsBlock = Number(/^Block size:\s+(\d+)/m.exec(dump)?.[1]);
    if (!fsBlock) throw new CandidateError(`dumpe2fs ${disk.rootDevice}: no block size`);
    const mark = (from: number, to: number): number => {
      const first = Math.floor((disk.rootStartBytes + from * fsBlock) / BLOCK_SIZE);
      const last = Math.floor((disk.rootStartBytes + (to + 1) * fsBlock - 1) / BLOCK_SIZE);
      let added = 0;
      for (let i = first; i <= last && i < count; i++) {
        if (!picked[i]) added++;
        picked[i] = 1;
      }
      return added;
    };
    let metadata = 0;
    for (const [from, to] of metadataRanges(dump)) metadata += mark(from, to);

    const firstInode = Number(/^First inode:\s+(\d+)/m.exec(dump)?.[1] ?? 11);
    const special = Array.from({ length: firstInode - 1 }, (_, i) => i + 1);
    const orphanFile = /^Orphan file inode:\s+(\d+)/m.exec(dump)?.[1];
    if (orphanFile) special.push(Number(orphanFile));
    const inodes = [...new Set([...special, ...this.#inodes])].sort((a, b) => a - b);
    const out = await run('debugfs', ['-f', '-', disk.rootDevice], {
      input: inodes.map((i) => `stat <${i}>\n`).join(''),
      env: { DEBUGFS_PAGER: '__none__', PAGER: '__none__' },
    });
    const parsed = inodeBlocks(out);
    // Reserved inodes that are unused (inode 1, 9, 10 on most filesystems) still print a header.
    if (parsed.inodes !== inodes.length)
      throw new CandidateError(`debugfs described ${parsed.inodes} of the ${inodes.length} inodes asked for`);
    let inodeBlockCount = 0;
    for (const [from, to] of parsed.ranges) inodeBlockCount += mark(from, to);

    const indices: number[] = [];
    for (let i = 0; i < count; i++) if (picked[i]) indices.push(i);
    return {
      indices,
      changedInodes: this.#inodes.length,
      outsideRoot,
      metadata,
      inodeBlocks: inodeBlockCount,
      ms: Math.round(performance.now() - started + this.#walkMs),
    };
  }
}

/** Superblocks, group descriptors, reserved GDT blocks, bitmaps and inode tables, as dumpe2fs lists them. */
export function metadataRanges(dump: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  const add = (a: string | undefined, b?: string) => {
    if (a === undefined) return;
    ranges.push([Number(a), Number(b ?? a)]);
  };
  for (const m of dump.matchAll(/superblock at (\d+)(?:-(\d+))?/gi)) add(m[1], m[2]);
  for (const m of dump.matchAll(/Group descriptors at (\d+)(?:-(\d+))?/g)) add(m[1], m[2]);
  for (const m of dump.matchAll(/Reserved GDT blocks at (\d+)(?:-(\d+))?/g)) add(m[1], m[2]);
  for (const m of dump.matchAll(/(?:Block|Inode) bitmap at (\d+)(?:-(\d+))?/g)) add(m[1], m[2]);
  for (const m of dump.matchAll(/Inode table at (\d+)(?:-(\d+))?/g)) add(m[1], m[2]);
  if (!ranges.some(([a]) => a === 0) && !/superblock at/i.test(dump))
    throw new CandidateError('dumpe2fs: no superblock listed');
  return ranges;
}

/**
 * Every block debugfs `stat` lists for the inodes it printed: the EXTENTS / BLOCKS sections (data, extent-tree
 * "(ETB…)" and indirect "(IND)" blocks) and the external xattr block ("File ACL").
 */
export function inodeBlocks(out: string): { inodes: number; ranges: Array<[number, number]> } {
  const ranges: Array<[number, number]> = [];
  let inodes = 0;
  let inList = false;
  for (const line of out.split('\n')) {
    if (/^Inode: \d+\s/.test(line)) {
      inodes++;
      inList = false;
      continue;
    }
    if (line.startsWith('debugfs:') || line.startsWith('TOTAL:') || line.trim() === '') {
      inList = false;
      continue;
    }
    const acl = /^File ACL: (\d+)/.exec(line);
    if (acl) {
      if (acl[1] !== '0') ranges.push([Number(acl[1]), Number(acl[1])]);
      continue;
    }
    if (line === 'EXTENTS:' || line === 'BLOCKS:') {
      inList = true;
      continue;
    }
    if (!inList) continue;
    for (const m of line.matchAll(/\([^()]*\):(\d+)(?:-(\d+))?/g))
      ranges.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return { inodes, ranges };
}
