// bench:snapshot's direct-API part: the Debian stream built by the builder's own code (runBuild, `direct`, the
// local snapshot store) for revision 1 and then revision 2, and three figures for revision 2, each beside its goal:
// - bytes put (blocks × 512 KiB) ÷ bytes of file content that changed between the revisions (≤ 1.5);
// - bytes read to find the changed blocks ÷ volume size, the fast way (≤ 0.2); the simple way (every block
//   hashed) is run on the same disk, timed, and must find the same blocks;
// - the builder's own time, from the start of the apply to the last put, ÷ GNU tar extracting revision 2 onto a
//   fresh filesystem of the same size, in the same run.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MKFS_EXT4_ARGS } from '#builder/device.ts';
import { BLOCK_SIZE, DIGEST_BYTES } from '#builder/snapshot/digests.ts';
import { inodeBlocks, metadataRanges } from '#builder/snapshot/ext4-candidates.ts';
import { scanBlocks } from '#builder/snapshot/scan.ts';
import { readLayout, SECTOR } from '#builder/volume/gpt.ts';
import { runBuild } from '#builder/worker.ts';
import { directBuilder, directJob } from '#test/support/direct-builder.ts';

const GiB = 2 ** 30;

export interface DirectFigures {
  volumeGiB: number;
  rev1: { putBlocks: number; ms: number };
  rev2: {
    detection: string;
    putBlocks: number;
    bytesPut: number;
    bytesPutOverChangedContent: number;
    fast: { bytesRead: number; readOverVolume: number; candidatesMs: number; scanMs: number };
    full: { bytesRead: number; readOverVolume: number; ms: number; sameBlocks: boolean };
    /** Where the blocks put lie, MiB by area. */
    putWhere: Record<string, number>;
    /** Apply start → last put, ms, and its parts. */
    builderMs: number;
    parts: Record<string, number>;
    gnuTarMs: number;
    builderOverGnuTar: number;
  };
}

export async function directBench(opts: {
  root: string;
  tarballs: { rev1: string; rev2: string };
  changedContentBytes: number;
  volumeGiB: number;
  log: (line: string) => void;
}): Promise<DirectFigures> {
  const root = join(opts.root, 'direct');
  mkdirSync(join(root, 'objects', 'streams', 'debian'), { recursive: true });
  copyFileSync(opts.tarballs.rev1, join(root, 'objects', 'streams', 'debian', 'r1.tar.zst'));
  copyFileSync(opts.tarballs.rev2, join(root, 'objects', 'streams', 'debian', 'r2.tar.zst'));
  const b = directBuilder({ root, instanceId: 'i-bench', concurrency: 64 });
  const build = async (revision: string) => {
    const job = await directJob(
      b.releases,
      'debian',
      revision,
      `streams/debian/${revision}.tar.zst`,
      'legacy-bios',
      'x86_64',
      opts.volumeGiB,
    );
    const t0 = performance.now();
    const outcome = await runBuild(b.deps, job);
    if (outcome.kind !== 'built' || !outcome.direct)
      throw new Error(`${revision}: not built with the direct APIs`);
    return { outcome, direct: outcome.direct, ms: performance.now() - t0 };
  };
  opts.log('direct: revision 1 (a first snapshot: every block with data)');
  const one = await build('r1');
  opts.log('direct: revision 2 (incremental, the fast way)');
  const two = await build('r2');
  const d = two.direct;
  const size = d.sizeBytes;

  // The simple way on the same disk (the image as it was when the snapshot completed), from the same parent.
  const copy = b.copies.get(d.result.snapshotId);
  if (!copy) throw new Error('no copy of the disk at completion');
  const fullStarted = performance.now();
  const full = scanBlocks(copy, { sizeBytes: size, parent: one.direct.scan.digests });
  for await (const _ of full.changes) {
    // only the report is wanted
  }
  const fullMs = performance.now() - fullStarted;
  const fullReport = full.report();
  const sameBlocks = fullReport.digests.equals(d.scan.digests);
  const putWhere = await whereChanged(copy, one.direct.scan.digests, d.scan.digests);

  // GNU tar extracting revision 2 onto a fresh ext4 of the same size, made as the builder makes its root.
  const image = join(root, 'gnu-tar.img');
  const mnt = join(root, 'gnu-tar.mnt');
  execFileSync('truncate', ['-s', String(opts.volumeGiB * GiB), image]);
  execFileSync('mkfs.ext4', ['-F', '-q', ...MKFS_EXT4_ARGS, image]);
  mkdirSync(mnt, { recursive: true });
  execFileSync('mount', ['-o', 'loop,noatime', image, mnt]);
  let gnuTarMs: number;
  try {
    const t0 = performance.now();
    const tar = spawnSync('tar', [
      '--xattrs',
      '--xattrs-include=*',
      '--numeric-owner',
      '-xpf',
      opts.tarballs.rev2,
      '-C',
      mnt,
    ]);
    if (tar.status !== 0) throw new Error(`tar: ${tar.stderr}`);
    execFileSync('sync', ['--file-system', mnt]);
    gnuTarMs = performance.now() - t0;
  } finally {
    execFileSync('umount', ['-d', mnt]);
    rmSync(image, { force: true });
  }

  // Apply start → last put: the apply, boot step and quiesce, then the snapshot step up to its last put.
  const s = two.outcome.stepMs;
  const parts = {
    apply: s['download+apply'],
    boot: s.boot,
    quiesce: s.quiesce,
    findAndPut: s.snapshot - d.result.ms.complete - d.result.ms.wait,
  };
  const builderMs = Object.values(parts).reduce((a, x) => a + x, 0);
  const candidatesMs = d.candidates?.ms ?? 0;
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    volumeGiB: opts.volumeGiB,
    rev1: { putBlocks: one.direct.result.changedBlocks, ms: Math.round(one.ms) },
    rev2: {
      detection: d.detection + (d.fullBecause ? ` (${d.fullBecause})` : ''),
      putBlocks: d.result.changedBlocks,
      bytesPut: d.result.bytesPut,
      bytesPutOverChangedContent: round(d.result.bytesPut / opts.changedContentBytes),
      fast: {
        bytesRead: d.scan.bytesRead,
        readOverVolume: round(d.scan.bytesRead / size),
        candidatesMs,
        scanMs: Math.round(d.scan.ms),
      },
      putWhere,
      full: {
        bytesRead: fullReport.bytesRead,
        readOverVolume: round(fullReport.bytesRead / size),
        ms: Math.round(fullMs),
        sameBlocks,
      },
      builderMs: Math.round(builderMs),
      parts: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, Math.round(v)])),
      gnuTarMs: Math.round(gnuTarMs),
      builderOverGnuTar: round(builderMs / gnuTarMs),
    },
  };
}

