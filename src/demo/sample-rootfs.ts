// Small, deterministic root-filesystem trees for `stemcell demo` and the integration tests: enough shape
// (directories, binaries, symlinks, a hardlink, a kernel for bootable streams) to exercise the whole flow,
// and a revision 2 that changes a few percent of the files, adds some and removes some.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SampleSpec {
  stream: string;
  revision: number;
  /** Adds /boot/vmlinuz-* and /boot/initrd.img-* so a bootable stream finds a kernel. */
  withKernel: boolean;
  files?: number;
}

/** Deterministic pseudo-random bytes: the same (seed, size) gives the same content on every machine. */
function bytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Writes the tree of one revision into `dir` (which must not exist yet). */
export async function writeSampleTree(dir: string, spec: SampleSpec): Promise<void> {
  const files = spec.files ?? 400;
  const put = async (path: string, content: Buffer | string, mode = 0o644) => {
    const full = join(dir, path);
    await mkdir(dirname(full), { recursive: true });
    await writeFile(full, content);
    await chmod(full, mode);
  };
  await put('etc/hostname', `${spec.stream}\n`);
  await put('etc/os-release', `NAME="stemcell sample"\nID=stemcell-sample\nVERSION_ID="${spec.revision}"\n`);
  await put('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  await mkdir(join(dir, 'usr/share/zoneinfo'), { recursive: true });
  await put('usr/share/zoneinfo/UTC', bytes('tz', 128));
  await symlink('/usr/share/zoneinfo/UTC', join(dir, 'etc/localtime'));
  await mkdir(join(dir, 'usr/bin'), { recursive: true });
  await symlink('usr/bin', join(dir, 'bin'));
  await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o1777 });
  await chmod(join(dir, 'tmp'), 0o1777);
  for (let i = 0; i < files; i++) {
    // About 2 % of the files change per revision, a few are added and a few removed.
    const changed = i % 50 === 7 ? spec.revision : 1;
    if (spec.revision > 1 && i % 97 === 3) continue;
    const size = i % 40 === 0 ? 256 * 1024 : 2 * 1024 + (i % 13) * 512;
    const area = i % 3 === 0 ? 'usr/bin' : i % 3 === 1 ? 'usr/lib/sample' : 'usr/share/doc/sample';
    await put(
      `${area}/file-${String(i).padStart(5, '0')}`,
      bytes(`${spec.stream}:${i}:${changed}`, size),
      i % 3 === 0 ? 0o755 : 0o644,
    );
  }
  for (let i = 0; i < (spec.revision - 1) * 5; i++) {
    await put(
      `usr/lib/sample/added-r${spec.revision}-${i}`,
      bytes(`${spec.stream}:added:${spec.revision}:${i}`, 4096),
    );
  }
  await link(join(dir, 'usr/bin/file-00000'), join(dir, 'usr/bin/file-00000-hardlink'));
  if (spec.withKernel) {
    const version = `6.1.0-${spec.revision}-stemcell-sample`;
    await put(`boot/vmlinuz-${version}`, bytes(`kernel:${spec.revision}`, 512 * 1024));
    await put(`boot/initrd.img-${version}`, bytes(`initrd:${spec.revision}`, 256 * 1024));
  }
}

/** Builds revision `spec.revision` as a zstd tarball at `out` (GNU tar, numeric owners, xattrs kept). */
export async function buildSampleTarball(workDir: string, out: string, spec: SampleSpec): Promise<string> {
  const tree = join(workDir, `${spec.stream}-r${spec.revision}`);
  await rm(tree, { recursive: true, force: true });
  await writeSampleTree(tree, spec);
  await mkdir(dirname(out), { recursive: true });
  await run('tar', [
    '--zstd',
    '--numeric-owner',
    '--owner=0',
    '--group=0',
    '--xattrs',
    '-C',
    tree,
    '-cf',
    out,
    '.',
  ]);
  await rm(tree, { recursive: true, force: true });
  return out;
}
