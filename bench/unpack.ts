// `npm run bench:unpack`: the applier against GNU tar and rsync on ext4 loop volumes, for a synthetic
// stream and the real Debian stream. Writes bench/results/unpack.json and bench/results/unpack.md.
//
//   node bench/unpack.ts [--scale 0.1] [--skip-debian] [--skip-synthetic]
//   BENCH_QUICK=1 npm run bench:unpack    (Debian stream only, while iterating)
//
// Steps per stream: (a) GNU tar full extract of revision 1 on a fresh volume; (b) the applier's first
// apply of revision 1 on a fresh volume; (c) the applier's incremental apply of revision 2 onto (b)'s
// volume, with its manifest; (d) rsync -aHAX --delete of an extracted revision 2 onto a copy of (b)'s
// volume; (e) the applier on that copy without a manifest (verify by stat + content); (f) the incremental
// apply with the opt-in --trust-mtime quick check; (z1), (z2) decompression alone of revision 1 and 2 (the
// zstd tool the applier runs, output to /dev/null); (h1), (h2) `zstd -dc <tarball> | sha256sum`, decompressing
// and hashing side by side on two cores: the floor of a content-verified apply, which must hash every byte.
// (o1), (o2) are the same pipe hashed by `openssl dgst -sha256` (SHA-NI, as the applier's OpenSSL hashes),
// because coreutils' sha256sum is portable C, several times slower, and so a lenient floor. After (c)-(f)
// the 512 KiB blocks whose content differs from the revision-1 image are counted: what an EBS snapshot
// would carry. Each step is timed by wall clock and by the CPU time of its process tree (steadier on a
// loaded machine).
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { ApplyStats } from '#unpack/index.ts';
import { header, paxBody } from '../test/support/tar-builder.ts';

const REPO = join(import.meta.dirname, '..');
const RESULTS = join(REPO, 'bench/results');
const CACHE = join(REPO, '.cache/bench-unpack');
const WORK = process.env.STEMCELL_BENCH_DIR ?? '/var/tmp/stemcell-bench-unpack';
const BLOCK = 512 * 1024;
const T0 = 1_700_000_000;

const args = process.argv.slice(2);
const scale = args.includes('--scale') ? Number(args[args.indexOf('--scale') + 1]) || 1 : 1;
const skipDebian = args.includes('--skip-debian');
const skipSynthetic = args.includes('--skip-synthetic') || process.env.BENCH_QUICK === '1';

function log(message: string): void {
  process.stderr.write(`bench:unpack: ${message}\n`);
}

function run(cmd: string, argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...opts });
  if (result.status !== 0) {
    throw new Error(
      `${cmd} ${argv.join(' ')} failed (${result.status}): ${result.stderr || result.error?.message}`,
    );
  }
  return result.stdout;
}

/** CPU milliseconds (user + system) of the last command runCpu ran, with everything it waited for. */
let lastCpuMs = 0;

/**
 * Like run, through `sh -c '…; times'`: the shell's `times` reports its children's user and system time
 * (the command and what it waited for: tar's zstd, the applier's decoder and helpers). On a shared,
 * loaded machine CPU time varies far less than wall clock, so both are reported.
 */
function runCpu(cmd: string, argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = spawnSync('sh', ['-c', '"$@"; s=$?; times >&2; exit $s', 'sh', cmd, ...argv], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...opts,
  });
  if (result.status !== 0) {
    throw new Error(
      `${cmd} ${argv.join(' ')} failed (${result.status}): ${result.stderr || result.error?.message}`,
    );
  }
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s\s*$/.exec(result.stderr);
  if (!m) throw new Error(`no times output from ${cmd}: ${result.stderr}`);
  lastCpuMs = Math.round((Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000);
  return result.stdout;
}

function timed<T>(fn: () => T): { ms: number; value: T } {
  const start = performance.now();
  const value = fn();
  return { ms: Math.round(performance.now() - start), value };
}

// ---- synthetic stream ---------------------------------------------------------------------------------

/** Deterministic bytes: half incompressible, half word salad, so zstd gets a realistic ~2:1. */
function makePool(bytes: number): Buffer {
  const pool = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  const words = Buffer.from(
    'the quick brown fox jumps over lazy dogs while kernel modules load and systemd units start, ' +
      'libc provides memcpy strlen and friends; python3 perl ruby share the page cache\n',
  );
  for (let i = 0; i < bytes / 2; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool.writeUInt32LE(x >>> 0, i);
  }
  for (let i = bytes / 2; i < bytes; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const start = (x >>> 0) % (words.length - 16);
    const len = 8 + ((x >>> 8) % 24);
    i += words.copy(pool, i, start, Math.min(start + len, words.length));
  }
  return pool;
}

