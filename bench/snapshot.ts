// npm run bench:snapshot — how small is the snapshot of an incremental revision, on a real Debian stream?
//
// Stream A: revision 1 then revision 2 applied incrementally onto the same loop volume (per mkfs variant).
// Stream B, the naive baseline: revision 2 onto a fresh volume (mkfs + full extract).
// For every snapshot: delta (changed 512 KiB blocks), bytes written to the device, and for A's second
// snapshot where the dirtied blocks are in the filesystem (journal, inode tables, bitmaps, data). Steps are
// timed: apply, boot, quiesce, snapshot, register. Writes bench/results/snapshot.{json,md}.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { MKFS_EXT4_ARGS, MOUNT_OPTIONS, openVolume } from '#builder/device.ts';
import { imageName } from '#core/model/naming.ts';
import { BLOCK_SIZE } from '#local/blocks.ts';
import { createLocalEbs } from '#local/ebs.ts';
import { LocalKeyService } from '#local/key-service.ts';
import type { ServiceEventSink } from '#local/service-events.ts';
import type { SnapshotManifest } from '#local/snapshots.ts';
import { ensureDebianRootfs, ensureDebianTarballs } from '#test/support/debian.ts';
import { applyTarball } from '#unpack/index.ts';

const OWNER = '111111111111';
const REGION = 'local-1';
const INSTANCE = 'i-bench';
const VOLUME_GIB = Number(process.env.BENCH_VOLUME_GIB ?? 3);

/** mkfs variants measured for stream A; the first is what stemcell uses. */
const VARIANTS: Record<string, { mkfs: readonly string[]; mount: readonly string[] }> = {
  stemcell: { mkfs: MKFS_EXT4_ARGS, mount: MOUNT_OPTIONS },
  'no journal while building (noload)': { mkfs: MKFS_EXT4_ARGS, mount: [...MOUNT_OPTIONS, 'noload'] },
  'metadata not packed': {
    mkfs: ['-T', 'default', '-b', '4096', '-E', 'lazy_itable_init=0,lazy_journal_init=0', '-J', 'size=16'],
    mount: MOUNT_OPTIONS,
  },
  'mkfs defaults + relatime': { mkfs: ['-T', 'default', '-b', '4096'], mount: [] },
};

type Step = 'apply' | 'boot' | 'quiesce' | 'snapshot' | 'register';
interface RevisionResult {
  revision: string;
  fresh: boolean;
  stepMs: Record<Step, number>;
  deltaBytes: number;
  writtenBytes: number | undefined;
  storedBytes: number;
  nonZeroBytes: number;
  snapshotSyncMs: number | undefined;
  apply: { filesWritten: number; bytesWritten: number; removed: number; metadataUpdates: number };
}