export function directMarkdown(f: DirectFigures): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const r = f.rev2;
  return [
    '',
    `## Direct-API snapshots (runBuild, \`direct\`, ${f.volumeGiB} GiB disk)`,
    '',
    `Revision 1: ${f.rev1.putBlocks} blocks put (a first snapshot). Revision 2 found the ${r.detection} way.`,
    '',
    '| figure (revision 2) | result | goal |',
    '|---|---|---|',
    `| bytes put ÷ changed file content | ${r.bytesPutOverChangedContent} (${r.putBlocks} blocks, ${mib(r.bytesPut)} MiB) | ≤ 1.5 |`,
    `| where the blocks put lie (MiB) | ${Object.entries(r.putWhere)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', ')} | – |`,
    `| bytes read to find them ÷ volume, fast way | ${r.fast.readOverVolume} (${mib(r.fast.bytesRead)} MiB; candidates ${r.fast.candidatesMs} ms, read+hash ${r.fast.scanMs} ms) | ≤ 0.2 |`,
    `| bytes read ÷ volume, simple way (every block) | ${r.full.readOverVolume} (${r.full.ms} ms; same blocks: ${r.full.sameBlocks}) | – |`,
    `| builder's own time (apply start → last put) ÷ GNU tar extract of revision 2 | ${r.builderOverGnuTar} (${r.builderMs} ms: ${Object.entries(
      r.parts,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}; tar ${r.gnuTarMs} ms) | – |`,
    '',
  ].join('\n');
}

/** The changed blocks by area of the disk: the state partition, other partitions, ext4 metadata, journal, data. */
async function whereChanged(image: string, before: Buffer, after: Buffer): Promise<Record<string, number>> {
  const layout = await readLayout(image);
  if (!layout) return {};
  const rootStart = layout.root.start * SECTOR;
  const rootEnd = rootStart + layout.root.sectors * SECTOR;
  const loop = execFileSync('losetup', [
    '--find',
    '--show',
    '--read-only',
    '--offset',
    String(rootStart),
    '--sizelimit',
    String(rootEnd - rootStart),
    image,
  ])
    .toString()
    .trim();
  try {
    const dump = execFileSync('dumpe2fs', [loop], {
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 2 ** 28,
    }).toString();
    const fsBlock = Number(/^Block size:\s+(\d+)/m.exec(dump)?.[1] ?? 4096);
    const journal = inodeBlocks(
      execFileSync('debugfs', ['-R', 'stat <8>', loop], {
        stdio: ['ignore', 'pipe', 'ignore'],
        env: { ...process.env, DEBUGFS_PAGER: '__none__' },
      }).toString(),
    ).ranges;
    const metadata = metadataRanges(dump);
    const inFs = (ranges: Array<[number, number]>, from: number, to: number) =>
      ranges.some(([a, b]) => a <= to && b >= from);
    const out: Record<string, number> = {};
    for (let i = 0; i * DIGEST_BYTES < after.length; i++) {
      const x = before.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
      const y = after.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
      if (x.equals(y)) continue;
      const start = i * BLOCK_SIZE;
      const end = start + BLOCK_SIZE;
      const inPart = (p?: { start: number; sectors: number }) =>
        p !== undefined && start < (p.start + p.sectors) * SECTOR && end > p.start * SECTOR;
      let area = 'other partitions and GPT';
      if (inPart(layout.state)) area = 'state partition';
      else if (start >= rootStart && end <= rootEnd) {
        const from = Math.floor((start - rootStart) / fsBlock);
        const to = Math.floor((end - rootStart - 1) / fsBlock);
        area = inFs(journal, from, to)
          ? 'journal'
          : inFs(metadata, from, to)
            ? 'ext4 metadata'
            : 'data+directories';
      }
      out[area] = (out[area] ?? 0) + BLOCK_SIZE / 2 ** 20;
    }
    return out;
  } finally {
    execFileSync('losetup', ['--detach', loop]);
  }
}