interface SynthEntry {
  kind: 'dir' | 'file' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';
  path: string;
  size?: number;
  /** Where in the pool the content starts; patches overwrite parts of it. */
  seed?: number;
  patches?: Array<[offset: number, seed: number]>;
  mode: number;
  uid?: number;
  gid?: number;
  mtime: number;
  link?: string;
  dev?: [number, number];
  xattrs?: Record<string, Buffer>;
}

interface SynthShape {
  smallFiles: number;
  largeFiles: number;
  largeSize: number;
}

function synthShape(): SynthShape {
  return {
    smallFiles: Math.round(32_000 * scale),
    largeFiles: Math.max(2, Math.round(48 * scale)),
    largeSize: 16 * 1024 * 1024,
  };
}

/** The entries of revision 1 or 2: 2 % of small files changed, 1 % removed, 1 % added, one large file patched. */
function* synthEntries(rev: 1 | 2, shape: SynthShape): Generator<SynthEntry> {
  const dirCount = 512;
  const mtime = (changed: boolean) => (rev === 2 && changed ? T0 + 86_400 : T0);
  yield { kind: 'dir', path: '.', mode: 0o755, mtime: T0 };
  for (const top of ['dev', 'sbin', 'links', 'hard', 'big', 'deep', 'new'])
    yield { kind: 'dir', path: top, mode: 0o755, mtime: T0 };
  for (let d = 0; d < dirCount; d++) {
    if (d % 16 === 0) yield { kind: 'dir', path: `d${d >> 4}`, mode: 0o755, mtime: T0 };
    yield { kind: 'dir', path: `d${d >> 4}/${d & 15}`, mode: d % 97 === 0 ? 0o1777 : 0o755, mtime: T0 };
  }
  let deep = 'deep';
  for (let level = 0; level < 40; level++) {
    deep += `/level-${level}`;
    yield { kind: 'dir', path: deep, mode: 0o750, mtime: T0 };
  }
  yield { kind: 'file', path: `${deep}/bottom`, size: 4096, seed: 1, mode: 0o644, mtime: T0 };
  const smallPath = (i: number) => `d${(i % dirCount) >> 4}/${(i % dirCount) & 15}/f${i}`;
  const exists = (i: number) => rev === 1 || i % 100 !== 7;
  for (let i = 0; i < shape.smallFiles; i++) {
    if (!exists(i)) continue;
    const changed = rev === 2 && i % 50 === 3;
    const metaChanged = rev === 2 && i % 200 === 11;
    // Mostly a few KiB, a tail up to 256 KiB: like /usr.
    const size = i % 10 === 0 ? (i * 7919) % (256 * 1024) : (i * 104_729) % 12_000;
    const xattrs: Record<string, Buffer> = {};
    if (i % 64 === 0) xattrs['user.bench'] = Buffer.from(`file ${i}`);
    if (i % 500 === 0)
      xattrs['security.capability'] = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    yield {
      kind: 'file',
      path: smallPath(i),
      size,
      seed: i * 131 + (changed ? 17 : 0),
      mode: metaChanged ? 0o600 : i % 13 === 0 ? 0o755 : 0o644,
      uid: i % 11 === 0 ? 1000 + (i % 7) : 0,
      gid: i % 11 === 0 ? 1000 : 0,
      mtime: mtime(changed || metaChanged),
      xattrs,
    };
  }
  for (let j = 0; j < shape.largeFiles; j++) {
    if (rev === 2 && j === 1) continue;
    const patched = rev === 2 && j === 0;
    yield {
      kind: 'file',
      path: `big/blob-${j}.bin`,
      size: shape.largeSize - (j % 5) * 1_048_576,
      seed: j * 1_000_003,
      patches: patched
        ? [
            [123_456, 9],
            [5_000_000, 10],
            [12_000_000, 11],
          ]
        : undefined,
      mode: 0o644,
      mtime: mtime(patched),
    };
  }
  if (rev === 2) {
    yield {
      kind: 'file',
      path: 'big/added.bin',
      size: 8 * 1024 * 1024,
      seed: 777,
      mode: 0o644,
      mtime: T0 + 86_400,
    };
    for (let i = 0; i < shape.smallFiles / 100; i++) {
      yield {
        kind: 'file',
        path: `new/n${i}`,
        size: (i * 3_331) % 9_000,
        seed: i * 71,
        mode: 0o644,
        mtime: T0 + 86_400,
      };
    }
  }
  for (let k = 0; k < 20; k++) {
    yield {
      kind: 'file',
      path: `sbin/suid-${k}`,
      size: 20_000,
      seed: k * 3,
      mode: k % 2 ? 0o4755 : 0o2755,
      gid: k % 2 ? 0 : 5,
      mtime: T0,
    };
  }
  for (let k = 0; k < 1000; k++) {
    const i = (k * 37) % shape.smallFiles;
    yield {
      kind: 'symlink',
      path: `links/s${k}`,
      link: k % 2 ? `/${smallPath(i)}` : `../${smallPath(i)}`,
      mode: 0o777,
      mtime: T0,
    };
  }
  for (let k = 0; k < 300; k++) {
    const i = (k * 101 + 1) % shape.smallFiles;
    if (!exists(i)) continue;
    yield { kind: 'hardlink', path: `hard/h${k}`, link: smallPath(i), mode: 0o644, mtime: T0 };
  }
  for (let k = 0; k < 10; k++) {
    yield { kind: 'char', path: `dev/c${k}`, dev: [1, k], mode: 0o666, mtime: T0 };
    yield { kind: 'block', path: `dev/b${k}`, dev: [7, k], mode: 0o660, gid: 6, mtime: T0 };
  }
  for (let k = 0; k < 5; k++) yield { kind: 'fifo', path: `dev/p${k}`, mode: 0o600, mtime: T0 };
}

