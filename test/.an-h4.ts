import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { openVolume } from '#builder/device.ts';
import { attachLoop, detachLoop } from '#builder/volume/loop.ts';
import { applyTarball } from '#unpack/index.ts';
const D = '/var/cache/stemcell-test/debian-071a707063ed4b02';
const W = '/var/tmp/h4an';
rmSync(W, { recursive: true, force: true }); mkdirSync(W, { recursive: true });
const img = `${W}/vol.img`;
execFileSync('truncate', ['-s', '3G', img]);
const mkfsArgs = process.env.MKFS ? process.env.MKFS.split(' ') : undefined;
async function rev(tar: string) {
  const dev = await attachLoop(img);
  try {
    const v = await openVolume(dev, { bootMode: 'legacy-bios', mountPoint: `${W}/mnt`, log: () => {}, ...(mkfsArgs ? { mkfsArgs } : {}) });
    try {
      const s = await applyTarball(createReadStream(tar), v.root, { manifestPath: `${W}/manifest.json` });
      await v.makeBootable({ stream: 'd', revision: tar, sequence: 1, sha256: s.inputSha256 });
      await v.quiesce();
      return v.layout!.root.start;
    } finally { await v.close(); }
  } finally { await detachLoop(dev); }
}
const start = await rev(`${D}/rev1.tar.zst`);
execFileSync('cp', ['--sparse=always', img, `${W}/rev1.img`]);
await rev(`${D}/rev2.tar.zst`);
const a = openSync(`${W}/rev1.img`, 'r'), b = openSync(img, 'r');
const B = 512 * 1024, ba = Buffer.alloc(B), bb = Buffer.alloc(B);
const size = 3 * 2 ** 30;
const changed: Array<[number, number[]]> = [];
for (let off = 0; off < size; off += B) {
  readSync(a, ba, 0, B, off); readSync(b, bb, 0, B, off);
  if (ba.equals(bb)) continue;
  const sub: number[] = [];
  for (let i = 0; i < B; i += 4096) if (!ba.subarray(i, i + 4096).equals(bb.subarray(i, i + 4096))) sub.push((off + i - start * 512) / 4096);
  changed.push([off / B, sub]);
}
const total4k = changed.reduce((n, [, s]) => n + s.length, 0);
console.log('changed 512K blocks', changed.length, 'changed 4K blocks', total4k, 'MiB', (total4k * 4096 / 2 ** 20).toFixed(1));
const hist: Record<string, number> = {};
for (const [, s] of changed) { const k = s.length <= 2 ? '1-2' : s.length <= 16 ? '3-16' : s.length <= 64 ? '17-64' : '65-128'; hist[k] = (hist[k] ?? 0) + 1; }
console.log(hist);
// owners of the fs blocks in sparse 512K blocks
const loop = execFileSync('losetup', ['-f', '--show', '-r', '-o', String(start * 512), img]).toString().trim();
try {
  const sparse = changed.filter(([, s]) => s.length <= 16).flatMap(([, s]) => s.slice(0, 1));
  const icheck = execFileSync('debugfs', ['-R', `icheck ${sparse.join(' ')}`, loop], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1e8 }).toString();
  const inodes = [...icheck.matchAll(/^(\d+)\s+(\d+)$/gm)].map((m) => m[2]);
  const nocheck = icheck.split('\n').filter((l) => /not found/.test(l)).length;
  const ncheck = inodes.length ? execFileSync('debugfs', ['-R', `ncheck ${[...new Set(inodes)].join(' ')}`, loop], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1e8 }).toString() : '';
  console.log('sparse blocks', sparse.length, 'no owner (metadata)', nocheck);
  console.log(ncheck.split('\n').slice(0, 80).join('\n'));
  console.log(execFileSync('dumpe2fs', ['-h', loop], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n').filter((l) => /Journal|Inode count|Block count|Flex/.test(l)).join('\n'));
  console.log(execFileSync('debugfs', ['-R', 'stat <8>', loop], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n').slice(-4).join('\n'));
} finally { execFileSync('losetup', ['-d', loop]); }
const inJ = changed.flatMap(([, s]) => s).filter((x) => x >= 327680 && x <= 331775).length;
const jBlocks = changed.filter(([, s]) => s.some((x) => x >= 327680 && x <= 331775)).length;
console.log('journal 4K changed', inJ, 'MiB', (inJ * 4096 / 2 ** 20).toFixed(1), '512K blocks', jBlocks);