const silentSink: ServiceEventSink = { emit: () => {} };
const root = `/var/tmp/stemcell-bench-snapshot-${process.pid}`;
const mib = (b: number | undefined) => (b === undefined ? '–' : (b / 2 ** 20).toFixed(1));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:snapshot needs root (loop devices, mount, mkfs)');
  const tarballs = await ensureDebianTarballs();
  const trees = await ensureDebianRootfs();
  const changed = changedContent(trees.rev1Dir, trees.rev2Dir);
  process.stderr.write(`changed content rev1→rev2: ${mib(changed.bytes)} MiB in ${changed.files} files\n`);

  mkdirSync(root, { recursive: true });
  const keys = new LocalKeyService(root, { accountId: OWNER, region: REGION });
  const { keyId } = keys.createKey({ alias: 'alias/stemcell' });
  const dir = join(root, 'ebs');
  const { volumes, snapshots, images } = createLocalEbs({
    dir,
    region: REGION,
    accountId: OWNER,
    keys,
    events: silentSink,
    backend: 'block',
  });

  const buildStream = async (
    stream: string,
    revisions: Array<{ revision: string; tarball: string }>,
    variant: { mkfs: readonly string[]; mount: readonly string[] },
  ): Promise<{
    volumeId: string;
    results: RevisionResult[];
    manifests: SnapshotManifest[];
    rootStart: number;
  }> => {
    const volume = await volumes.create({
      stream,
      availabilityZone: `${REGION}a`,
      sizeGiB: VOLUME_GIB,
      kmsKeyId: keyId,
      tags: {},
      clientToken: stream,
    });
    const manifestPath = join(root, 'manifests', `${volume.volumeId}.json`);
    mkdirSync(join(root, 'manifests'), { recursive: true });
    const results: RevisionResult[] = [];
    const manifests: SnapshotManifest[] = [];
    let rootStart = 0;
    for (const [i, { revision, tarball }] of revisions.entries()) {
      const stepMs: Record<Step, number> = { apply: 0, boot: 0, quiesce: 0, snapshot: 0, register: 0 };
      const timed = async <T>(step: Step, work: () => Promise<T>): Promise<T> => {
        const t0 = performance.now();
        try {
          return await work();
        } finally {
          stepMs[step] += performance.now() - t0;
        }
      };
      const attachment = await volumes.attach(volume.volumeId, INSTANCE);
      let fresh = false;
      let apply: RevisionResult['apply'];
      try {
        if (attachment.kind !== 'block') throw new Error('bench needs block volumes');
        const opened = await openVolume(attachment.devicePath, {
          bootMode: 'legacy-bios',
          mountPoint: join(root, 'mnt', volume.volumeId),
          mkfsArgs: variant.mkfs,
          mountOptions: variant.mount,
          log: () => {},
        });
        try {
          fresh = opened.fresh;
          rootStart = opened.layout?.root.start ?? 0;
          const stats = await timed('apply', () =>
            applyTarball(createReadStream(tarball), opened.root, { manifestPath }),
          );
          apply = {
            filesWritten: stats.filesWritten,
            bytesWritten: stats.bytesWritten,
            removed: stats.removed,
            metadataUpdates: stats.metadataUpdates,
          };
          await timed('boot', () =>
            opened.makeBootable({ stream, revision, sequence: i + 1, sha256: stats.inputSha256 }),
          );
          await timed('quiesce', () => opened.quiesce());
        } finally {
          await opened.close();
        }
      } finally {
        await volumes.detach(volume.volumeId, INSTANCE);
      }
      const snap = await timed('snapshot', () =>
        snapshots.create(volume.volumeId, {
          description: revision,
          tags: {},
          clientToken: `${stream}:${revision}`,
        }),
      );
      await timed('register', () =>
        images.register({
          name: imageName(stream, revision),
          description: revision,
          snapshotId: snap.snapshotId,
          architecture: 'x86_64',
          bootMode: 'legacy-bios',
          rootDeviceName: '/dev/xvda',
          tags: {},
          clientToken: `${stream}:${revision}`,
        }),
      );
      const manifest = snapshots.manifest(snap.snapshotId);
      if (!manifest) throw new Error(`snapshot ${snap.snapshotId} has no manifest`);
      manifests.push(manifest);
      results.push({
        revision,
        fresh,
        stepMs: Object.fromEntries(Object.entries(stepMs).map(([k, v]) => [k, Math.round(v)])) as Record<
          Step,
          number
        >,
        deltaBytes: manifest.deltaBytes,
        writtenBytes: manifest.writtenBytes,
        storedBytes: manifest.storedBytes,
        nonZeroBytes: manifest.nonZeroBlocks * BLOCK_SIZE,
        snapshotSyncMs: manifest.syncMs,
        apply: apply!,
      });
      process.stderr.write(
        `${stream} rev ${revision}: delta ${mib(manifest.deltaBytes)} MiB, written ${mib(manifest.writtenBytes)} MiB, ` +
          `steps ${JSON.stringify(results.at(-1)?.stepMs)}\n`,
      );
    }
    return { volumeId: volume.volumeId, results, manifests, rootStart };
  };

  const streamA: Record<string, { results: RevisionResult[]; breakdown: Record<string, number> }> = {};
  for (const [name, variant] of Object.entries(VARIANTS)) {
    const a = await buildStream(
      `a-${name.replace(/[^a-z0-9]/g, '')}`,
      [
        { revision: '1', tarball: tarballs.rev1 },
        { revision: '2', tarball: tarballs.rev2 },
      ],
      variant,
    );
    const [m1, m2] = a.manifests;
    const breakdown =
      m1 && m2 ? await dirtyBreakdown(volumes.imagePath(a.volumeId), a.rootStart, m1, m2) : {};
    streamA[name] = { results: a.results, breakdown };
    await volumes.delete(a.volumeId);
  }
  const naive = await buildStream('b-naive', [{ revision: '2', tarball: tarballs.rev2 }], VARIANTS.stemcell!);
  await volumes.delete(naive.volumeId);

  const naiveDelta = naive.results[0]?.deltaBytes ?? 0;
  const variants = Object.fromEntries(
    Object.entries(streamA).map(([name, a]) => {
      const rev2 = a.results[1];
      return [
        name,
        {
          ...a,
          rev2DeltaOverNaive: rev2 ? rev2.deltaBytes / naiveDelta : undefined,
          rev2DeltaOverChangedContent: rev2 ? rev2.deltaBytes / changed.bytes : undefined,
          rev2WrittenOverChangedContent: rev2?.writtenBytes ? rev2.writtenBytes / changed.bytes : undefined,
        },
      ];
    }),
  );
  const report = {
    benchmark: 'snapshot',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      memGiB: Math.round(totalmem() / 2 ** 30),
      kernel: execFileSync('uname', ['-r']).toString().trim(),
    },
    volumeGiB: VOLUME_GIB,
    blockSize: BLOCK_SIZE,
    stream: 'debian (test/support/debian.ts): rev2 = rev1 + less, curl, file − nano',
    changedContent: changed,
    naive: { results: naive.results },
    streamA: variants,
    goals: {
      'incremental delta / naive delta': { goal: '≤ 0.05', value: variants.stemcell?.rev2DeltaOverNaive },
      'dirtied blocks / changed content': {
        goal: '≤ 1.5',
        value: variants.stemcell?.rev2DeltaOverChangedContent,
      },
    },
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/snapshot.json', `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync('bench/results/snapshot.md', markdown(report, variants, naive.results[0]));
  process.stdout.write(markdown(report, variants, naive.results[0]));
}