const TYPEFLAG = {
  dir: '5',
  file: '0',
  symlink: '2',
  hardlink: '1',
  char: '3',
  block: '4',
  fifo: '6',
} as const;

function entryBlocks(e: SynthEntry, pool: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const name = e.kind === 'dir' && e.path !== '.' ? `./${e.path}/` : `./${e.path}`;
  const records: Array<[string, string | Buffer]> = [];
  if (Buffer.byteLength(name) > 99) records.push(['path', name]);
  for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push([`SCHILY.xattr.${k}`, v]);
  if (records.length) {
    const body = paxBody(records);
    out.push(header({ name: 'PaxHeader', typeflag: 'x', size: body.length }), pad(body));
  }
  const size = e.kind === 'file' ? (e.size ?? 0) : 0;
  out.push(
    header({
      name: Buffer.byteLength(name) > 99 ? name.slice(0, 90) : name,
      typeflag: TYPEFLAG[e.kind],
      size,
      mode: e.mode,
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime,
      linkname: e.kind === 'hardlink' ? `./${e.link}` : (e.link ?? ''),
      devmajor: e.dev?.[0],
      devminor: e.dev?.[1],
    }),
  );
  if (size > 0) {
    const start = (e.seed ?? 0) % (pool.length - size);
    let body = pool.subarray(start, start + size);
    if (e.patches) {
      body = Buffer.from(body);
      for (const [offset, seed] of e.patches) pool.copy(body, offset, seed * 4099, seed * 4099 + 4096);
    }
    out.push(pad(body));
  }
  return out;
}

function pad(body: Buffer): Buffer {
  const rest = body.length % 512;
  return rest === 0 ? body : Buffer.concat([body, Buffer.alloc(512 - rest)]);
}

