// npm run bench:aws-model — tarball → "Image Ready" in one region, on AWS, for a 3 GiB image with 2 GiB of content
// and a 30 MiB change, with direct-API snapshots (the default) and with CreateSnapshot (the fallback).
//
// What runs on the builder is measured here, in this run, by the builder's own code (runBuild over a 3 GiB disk
// image on a loop device): decompressing the revision, applying it, the boot step, quiesce, and finding the
// changed blocks (the fast way; the simple way is timed beside it). What AWS does is taken from published
// figures, each cited where it is used (AWS_FIGURES). Where nothing is published the figure says "assumption"
// and why; the model prints what moves when it is off. Needs root (loop devices, mount, mkfs).
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { DeviceWorkspace } from '#builder/device.ts';
import { scanBlocks } from '#builder/snapshot/scan.ts';
import { type BuilderDeps, runBuild } from '#builder/worker.ts';
import type { BuildJob } from '#events/aws.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import { LocalVolumes } from '#local/volumes.ts';
import type { BlockSnapshots, SnapshotInfo } from '#ports';
import { DEBIAN_CACHE_ROOT } from '#test/support/debian.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const VOLUME_GIB = 3;
const CHANGE_MIB = 30;
const root = `/var/tmp/stemcell-bench-aws-model-${process.pid}`;
const log = (line: string) => process.stderr.write(`${line}\n`);

/**
 * AWS's steps, p50 seconds, with where each figure comes from. "assumption" marks a figure nothing published
 * gives; the sensitivity lines at the end show what it moves.
 */
export const AWS_FIGURES = {
  lambdaColdStart: {
    s: 1.0,
    source:
      'AWS Compute Blog, "Operating Lambda: Performance optimization – Part 1": cold starts "from under 100 ms to over 1 second" (the upper end taken)',
  },
  eventBridgeHop: {
    s: 0.08,
    source:
      'AWS Architecture Blog, "Mastering millisecond latency and millions of events… Amazon Key Suite" (2026-02-04): 80 ms p90 end to end on EventBridge',
  },
  sqsReceive: {
    s: 0.1,
    source:
      'assumption: SQS long polling "returns messages as soon as they become available" (Amazon SQS Developer Guide, short and long polling); one API round trip',
  },
  s3StreamMBps: {
    value: 100,
    source:
      'assumption: one GetObject stream in-region; no per-stream figure is published (S3 performance whitepaper recommends parallel byte-range GETs of 8–16 MB to go beyond one stream)',
  },
  ebsApiCall: {
    s: 0.1,
    source:
      'AWS EBS User Guide, "Optimize performance for EBS direct APIs": "Assuming PutSnapshotBlock latency is 100ms"',
  },
  putsPerSecondPerSnapshot: {
    value: 1000,
    source:
      'same page: 100 connections × 10 requests/s = 1,000 PutSnapshotBlock per second; EBS direct APIs quotas',
  },
  sealToCompleted: {
    s: 2.0,
    source:
      'assumption: not published; awslabs/coldsnap src/wait.rs polls DescribeSnapshots every 2 s for `completed`, so one poll interval is taken',
  },
  createSnapshot: {
    s: 120,
    source:
      'reports, not an SLA ("no way to predict snapshot creation time"): ~180 s for small snapshots in aws/aws-sdk-ruby#978; 50 s–3 min with tails past 10 min in stemcell issue 23; 120 s taken as p50',
  },
  attachDetach: {
    s: 10,
    source:
      'assumption: AttachVolume + DetachVolume of the stream volume, ~5 s each (the EC2 waiters poll every 15 s by default; not published)',
  },
  registerToAvailable: {
    s: 10,
    source:
      'assumption: not published; Bottlerocket pubsys (bottlerocket#1066) finds most AMIs on its first describe, and twoliter#582 reports tails past 10 minutes',
  },
  instanceBoot: {
    s: 1.5 + 4.9 + 17.2,
    source:
      'daemonology.net, "EC2 boot time benchmarking" (2021), Linux AMIs on c5.xlarge, medians: RunInstances 1.5 s, pending→running 4.9 s, running→network up 17.2 s',
  },
  bootCheckPoll: {
    s: 30,
    source:
      "stemcell's own boot-check queue: VisibilityTimeout 30 s (serverless.yml BootCheckQueue), the poll interval",
  },
} as const;