/** Regular files of rev2 that rev1 lacks or holds with other content, rounded up to 4 KiB blocks. */
function changedContent(rev1: string, rev2: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const hash = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        const before = join(rev1, relative(rev2, path));
        let same = false;
        try {
          const old = lstatSync(before);
          same = old.isFile() && old.size === st.size && hash(before) === hash(path);
        } catch {}
        if (!same) {
          bytes += Math.ceil(st.size / 4096) * 4096;
          files++;
        }
      }
    }
  };
  walk(rev2);
  return { bytes, files };
}

/**
 * Where rev2's changed 512 KiB blocks lie: before the root partition (GPT, boot code), in the journal,
 * inode tables, bitmaps / group descriptors, or elsewhere (file data, directories, extent blocks).
 */
async function dirtyBreakdown(
  image: string,
  rootStartSector: number,
  m1: SnapshotManifest,
  m2: SnapshotManifest,
): Promise<Record<string, number>> {
  const loop = execFileSync('losetup', [
    '--find',
    '--show',
    '--read-only',
    '--offset',
    String(rootStartSector * 512),
    image,
  ])
    .toString()
    .trim();
  const ranges: Array<{ kind: string; from: number; to: number }> = [];
  try {
    const dump = execFileSync('dumpe2fs', [loop], {
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 256 * 2 ** 20,
    }).toString();
    const blockSize = Number(/^Block size:\s+(\d+)/m.exec(dump)?.[1] ?? 4096);
    const add = (kind: string, a: string, b?: string) =>
      ranges.push({ kind, from: Number(a), to: Number(b ?? a) });
    for (const m of dump.matchAll(/Inode table at (\d+)-(\d+)/g)) add('inode tables', m[1]!, m[2]!);
    for (const m of dump.matchAll(/(?:Block|Inode) bitmap at (\d+)(?:-(\d+))?/g)) add('bitmaps', m[1]!, m[2]);
    for (const m of dump.matchAll(/superblock at (\d+), Group descriptors at (\d+)-(\d+)/g))
      add('superblock+gdt', m[1]!, m[3]!);
    const bmap = execFileSync('debugfs', ['-R', 'bmap <8> 0', loop], {
      stdio: ['ignore', 'pipe', 'ignore'],
    }).toString();
    const journalBlocks = Number(/^Total journal blocks:\s+(\d+)/m.exec(dump)?.[1] ?? 0);
    const start = Number(bmap.trim());
    if (journalBlocks && start) ranges.push({ kind: 'journal', from: start, to: start + journalBlocks - 1 });
    const out: Record<string, number> = {};
    const partStart = rootStartSector * 512;
    for (let i = 0; i < Math.max(m1.blocks.length, m2.blocks.length); i++) {
      if ((m1.blocks[i] ?? null) === (m2.blocks[i] ?? null)) continue;
      const byteFrom = i * BLOCK_SIZE - partStart;
      let kind = 'data+directories';
      if (byteFrom < 0) kind = 'boot area';
      else {
        const fsFrom = Math.floor(byteFrom / blockSize);
        const fsTo = Math.floor((byteFrom + BLOCK_SIZE - 1) / blockSize);
        const hit = ['journal', 'inode tables', 'bitmaps', 'superblock+gdt'].find((k) =>
          ranges.some((r) => r.kind === k && r.from <= fsTo && r.to >= fsFrom),
        );
        if (hit) kind = hit;
      }
      out[kind] = (out[kind] ?? 0) + BLOCK_SIZE;
    }
    return out;
  } finally {
    execFileSync('losetup', ['--detach', loop]);
  }
}