/** Writes revision `rev` as .tar.zst (cached by shape), returning its path, entries and tar size. */
async function synthTarball(
  rev: 1 | 2,
  shape: SynthShape,
): Promise<{ path: string; entries: number; tarBytes: number }> {
  const key = `synthetic-v1-${shape.smallFiles}-${shape.largeFiles}-rev${rev}`;
  const path = join(CACHE, `${key}.tar.zst`);
  const metaPath = `${path}.json`;
  if (existsSync(path) && existsSync(metaPath)) {
    return { path, ...(JSON.parse(readFileSync(metaPath, 'utf8')) as { entries: number; tarBytes: number }) };
  }
  mkdirSync(CACHE, { recursive: true });
  log(`generating synthetic revision ${rev} (${key})`);
  const pool = makePool(64 * 1024 * 1024);
  const tmp = `${path}.tmp`;
  const zstd = spawn('zstd', ['-q', '-f', '-T2', '-3', '-o', tmp], { stdio: ['pipe', 'inherit', 'inherit'] });
  const done = new Promise<void>((resolve, reject) =>
    zstd.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exit ${code}`)))),
  );
  let entries = 0;
  let tarBytes = 0;
  const write = async (buf: Buffer) => {
    tarBytes += buf.length;
    if (!zstd.stdin.write(buf)) await new Promise((r) => zstd.stdin.once('drain', r));
  };
  for (const e of synthEntries(rev, shape)) {
    entries++;
    for (const b of entryBlocks(e, pool)) await write(b);
  }
  await write(Buffer.alloc(10240));
  zstd.stdin.end();
  await done;
  renameSync(tmp, path);
  writeFileSync(metaPath, JSON.stringify({ entries, tarBytes }));
  return { path, entries, tarBytes };
}

// ---- volumes ------------------------------------------------------------------------------------------

function makeVolume(image: string, bytes: number): void {
  rmSync(image, { force: true });
  run('truncate', ['-s', String(bytes), image]);
  // Inode tables and journal initialised now, so no background initialisation dirties blocks later.
  run('mkfs.ext4', ['-F', '-q', '-m', '0', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]);
}

async function withMounted<T>(image: string, fn: (mnt: string) => Promise<T> | T): Promise<T> {
  const mnt = `${image}.mnt`;
  mkdirSync(mnt, { recursive: true });
  run('mount', ['-o', 'loop,noatime', image, mnt]);
  try {
    return await fn(mnt);
  } finally {
    // -d detaches the loop device too; retried once in case a child still held it.
    const result = spawnSync('umount', ['-d', mnt]);
    if (result.status !== 0) {
      spawnSync('sync');
      run('umount', ['-d', mnt]);
    }
  }
}

function copyImage(from: string, to: string): void {
  rmSync(to, { force: true });
  run('cp', ['--sparse=always', from, to]);
}

/** 512 KiB blocks whose content differs between two images of the same size. */
function dirtyBlocks(a: string, b: string): number {
  const size = statSync(a).size;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const chunk = 32 * BLOCK;
  const ba = Buffer.alloc(chunk);
  const bb = Buffer.alloc(chunk);
  let dirty = 0;
  try {
    for (let pos = 0; pos < size; pos += chunk) {
      const na = readSync(fa, ba, 0, chunk, pos);
      const nb = readSync(fb, bb, 0, chunk, pos);
      for (let off = 0; off < Math.max(na, nb); off += BLOCK) {
        if (ba.compare(bb, off, off + BLOCK, off, off + BLOCK) !== 0) dirty++;
      }
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return dirty;
}

/** What `stemcell unpack --json` prints, and the CPU time of its process tree. */
type UnpackJson = ApplyStats & { cpuMs?: number };

/**
 * How the applier's process is started. The builder agent is long-running, so it pays neither Node's
 * TypeScript stripping of our modules (~0.15 s per cold start here; the compile cache keeps the stripped
 * code) nor the old-space growth a fresh heap goes through (a ~10 MiB heap with 355 MB of buffers flowing
 * through it ran 20-30 mark-compacts per apply; a 64 MiB initial old space, 6). bin/stemcell can set the same.
 */
const APPLIER_NODE_FLAGS = ['--max-semi-space-size=32', '--initial-old-space-size=64'];
const APPLIER_ENV = { ...process.env, NODE_COMPILE_CACHE: join(CACHE, 'node-compile-cache') };

/**
 * STEMCELL_BENCH_CPU_PROF=<dir>: each applier run also writes V8 CPU profiles (one per thread) into
 * <dir>/<stream>-<step> (b, c, e, f); `node bench/cpu-profile.ts <dir>/<stream>-<step>` prints their top frames.
 * Profiling slows the run: the timings of such a run are not the benchmark's.
 */
const CPU_PROF_DIR = process.env.STEMCELL_BENCH_CPU_PROF;

function profileFlags(label: string): string[] {
  if (!CPU_PROF_DIR) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${join(CPU_PROF_DIR, label)}`];
}

/** The applier as the builder runs it (the library, in a fresh process), timed from outside. */
function stemcellUnpack(
  label: string,
  tarball: string,
  target: string,
  manifest?: string,
  trustMtime = false,
): UnpackJson {
  const argv = [
    ...APPLIER_NODE_FLAGS,
    ...profileFlags(label),
    join(REPO, 'bench/unpack.ts'),
    '--apply',
    tarball,
    target,
    manifest ?? '',
  ];
  if (trustMtime) argv.push('--trust-mtime');
  const stats = JSON.parse(
    runCpu(join(REPO, 'node_modules/.bin/node'), argv, { cwd: REPO, env: APPLIER_ENV }),
  ) as UnpackJson;
  return { ...stats, cpuMs: lastCpuMs };
}

/** Fills the compile cache (its entries hold only for the same V8 flags), so no timed run pays for it. */
function warmApplier(): void {
  run(
    join(REPO, 'node_modules/.bin/node'),
    [...APPLIER_NODE_FLAGS, join(REPO, 'bench/unpack.ts'), '--warm'],
    {
      cwd: REPO,
      env: APPLIER_ENV,
    },
  );
}

/**
 * One tiny apply (a file, a directory): every module the applier loads, its file writer thread's included,
 * goes through the compile cache once, so no timed run strips TypeScript.
 */
async function warmApply(): Promise<void> {
  const { applyTarball } = await import('#unpack/index.ts');
  const { Readable } = await import('node:stream');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const target = mkdtempSync(join(tmpdir(), 'stemcell-bench-warm-'));
  try {
    const archive = Buffer.concat([
      header({ name: 'd/', typeflag: '5', mode: 0o755 }),
      header({ name: 'd/f', size: 5 }),
      pad(Buffer.from('warm\n')),
      Buffer.alloc(1024),
    ]);
    await applyTarball(Readable.from([archive]), target, { manifestPath: `${target}.manifest` });
  } finally {
    rmSync(target, { recursive: true, force: true });
    rmSync(`${target}.manifest`, { force: true });
  }
}

