// Shared pieces of the unpacker tests: a workspace with a canary beside the target, a tree snapshot that
// records everything GNU tar is compared on, and GNU tar itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { TarBuilder } from '#test/support/tar-builder.ts';
import { type ApplyOptions, type ApplyStats, applyTarball } from '#unpack/index.ts';
import { decodeName, nameBytes } from '#unpack/names.ts';
import { dumpXattrs } from '#unpack/xattrs.ts';

export interface NodeSnapshot {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  /** Exact, in nanoseconds. */
  mtimeNs: string;
  sha256?: string;
  link?: string;
  rdev?: [number, number];
  /** Smallest path of the inode's hardlink group, for inodes with more than one name. */
  hardlinkGroup?: string;
  xattrs?: Record<string, string>;
}

export type TreeSnapshot = Record<string, NodeSnapshot>;

export interface SnapshotOptions {
  /** Paths (relative) whose directory mtime is not compared (implicit parents, the root). */
  ignoreMtime?: string[];
}

/** Everything GNU tar is compared on: paths, types, content, mode, owner, mtime, xattrs, links, rdev. */
export async function snapshotTree(root: string, opts: SnapshotOptions = {}): Promise<TreeSnapshot> {
  const xattrs = await dumpXattrs(root);
  const out: TreeSnapshot = {};
  const inodes = new Map<number, string[]>();
  // Names as bytes (a name that is not UTF-8 is keyed as #unpack/names.ts decodes it, byte for byte).
  const walk = (rel: string) => {
    const abs = rel === '' ? Buffer.from(root) : nameBytes(`${root}/${rel}`);
    const st = lstatSync(abs);
    const type: NodeSnapshot['type'] = st.isFile()
      ? 'file'
      : st.isDirectory()
        ? 'dir'
        : st.isSymbolicLink()
          ? 'symlink'
          : st.isCharacterDevice()
            ? 'char'
            : st.isBlockDevice()
              ? 'block'
              : st.isFIFO()
                ? 'fifo'
                : 'socket';
    const node: NodeSnapshot = {
      type,
      mode: (st.mode & 0o7777).toString(8),
      uid: st.uid,
      gid: st.gid,
      mtimeNs: opts.ignoreMtime?.includes(rel) ? '-' : lstatSync(abs, { bigint: true }).mtimeNs.toString(),
    };
    if (type === 'symlink') node.mode = '-';
    if (type === 'file') node.sha256 = createHash('sha256').update(readFileSync(abs)).digest('hex');
    if (type === 'symlink') node.link = decodeName(readlinkSync(abs, { encoding: 'buffer' }));
    if (type === 'char' || type === 'block') node.rdev = [Math.floor(st.rdev / 256) & 0xfff, st.rdev & 0xff];
    if (type !== 'dir' && st.nlink > 1) {
      const names = inodes.get(st.ino) ?? [];
      names.push(rel);
      inodes.set(st.ino, names);
    }
    const x = xattrs.get(rel);
    if (x?.size) {
      node.xattrs = Object.fromEntries(
        [...x].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v.toString('base64')]),
      );
    }
    out[rel] = node;
    if (type === 'dir') {
      const names = readdirSync(abs, { encoding: 'buffer' }).map((name) => decodeName(name));
      for (const name of names.sort()) walk(rel === '' ? name : `${rel}/${name}`);
    }
  };
  walk('');
  for (const names of inodes.values()) {
    if (names.length < 2) continue;
    const first = [...names].sort()[0]!;
    for (const name of names) out[name]!.hardlinkGroup = first;
  }
  return out;
}

export interface Workspace {
  dir: string;
  /** The target tree. */
  root: string;
  /** A sibling whose name extends the target's (`root-evil`), and an unrelated directory: both canaries. */
  siblingCanary: string;
  canary: string;
  manifest: string;
  cleanup(): void;
}