function markdown(
  report: { date: string; changedContent: { bytes: number; files: number }; volumeGiB: number },
  variants: Record<
    string,
    {
      results: RevisionResult[];
      breakdown: Record<string, number>;
      rev2DeltaOverNaive?: number | undefined;
      rev2DeltaOverChangedContent?: number | undefined;
    }
  >,
  naive: RevisionResult | undefined,
): string {
  const ratio = (x: number | undefined) =>
    x === undefined ? '–' : x < 1 ? `1/${(1 / x).toFixed(1)}` : `${x.toFixed(2)}×`;
  const lines = [
    `# Snapshot benchmark (${report.date})`,
    '',
    `Debian stream, ${report.volumeGiB} GiB volume, 512 KiB blocks. Changed content rev1→rev2: ` +
      `${mib(report.changedContent.bytes)} MiB in ${report.changedContent.files} files. ` +
      `Naive baseline (rev2 onto a fresh volume): delta ${mib(naive?.deltaBytes)} MiB, written ${mib(naive?.writtenBytes)} MiB.`,
    '',
    '| stream A variant | rev1 delta MiB | rev2 delta MiB | rev2 written MiB | rev2 delta ÷ naive | rev2 delta ÷ changed content | apply ms | boot ms | quiesce ms | snapshot ms | register ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, v] of Object.entries(variants)) {
    const [r1, r2] = v.results;
    lines.push(
      `| ${name} | ${mib(r1?.deltaBytes)} | ${mib(r2?.deltaBytes)} | ${mib(r2?.writtenBytes)} | ${ratio(v.rev2DeltaOverNaive)} | ` +
        `${ratio(v.rev2DeltaOverChangedContent)} | ${r2?.stepMs.apply} | ${r2?.stepMs.boot} | ${r2?.stepMs.quiesce} | ` +
        `${r2?.stepMs.snapshot} | ${r2?.stepMs.register} |`,
    );
  }
  lines.push('', '| variant | where rev2 dirtied blocks (MiB) |', '|---|---|');
  for (const [name, v] of Object.entries(variants)) {
    lines.push(
      `| ${name} | ${Object.entries(v.breakdown)
        .map(([k, b]) => `${k} ${mib(b)}`)
        .join(', ')} |`,
    );
  }
  if (naive)
    lines.push(
      '',
      `Naive rev2 steps (ms): ${Object.entries(naive.stepMs)
        .map(([k, ms]) => `${k} ${ms}`)
        .join(', ')}.`,
      '',
    );
  return `${lines.join('\n')}\n`;
}

try {
  await main();
} finally {
  // Loop devices are detached by the volume code; the state directory goes with the run.
  for (const line of execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'])
    .toString()
    .split('\n')) {
    const [name, file] = line.trim().split(/\s+/);
    if (name && file?.startsWith(root)) execFileSync('losetup', ['--detach', name]);
  }
  rmSync(root, { recursive: true, force: true });
}