async function applyOnly(
  tarball: string,
  target: string,
  manifest: string,
  trustMtime: boolean,
): Promise<void> {
  const { applyTarball } = await import('#unpack/index.ts');
  const { createReadStream } = await import('node:fs');
  const stats = await applyTarball(createReadStream(tarball, { highWaterMark: 1024 * 1024 }), target, {
    manifestPath: manifest || undefined,
    trustMtime,
  });
  process.stdout.write(`${JSON.stringify(stats)}\n`);
}

const GNU_TAR = ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf'];

/** Decompression alone, by the tool and options the applier's decoder uses, output discarded. */
function decompressOnly(tarball: string): { ms: number; cpuMs: number } {
  const ms = timed(() =>
    runCpu('sh', ['-c', 'exec zstd -dc -q --memory=128MB "$0" > /dev/null', tarball]),
  ).ms;
  return { ms, cpuMs: lastCpuMs };
}

/** Decompression and hashing side by side (two processes, two cores): `zstd -dc | <hasher>`. */
function decompressAndHash(tarball: string, hasher: 'sha256sum' | 'openssl'): { ms: number; cpuMs: number } {
  const hash = hasher === 'openssl' ? 'openssl dgst -sha256' : 'sha256sum';
  const ms = timed(() =>
    runCpu('sh', ['-c', `zstd -dc -q --memory=128MB "$0" | ${hash} > /dev/null`, tarball]),
  ).ms;
  return { ms, cpuMs: lastCpuMs };
}

// ---- one stream ---------------------------------------------------------------------------------------

interface StreamResult {
  name: string;
  rev1: { path: string; compressedBytes: number; entries?: number; tarBytes?: number };
  rev2: { path: string; compressedBytes: number };
  volumeBytes: number;
  a_gnuTarFullMs: number;
  /** Decompression alone (zstd -dc to /dev/null) of revision 1 and of revision 2. */
  z1_decompressMs: number;
  z2_decompressMs: number;
  /** `zstd -dc | sha256sum` of revision 1 and of revision 2: the floor of a content-verified apply. */
  h1_decompressHashMs: number;
  h2_decompressHashMs: number;
  /** The same pipe hashed by OpenSSL (what the applier hashes with): the stricter floor. */
  o1_decompressOpensslMs: number;
  o2_decompressOpensslMs: number;
  /** CPU milliseconds (user + system) of each step's process tree. */
  cpuMs: {
    a: number;
    z1: number;
    z2: number;
    h1: number;
    h2: number;
    o1: number;
    o2: number;
    b: number;
    c: number;
    e: number;
    f: number;
  };
  b_firstApply: UnpackJson & { wallMs: number };
  c_incrementalApply: UnpackJson & { wallMs: number; dirtyBlocks: number; dirtyMiB: number };
  d_rsync: { wallMs: number; dirtyBlocks: number; dirtyMiB: number };
  e_verifyApply: UnpackJson & { wallMs: number; dirtyBlocks: number; dirtyMiB: number };
  f_quickCheckApply: UnpackJson & { wallMs: number; dirtyBlocks: number; dirtyMiB: number };
  ratios: {
    firstOverTar: number;
    incrementalOverTar: number;
    quickCheckOverTar: number;
    firstOverDecompress: number;
    incrementalOverDecompress: number;
    incrementalOverDecompressHash: number;
    incrementalOverDecompressOpenssl: number;
    firstOverDecompressHash: number;
    quickCheckOverDecompress: number;
    dirtyIncrementalOverRsync: number;
  };
  goals: Record<string, { goal: string; value: number; met: boolean }>;
}