export function makeWorkspace(prefix = 'stemcell-unpack-'): Workspace {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const root = join(dir, 'root');
  const siblingCanary = join(dir, 'root-evil');
  const canary = join(dir, 'canary');
  for (const d of [root, siblingCanary, canary]) mkdirSync(d);
  writeFileSync(join(canary, 'secret'), 'canary secret\n');
  mkdirSync(join(canary, 'sub'));
  writeFileSync(join(siblingCanary, 'secret'), 'sibling secret\n');
  return {
    dir,
    root,
    siblingCanary,
    canary,
    manifest: join(dir, 'manifest.json'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Both canaries, for comparing before and after. */
export async function canaries(ws: Workspace): Promise<{ canary: TreeSnapshot; sibling: TreeSnapshot }> {
  return { canary: await snapshotTree(ws.canary), sibling: await snapshotTree(ws.siblingCanary) };
}

export function applyBuffer(archive: Buffer, target: string, opts?: ApplyOptions): Promise<ApplyStats> {
  // Odd-sized chunks so header and body boundaries never line up with reads.
  const chunks: Buffer[] = [];
  for (let i = 0; i < archive.length; i += 7919) chunks.push(archive.subarray(i, i + 7919));
  return applyTarball(Readable.from(chunks), target, opts);
}

/**
 * GNU tar restoring every extended attribute. Tests of SCHILY.acl.* and RHT.security.selinux records add
 * --acls / --selinux: with --acls GNU tar ignores ACLs carried as SCHILY.xattr.system.posix_acl_*
 * attributes (mmdebstrap's Debian stream has them), which the applier applies as well.
 */
export const GNU_TAR_EXTRACT = ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf'];

/**
 * The reference: GNU tar extracting the same archive (compression detected by tar itself unless `extra`
 * names it, e.g. --zstd for pzstd output, which tar does not recognise; `extra` also adds --acls etc.).
 */
export function gnuTarExtract(archivePath: string, target: string, extra: string[] = []): void {
  execFileSync('tar', [...extra, ...GNU_TAR_EXTRACT, archivePath, '-C', target], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** Revision 2 applied over revision 1, compared with GNU tar's fresh extract of revision 2. */
export interface RevisionCase {
  rev1: TarBuilder;
  rev2: TarBuilder;
  /** What happens to the tree between the two applies (behind the manifest's back). */
  between?: (ws: Workspace) => void;
  /** Paths whose directory mtime is not compared (implied parents get the time of the apply). */
  ignoreMtime?: string[];
  /** Extra GNU tar options for the reference (--acls for SCHILY.acl.* records). */
  gnuArgs?: string[];
  check?: (ws: Workspace, stats: ApplyStats) => void;
}

export async function overRevision(withManifest: boolean, c: RevisionCase): Promise<void> {
  const archive = c.rev2.build();
  const { ws, stats } = await twoRevisions(withManifest, c.rev1, archive, c.between);
  try {
    // the reference: GNU tar's fresh extract of revision 2
    const archivePath = join(ws.dir, 'rev2.tar');
    writeFileSync(archivePath, archive);
    const gnu = join(ws.dir, 'gnu');
    mkdirSync(gnu);
    gnuTarExtract(archivePath, gnu, c.gnuArgs);
    const snap = { ignoreMtime: ['', ...(c.ignoreMtime ?? [])] };
    assert.deepEqual(await snapshotTree(ws.root, snap), await snapshotTree(gnu, snap));
    c.check?.(ws, stats);
  } finally {
    ws.cleanup();
  }
}

/**
 * Revision 1, then revision 2 over it, in one workspace the caller cleans up (`ws.cleanup()`; it is cleaned
 * here if the applies or checks fail); checks that nothing outside the target changed and that only an apply
 * without a manifest verified against the disk.
 */
export async function twoRevisions(
  withManifest: boolean,
  rev1: TarBuilder,
  rev2: TarBuilder | Buffer,
  between?: (ws: Workspace) => void,
) {
  const ws = makeWorkspace();
  try {
    const opts = withManifest ? { manifestPath: ws.manifest } : {};
    await applyBuffer(rev1.build(), ws.root, opts);
    between?.(ws);
    const before = await canaries(ws);
    const stats = await applyBuffer(Buffer.isBuffer(rev2) ? rev2 : rev2.build(), ws.root, opts);
    assert.deepEqual(await canaries(ws), before, 'nothing outside the target changed');
    assert.equal(stats.verified, !withManifest);
    return { ws, stats };
  } catch (err) {
    ws.cleanup();
    throw err;
  }
}