// ---------------------------------------------------------------- the synthetic stream

interface Spec {
  files: Array<{ path: string; size: number; version: number }>;
}

/** 2 GiB of content in about 37,000 files; revision 2 rewrites 30 MiB of it, adds and removes a few. */
function spec(revision: 1 | 2): Spec {
  const files: Spec['files'] = [];
  const add = (n: number, size: number, dir: string) => {
    for (let i = 0; i < n; i++)
      files.push({ path: `${dir}/f${String(i).padStart(6, '0')}`, size, version: 1 });
  };
  add(600, 2 * MiB, 'usr/lib/big');
  add(6000, 96 * 1024, 'usr/lib/mid');
  add(30000, 10 * 1024, 'usr/share/small');
  files.push({ path: 'boot/vmlinuz-6.1.0-99-model', size: 8 * MiB, version: 1 });
  files.push({ path: 'boot/initrd.img-6.1.0-99-model', size: 16 * MiB, version: 1 });
  if (revision === 2) {
    // 10 × 2 MiB + 100 × 96 KiB + 60 × 10 KiB ≈ 30 MiB rewritten; 5 files added, 5 removed.
    for (const f of files) {
      const i = Number(f.path.slice(-6));
      if ((f.path.includes('/big/') && i % 60 === 7) || (f.path.includes('/mid/') && i % 60 === 7))
        f.version = 2;
      if (f.path.includes('/small/') && i % 500 === 7) f.version = 2;
    }
    for (let i = 0; i < 5; i++) files.push({ path: `usr/lib/added/a${i}`, size: 64 * 1024, version: 2 });
    return {
      files: files.filter((f) => !(f.path.includes('/small/') && Number(f.path.slice(-6)) % 6000 === 1)),
    };
  }
  return { files };
}