async function benchStream(
  name: string,
  rev1: string,
  rev2: string,
  volumeBytes: number,
): Promise<StreamResult> {
  const dir = join(WORK, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const img = (n: string) => join(dir, `${n}.img`);
  // On tmpfs: the builder keeps it on its own disk, not the volume's. Here the volume images live on the
  // same filesystem as WORK, and an fsync there would also flush the loop device's backing file.
  const manifest = join('/dev/shm', `stemcell-bench-unpack-${name}.manifest`);
  try {
    log(`${name}: (a) GNU tar full extract`);
    makeVolume(img('tar'), volumeBytes);
    const a = await withMounted(
      img('tar'),
      (mnt) => timed(() => runCpu('tar', [...GNU_TAR, rev1, '-C', mnt])).ms,
    );
    const aCpu = lastCpuMs;
    rmSync(img('tar'), { force: true });
    spawnSync('sync');

    log(`${name}: (z) decompression alone`);
    const z1cpu = decompressOnly(rev1);
    const z2cpu = decompressOnly(rev2);
    const z1 = z1cpu.ms;
    const z2 = z2cpu.ms;
    log(`${name}: (h) decompression and sha256sum side by side; (o) the same with openssl`);
    const h1 = decompressAndHash(rev1, 'sha256sum');
    const h2 = decompressAndHash(rev2, 'sha256sum');
    const o1 = decompressAndHash(rev1, 'openssl');
    const o2 = decompressAndHash(rev2, 'openssl');

    log(`${name}: (b) first apply`);
    makeVolume(img('ours'), volumeBytes);
    const b = await withMounted(img('ours'), (mnt) =>
      timed(() => stemcellUnpack(`${name}-b`, rev1, mnt, manifest)),
    );
    spawnSync('sync');
    copyImage(img('ours'), img('rev1'));
    copyFileSync(manifest, `${manifest}.rev1`);

    log(`${name}: (c) incremental apply of revision 2`);
    const c = await withMounted(img('ours'), (mnt) =>
      timed(() => stemcellUnpack(`${name}-c`, rev2, mnt, manifest)),
    );
    spawnSync('sync');
    const cDirty = dirtyBlocks(img('rev1'), img('ours'));

    log(`${name}: (d) rsync -aHAX --delete`);
    const extracted = join(dir, 'rev2-tree');
    mkdirSync(extracted);
    run('tar', [...GNU_TAR, rev2, '-C', extracted]);
    copyImage(img('rev1'), img('rsync'));
    const d = await withMounted(
      img('rsync'),
      (mnt) =>
        timed(() => run('rsync', ['-aHAX', '--numeric-ids', '--delete', `${extracted}/`, `${mnt}/`])).ms,
    );
    rmSync(extracted, { recursive: true, force: true });
    spawnSync('sync');
    const dDirty = dirtyBlocks(img('rev1'), img('rsync'));
    rmSync(img('rsync'), { force: true });

    log(`${name}: (e) apply of revision 2 without a manifest (verify)`);
    copyImage(img('rev1'), img('verify'));
    const e = await withMounted(img('verify'), (mnt) => timed(() => stemcellUnpack(`${name}-e`, rev2, mnt)));
    spawnSync('sync');
    const eDirty = dirtyBlocks(img('rev1'), img('verify'));
    rmSync(img('verify'), { force: true });

    log(`${name}: (f) incremental apply with --trust-mtime (opt-in quick check)`);
    copyImage(img('rev1'), img('quick'));
    copyFileSync(`${manifest}.rev1`, manifest);
    const f = await withMounted(img('quick'), (mnt) =>
      timed(() => stemcellUnpack(`${name}-f`, rev2, mnt, manifest, true)),
    );
    spawnSync('sync');
    const fDirty = dirtyBlocks(img('rev1'), img('quick'));

    const mib = (blocks: number) => Math.round((blocks * BLOCK) / 2 ** 20);
    const ratios = {
      firstOverTar: round(b.ms / a),
      incrementalOverTar: round(c.ms / a),
      quickCheckOverTar: round(f.ms / a),
      firstOverDecompress: round(b.ms / z1),
      incrementalOverDecompress: round(c.ms / z2),
      incrementalOverDecompressHash: round(c.ms / h2.ms),
      incrementalOverDecompressOpenssl: round(c.ms / o2.ms),
      firstOverDecompressHash: round(b.ms / h1.ms),
      quickCheckOverDecompress: round(f.ms / z2),
      dirtyIncrementalOverRsync: round(cDirty / Math.max(1, dDirty)),
    };
    const peak = Math.max(
      b.value.peakRssBytes,
      c.value.peakRssBytes,
      e.value.peakRssBytes,
      f.value.peakRssBytes,
    );
    return {
      name,
      rev1: { path: rev1, compressedBytes: statSync(rev1).size },
      rev2: { path: rev2, compressedBytes: statSync(rev2).size },
      volumeBytes,
      a_gnuTarFullMs: a,
      z1_decompressMs: z1,
      z2_decompressMs: z2,
      h1_decompressHashMs: h1.ms,
      h2_decompressHashMs: h2.ms,
      o1_decompressOpensslMs: o1.ms,
      o2_decompressOpensslMs: o2.ms,
      cpuMs: {
        a: aCpu,
        z1: z1cpu.cpuMs,
        z2: z2cpu.cpuMs,
        h1: h1.cpuMs,
        h2: h2.cpuMs,
        o1: o1.cpuMs,
        o2: o2.cpuMs,
        b: b.value.cpuMs ?? 0,
        c: c.value.cpuMs ?? 0,
        e: e.value.cpuMs ?? 0,
        f: f.value.cpuMs ?? 0,
      },
      b_firstApply: { ...b.value, wallMs: b.ms },
      c_incrementalApply: { ...c.value, wallMs: c.ms, dirtyBlocks: cDirty, dirtyMiB: mib(cDirty) },
      d_rsync: { wallMs: d, dirtyBlocks: dDirty, dirtyMiB: mib(dDirty) },
      e_verifyApply: { ...e.value, wallMs: e.ms, dirtyBlocks: eDirty, dirtyMiB: mib(eDirty) },
      f_quickCheckApply: { ...f.value, wallMs: f.ms, dirtyBlocks: fDirty, dirtyMiB: mib(fDirty) },
      ratios,
      goals: {
        firstOverTar: { goal: '(b)/(a) <= 1.0', value: ratios.firstOverTar, met: ratios.firstOverTar <= 1.0 },
        incrementalOverDecompressHash: {
          goal: '(c)/(h2) <= 1.2',
          value: ratios.incrementalOverDecompressHash,
          met: ratios.incrementalOverDecompressHash <= 1.2,
        },
        quickCheckOverDecompress: {
          goal: '(f)/(z2) <= 1.5',
          value: ratios.quickCheckOverDecompress,
          met: ratios.quickCheckOverDecompress <= 1.5,
        },
        dirtyVsRsync: {
          goal: 'dirty(c) <= 0.6 x dirty(d)',
          value: ratios.dirtyIncrementalOverRsync,
          met: ratios.dirtyIncrementalOverRsync <= 0.6,
        },
        peakRss: { goal: 'peak RSS < 256 MiB', value: Math.round(peak / 2 ** 20), met: peak < 256 * 2 ** 20 },
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(manifest, { force: true });
    rmSync(`${manifest}.rev1`, { force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function markdown(results: StreamResult[], notes: string[]): string {
  const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const lines = [
    '# stemcell unpack benchmark',
    '',
    `Machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB RAM, node ${process.version}; ext4 on a loop device, mounted noatime.`,
    '',
    '## Goals beside results',
    '',
    '| stream | goal | result | met |',
    '|---|---|---|---|',
  ];
  for (const r of results) {
    for (const g of Object.values(r.goals)) {
      const unit = g.goal.startsWith('peak') ? ' MiB' : '';
      lines.push(`| ${r.name} | ${g.goal} | ${g.value}${unit} | ${g.met ? '✓' : '✗'} |`);
    }
  }
  lines.push(
    '',
    '## Steps (wall clock)',
    '',
    '| stream | (a) GNU tar | (z1) / (z2) zstd -dc | (h1) / (h2) zstd -dc \\| sha256sum | (o1) / (o2) zstd -dc \\| openssl | (b) first apply | (c) incremental | (d) rsync | (e) verify, no manifest | (f) --trust-mtime |',
    '|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of results) {
    lines.push(
      `| ${r.name} | ${sec(r.a_gnuTarFullMs)} | ${sec(r.z1_decompressMs)} / ${sec(r.z2_decompressMs)} | ${sec(r.h1_decompressHashMs)} / ${sec(r.h2_decompressHashMs)} | ${sec(r.o1_decompressOpensslMs)} / ${sec(r.o2_decompressOpensslMs)} | ${sec(r.b_firstApply.wallMs)} (${sec(r.b_firstApply.durationMs)}) | ${sec(r.c_incrementalApply.wallMs)} (${sec(r.c_incrementalApply.durationMs)}) | ${sec(r.d_rsync.wallMs)} | ${sec(r.e_verifyApply.wallMs)} | ${sec(r.f_quickCheckApply.wallMs)} |`,
    );
  }
  lines.push(
    '',
    '## Ratios (wall clock)',
    '',
    '| stream | (b)/(a) | (c)/(h2) | (c)/(o2) | (c)/(z2) | (f)/(z2) | (b)/(h1) | (c)/(a) | (f)/(a) | dirty (c) / (d) / (e) / (f) | dirty (c)/(d) | peak RSS |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of results) {
    const q = r.ratios;
    lines.push(
      `| ${r.name} | ${q.firstOverTar} | ${q.incrementalOverDecompressHash} | ${q.incrementalOverDecompressOpenssl} | ${q.incrementalOverDecompress} | ${q.quickCheckOverDecompress} | ${q.firstOverDecompressHash} | ${q.incrementalOverTar} | ${q.quickCheckOverTar} | ${r.c_incrementalApply.dirtyMiB} / ${r.d_rsync.dirtyMiB} / ${r.e_verifyApply.dirtyMiB} / ${r.f_quickCheckApply.dirtyMiB} MiB | ${q.dirtyIncrementalOverRsync} | ${r.goals.peakRss?.value} MiB |`,
    );
  }
  lines.push(
    '',
    '## CPU seconds',
    '',
    'User + system of each process tree (tar with its zstd, the applier with its decoder and helpers, the pipes with both ends), steadier than wall clock on a loaded machine:',
    '',
    '| stream | (a) | (z1) | (z2) | (h1) | (h2) | (o1) | (o2) | (b) | (c) | (e) | (f) | (b)/(a) | (c)/(h2) | (c)/(o2) | (f)/(z2) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of results) {
    const c = r.cpuMs;
    const s = (ms: number) => (ms / 1000).toFixed(2);
    const div = (x: number, y: number) => round(x / Math.max(1, y));
    lines.push(
      `| ${r.name} | ${s(c.a)} | ${s(c.z1)} | ${s(c.z2)} | ${s(c.h1)} | ${s(c.h2)} | ${s(c.o1)} | ${s(c.o2)} | ${s(c.b)} | ${s(c.c)} | ${s(c.e)} | ${s(c.f)} | ${div(c.b, c.a)} | ${div(c.c, c.h2)} | ${div(c.c, c.o2)} | ${div(c.f, c.z2)} |`,
    );
  }
  lines.push(
    '',
    `Goals: (b)/(a) ≤ 1.0 (the first apply no slower than GNU tar extracting the same tarball); (c)/(h2) ≤ 1.2 (the content-verified incremental apply within 20 % of decompressing and hashing revision 2 side by side, the floor of any apply that hashes every byte); (f)/(z2) ≤ 1.5 (the --trust-mtime apply, which skips unchanged bodies unhashed, against decompression alone); dirty (c) ≤ 0.6 × dirty (d); peak RSS < 256 MiB. (h) hashes with coreutils' sha256sum, portable C, several times slower than OpenSSL's SHA-NI code the applier uses; (c)/(o2) is the same ratio against that stricter floor, shown for honesty. Times are wall clock of a fresh process each (Node start-up included for the applier, as tar's for tar; in brackets the applier's own time inside that process, which is what a long-running builder pays); the applier's process runs with a warm NODE_COMPILE_CACHE and \`${APPLIER_NODE_FLAGS.join(' ')}\`, as a long-running builder would be.`,
  );
  for (const note of notes) lines.push('', note);
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    log('needs root: it mounts ext4 images on loop devices');
    process.exit(1);
  }
  mkdirSync(RESULTS, { recursive: true });
  mkdirSync(WORK, { recursive: true });
  mkdirSync(CACHE, { recursive: true });
  warmApplier();
  const results: StreamResult[] = [];
  const notes: string[] = [];
  if (!skipSynthetic) {
    const shape = synthShape();
    const r1 = await synthTarball(1, shape);
    const r2 = await synthTarball(2, shape);
    log(`synthetic: ${r1.entries} entries, ${(r1.tarBytes / 2 ** 30).toFixed(2)} GiB uncompressed`);
    const volume = Math.max(512 * 2 ** 20, Math.ceil((r1.tarBytes * 1.6) / 2 ** 20) * 2 ** 20);
    const result = await benchStream('synthetic', r1.path, r2.path, volume);
    result.rev1.entries = r1.entries;
    result.rev1.tarBytes = r1.tarBytes;
    results.push(result);
  }
  if (!skipDebian) {
    const debianModule = join(REPO, 'test/support/debian.ts');
    let tarballs: { rev1: string; rev2: string } | null = null;
    if (!existsSync(debianModule)) {
      notes.push('Debian stream skipped: test/support/debian.ts is not there.');
    } else {
      try {
        const mod = (await import(debianModule)) as {
          ensureDebianTarballs(): Promise<{ rev1: string; rev2: string }>;
        };
        tarballs = await mod.ensureDebianTarballs();
      } catch (err) {
        notes.push(
          `Debian stream skipped: could not build or find the Debian tarballs: ${(err as Error).message}`,
        );
      }
    }
    if (tarballs) {
      const volume = 2 * 2 ** 30;
      results.push(await benchStream('debian', tarballs.rev1, tarballs.rev2, volume));
    }
  }
  for (const note of notes) log(note);
  const json = {
    generatedAt: new Date().toISOString(),
    scale,
    cpus: cpus().length,
    node: process.version,
    results,
    notes,
  };
  mkdirSync(dirname(join(RESULTS, 'unpack.json')), { recursive: true });
  writeFileSync(join(RESULTS, 'unpack.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'unpack.md'), markdown(results, notes));
  process.stdout.write(markdown(results, notes));
}

if (args[0] === '--apply') await applyOnly(args[1]!, args[2]!, args[3] ?? '', args.includes('--trust-mtime'));
else if (args[0] === '--warm') await warmApply();
else await main();