/** Deterministic bytes: half incompressible, half repetitive, so zstd gets about 2:1. */
function content(path: string, version: number, size: number, pool: Buffer): Buffer {
  let h = 2166136261;
  for (const c of `${path}:${version}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  const out = Buffer.allocUnsafe(size);
  for (let off = 0; off < size; off += 4096) {
    h = Math.imul(h ^ off, 16777619) >>> 0;
    const len = Math.min(4096, size - off);
    if (h % 2 === 0) pool.copy(out, off, h % (pool.length - 4096), (h % (pool.length - 4096)) + len);
    else out.fill(`${path} ${version} `, off, off + len);
  }
  return out;
}

async function tarball(revision: 1 | 2, out: string): Promise<void> {
  if (existsSync(out)) return;
  mkdirSync(join(out, '..'), { recursive: true });
  log(`aws-model: writing the synthetic revision ${revision} (2 GiB of content) to ${out}`);
  const pool = Buffer.alloc(64 * MiB);
  let x = 0x9e3779b9;
  for (let i = 0; i < pool.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    pool.writeUInt32LE(x >>> 0, i);
  }
  const tmp = `${out}.tmp`;
  const zstd = spawn('zstd', ['-q', '-f', '-T2', '-3', '-o', tmp], { stdio: ['pipe', 'inherit', 'inherit'] });
  const done = new Promise<void>((resolve, reject) =>
    zstd.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`zstd exit ${code}`)))),
  );
  const p = pack();
  p.pipe(zstd.stdin);
  const dirs = new Set<string>();
  const entry = (header: Parameters<typeof p.entry>[0], body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body) p.entry(header, body, done);
      else p.entry(header, done);
    });
  for (const d of ['boot', 'etc', 'usr', 'usr/lib', 'usr/share']) dirs.add(d);
  for (const f of spec(revision).files) dirs.add(f.path.slice(0, f.path.lastIndexOf('/')));
  for (const d of [...dirs].sort())
    await entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: new Date(0) });
  await entry({ name: 'etc/hostname', mode: 0o644, mtime: new Date(0) }, Buffer.from('model\n'));
  for (const f of spec(revision).files)
    await entry(
      { name: f.path, mode: 0o644, mtime: new Date(f.version * 1000) },
      content(f.path, f.version, f.size, pool),
    );
  p.finalize();
  await done;
  renameSync(tmp, out);
}

// ---------------------------------------------------------------- the builder, measured

/** A snapshot store that keeps nothing: the builder's steps are measured, AWS's puts are modelled. */
class NullSnapshots implements BlockSnapshots {
  readonly #done = new Set<string>();
  #n = 0;
  puts = 0;
  async create(): Promise<SnapshotInfo> {
    throw new Error('not used');
  }
  async get(id: string): Promise<SnapshotInfo | undefined> {
    return this.#done.has(id)
      ? { snapshotId: id, volumeId: 'vol-ffffffff', state: 'completed', tags: {}, kmsKeyId: 'k' }
      : undefined;
  }
  async delete(): Promise<void> {}
  async findByTags(): Promise<SnapshotInfo[]> {
    return [];
  }
  async start() {
    return { snapshotId: `snap-${String(++this.#n).padStart(17, '0')}`, blockSize: 512 * 1024 };
  }
  async putBlock(): Promise<void> {
    this.puts++;
  }
  async complete(id: string) {
    this.#done.add(id);
    return 'completed' as const;
  }
  async *listBlocks() {}
  async getBlock(): Promise<{ data: Buffer; checksum: string }> {
    throw new Error('not used');
  }
}

async function measure(tarballs: { r1: string; r2: string }) {
  mkdirSync(root, { recursive: true });
  const volumes = new LocalVolumes({ dir: join(root, 'ebs'), region: 'eu-west-1', backend: 'block' });
  const releases = new LocalReleaseStore(join(root, 'releases'));
  const snapshots = new NullSnapshots();
  const deps: BuilderDeps = {
    region: 'eu-west-1',
    availabilityZone: 'eu-west-1a',
    instanceId: 'i-model',
    kmsKeyId: 'alias/stemcell',
    objects: {
      bucket: 'b',
      // The key is the tarball's path: a local stream stands for S3's (whose rate the model adds).
      get: async (key: string) => ({ body: createReadStream(key) }),
    } as unknown as BuilderDeps['objects'],
    volumes,
    snapshots,
    releases,
    publisher: { publish: async () => {} },
    workspace: new DeviceWorkspace({ mountRoot: join(root, 'mnt'), log: () => {} }),
    manifestPath: (v) => join(root, `${v}.manifest.json`),
    clock: { now: () => new Date() },
    directSnapshots: { concurrency: 64 },
  };
  const job = async (revision: string, key: string): Promise<BuildJob> => {
    const source = { bucket: 'b', key, etag: revision };
    const { release } = await releases.create({
      stream: 'model',
      revision,
      source,
      regions: ['eu-west-1'],
      uploadedAt: new Date().toISOString(),
    });
    return {
      version: 1,
      releaseId: release.releaseId,
      stream: 'model',
      revision,
      sequence: release.sequence,
      region: 'eu-west-1',
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      volumeSizeGiB: VOLUME_GIB,
      snapshots: 'direct',
      source,
    };
  };
  log('aws-model: revision 1 (2 GiB written, a first snapshot)');
  const one = await runBuild(deps, await job('r1', tarballs.r1));
  if (one.kind !== 'built' || !one.direct) throw new Error('revision 1 not built');
  log('aws-model: revision 2 (the 30 MiB change)');
  const two = await runBuild(deps, await job('r2', tarballs.r2));
  if (two.kind !== 'built' || !two.direct) throw new Error('revision 2 not built');
  const [volume] = volumes.list();
  // The simple way, timed on the same disk after the fact (the disk's state partition changed since; the
  // figure is the time to hash every block).
  const t0 = performance.now();
  const full = scanBlocks(volumes.imagePath(volume?.volumeId as string), {
    sizeBytes: VOLUME_GIB * GiB,
    parent: one.direct.scan.digests,
  });
  for await (const _ of full.changes) {
    // the report is what is wanted
  }
  const fullMs = performance.now() - t0;
  // Decompression alone, the floor of any apply of this tarball.
  const d0 = performance.now();
  execFileSync('sh', ['-c', `zstd -dc '${tarballs.r2}' > /dev/null`]);
  const decompressMs = performance.now() - d0;
  const s = two.stepMs;
  return {
    decompressMs,
    applyMs: s['download+apply'],
    bootMs: s.boot,
    quiesceMs: s.quiesce,
    findMs: (two.direct.candidates?.ms ?? 0) + two.direct.scan.ms,
    detection: two.direct.detection,
    fullScanMs: fullMs,
    blocks: two.direct.result.changedBlocks,
    firstBlocks: one.direct.result.changedBlocks,
    tarballBytes: statSync(tarballs.r2).size,
  };
}

// ---------------------------------------------------------------- the model

function putSeconds(blocks: number, concurrency: number): number {
  const f = AWS_FIGURES;
  const rounds = Math.ceil(blocks / Math.max(1, concurrency));
  return Math.max(rounds * f.ebsApiCall.s, blocks / f.putsPerSecondPerSnapshot.value);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:aws-model needs root (loop devices, mount, mkfs)');
  const cache = join(DEBIAN_CACHE_ROOT, 'aws-model-v1');
  const tarballs = { r1: join(cache, 'r1.tar.zst'), r2: join(cache, 'r2.tar.zst') };
  await tarball(1, tarballs.r1);
  await tarball(2, tarballs.r2);
  const m = await measure(tarballs);
  const f = AWS_FIGURES;
  const s = (ms: number) => ms / 1000;
  const download = m.tarballBytes / (f.s3StreamMBps.value * 1e6);
  // The builder streams S3 into the decoder and the applier: the slower of the two sets the pace.
  const applied = Math.max(download, s(m.applyMs));
  const builder = applied + s(m.bootMs) + s(m.quiesceMs);
  const front = f.lambdaColdStart.s + f.eventBridgeHop.s + f.sqsReceive.s;
  // How register hears of the snapshot: the builder's PutEvents "Snapshot Completed" on the central bus (direct),
  // or EBS's notification forwarded from the region's default bus (create-snapshot).
  const notifyDirect = f.ebsApiCall.s + f.eventBridgeHop.s;
  const notifyCreate = f.eventBridgeHop.s * 2;
  const registerAndAfter =
    f.lambdaColdStart.s + // register
    f.ebsApiCall.s + // RegisterImage
    f.registerToAvailable.s +
    f.eventBridgeHop.s * 2 + // "AMI State Change" → central bus → announce
    f.lambdaColdStart.s + // announce (→ boot-check queue)
    Math.max(f.instanceBoot.s, f.bootCheckPoll.s) + // the marker is seen at the boot check's next look
    f.lambdaColdStart.s + // boot-check: share, PutEvents "Image Ready"
    f.eventBridgeHop.s;
  const direct = {
    front,
    builder,
    find: s(m.findMs),
    start: f.ebsApiCall.s,
    puts: putSeconds(m.blocks, 64),
    seal: f.ebsApiCall.s + f.sealToCompleted.s,
    after: notifyDirect + registerAndAfter,
  };
  const createSnapshot = {
    front,
    attach: f.attachDetach.s,
    builder,
    snapshot: f.createSnapshot.s,
    after: notifyCreate + registerAndAfter,
  };
  const total = (o: Record<string, number>) => Object.values(o).reduce((a, x) => a + x, 0);
  const fmt = (x: number) => x.toFixed(1);
  const lines = [
    `# AWS model: tarball → Image Ready, one region (${new Date().toISOString()}, ${cpus().length} cores)`,
    '',
    `Image ${VOLUME_GIB} GiB, 2 GiB of content, a ${CHANGE_MIB} MiB change (${m.blocks} blocks of 512 KiB to put; revision 1 put ${m.firstBlocks}).`,
    '',
    'Measured here, this run (runBuild on a loop-device disk image):',
    `- decompress the revision alone: ${fmt(s(m.decompressMs))} s (tarball ${(m.tarballBytes / MiB).toFixed(0)} MiB)`,
    `- download+apply: ${fmt(s(m.applyMs))} s; boot step ${fmt(s(m.bootMs))} s; quiesce+verify ${fmt(s(m.quiesceMs))} s`,
    `- find the changed blocks, ${m.detection} way: ${fmt(s(m.findMs))} s (simple way, every block hashed: ${fmt(s(m.fullScanMs))} s)`,
    '',
    '| step | direct s | create-snapshot s |',
    '|---|---|---|',
    `| ingest λ + queue | ${fmt(direct.front)} | ${fmt(createSnapshot.front)} |`,
    `| attach/detach the EBS volume | – | ${fmt(createSnapshot.attach)} |`,
    `| download (S3, ${f.s3StreamMBps.value} MB/s) ∥ decompress+apply, boot, quiesce | ${fmt(direct.builder)} | ${fmt(createSnapshot.builder)} |`,
    `| find changed blocks | ${fmt(direct.find)} | – |`,
    `| StartSnapshot / ${m.blocks} puts at 64 in flight / seal | ${fmt(direct.start)} / ${fmt(direct.puts)} / ${fmt(direct.seal)} | – |`,
    `| CreateSnapshot → completed | – | ${fmt(createSnapshot.snapshot)} |`,
    `| register, available, boot check, Image Ready | ${fmt(direct.after)} | ${fmt(createSnapshot.after)} |`,
    `| **total** | **${fmt(total(direct))}** | **${fmt(total(createSnapshot))}** |`,
    '',
    'Puts in flight vs time for this change and for a first snapshot (model: 100 ms per put, 1,000 puts/s per snapshot):',
    `| in flight | ${[1, 4, 16, 64, 100, 128].join(' | ')} |`,
    `|---|${[1, 4, 16, 64, 100, 128].map(() => '---').join('|')}|`,
    `| ${m.blocks} blocks, s | ${[1, 4, 16, 64, 100, 128].map((c) => fmt(putSeconds(m.blocks, c))).join(' | ')} |`,
    `| ${m.firstBlocks} blocks, s | ${[1, 4, 16, 64, 100, 128].map((c) => fmt(putSeconds(m.firstBlocks, c))).join(' | ')} |`,
    '',
    'Sensitivity (direct): S3 at 50 MB/s → ' +
      `${fmt(total({ ...direct, builder: Math.max(m.tarballBytes / 50e6, s(m.applyMs)) + s(m.bootMs) + s(m.quiesceMs) }))} s; ` +
      `seal 10 s → ${fmt(total(direct) + 8)} s; AMI available after 60 s → ${fmt(total(direct) + 50)} s; ` +
      `the early "does not exist" window at its ~2 min worst (coldsnap) → ${fmt(total(direct) + 132)} s.`,
    '',
    'Sources:',
    ...Object.entries(f).map(([k, v]) => `- ${k}: ${v.source}`),
    '',
    `aws model: direct p50 ${Math.round(total(direct))} s, create-snapshot p50 ${Math.round(total(createSnapshot))} s`,
  ];
  mkdirSync('bench/results', { recursive: true });
  execFileSync('sh', ['-c', 'cat > bench/results/aws-model.md'], { input: `${lines.join('\n')}\n` });
  process.stdout.write(`${lines.join('\n')}\n`);
}

try {
  await main();
} finally {
  for (const line of execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])
    .toString()
    .split('\n')) {
    const [name, file] = line.trim().split(/\s+/);
    if (name && file?.startsWith(root)) execFileSync('losetup', ['--detach', name]);
  }
  rmSync(root, { recursive: true, force: true });
}
