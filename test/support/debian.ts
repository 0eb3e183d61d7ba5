// A real, minimal Debian root filesystem (two revisions) for tests and benchmarks, cached on this machine.
//
// Revision 1: minbase + a kernel + an init system (systemd gives a serial getty when console=ttyS0).
// Revision 2: revision 1 with a few packages installed and one removed, applied with apt inside a copy
// of revision 1, so its churn is a real package change, not a rebuild.
//
// Built with mmdebstrap and no mirror argument: the machine's own apt sources decide where packages come
// from. The cache lives outside the repository, keyed by a hash of the recipe, and is only ever taken
// from a directory renamed into place after a complete build.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const DEBIAN_CACHE_ROOT = process.env.STEMCELL_TEST_CACHE ?? '/var/cache/stemcell-test';

/** What the trees are made of; any change here gives a new cache directory. */
export const DEBIAN_RECIPE = {
  version: 1,
  suite: hostSuite(),
  variant: 'minbase',
  rev1Packages: ['linux-image-cloud-amd64', 'systemd-sysv', 'udev', 'kmod', 'nano', 'procps'],
  rev2Install: ['less', 'curl', 'file'],
  rev2Remove: ['nano'],
  hostname: 'stemcell',
} as const;

export interface DebianRootfs {
  rev1Dir: string;
  rev2Dir: string;
}

export interface DebianTarballs {
  rev1: string;
  rev2: string;
}

function hostSuite(): string {
  // The host's own release: its apt sources are the ones mmdebstrap will use.
  try {
    const osRelease = readFileSync('/etc/os-release', 'utf8');
    const codename = /^VERSION_CODENAME=("?)([a-z]+)\1$/m.exec(osRelease)?.[2];
    if (codename) return codename;
  } catch {}
  return 'bookworm';
}

export function debianCacheDir(): string {
  const hash = createHash('sha256').update(JSON.stringify(DEBIAN_RECIPE)).digest('hex').slice(0, 16);
  return join(DEBIAN_CACHE_ROOT, `debian-${hash}`);
}

function log(message: string): void {
  process.stderr.write(`[debian] ${message}\n`);
}

export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    // stdout and stderr go to our stderr: progress for whoever waits on a cold build.
    const child = spawn(cmd, args, { stdio: ['ignore', process.stderr, process.stderr], ...opts });
    child.on('error', (err) => reject(new Error(`${cmd}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A directory lock that survives a crashed holder: a lock whose pid is gone is taken over. */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(join(lockDir, '..'), { recursive: true });
  let announced = false;
  for (;;) {
    try {
      await mkdir(lockDir);
      await writeFile(join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number.parseInt(readFileSafe(join(lockDir, 'pid')), 10);
      if (Number.isFinite(pid) && !pidAlive(pid)) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (!announced) log(`waiting for another build (lock ${lockDir}, pid ${pid})`);
      announced = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new Error('building the Debian test tree needs root (mmdebstrap, chroot)');
}

async function buildRev1(dir: string): Promise<void> {
  log(`revision 1: mmdebstrap ${DEBIAN_RECIPE.variant} ${DEBIAN_RECIPE.suite} (host apt sources)`);
  await run('mmdebstrap', [
    '--mode=root',
    `--variant=${DEBIAN_RECIPE.variant}`,
    `--include=${DEBIAN_RECIPE.rev1Packages.join(',')}`,
    `--customize-hook=echo ${DEBIAN_RECIPE.hostname} > "$1/etc/hostname"`,
    // No fstab and no bootloader here: stemcell's makeBootable writes those.
    DEBIAN_RECIPE.suite,
    dir,
  ]);
}

/** Runs apt inside a copy of revision 1, with the mounts it needs, all undone in finally. */
async function buildRev2(rev1Dir: string, dir: string): Promise<void> {
  log('revision 2: copying revision 1');
  await run('cp', ['-a', `${rev1Dir}/.`, `${dir}/`]);
  const mounts: string[] = [];
  const policy = join(dir, 'usr/sbin/policy-rc.d');
  const resolv = join(dir, 'etc/resolv.conf');
  const hadResolv = existsSync(resolv);
  try {
    for (const m of ['proc', 'sys', 'dev']) {
      const target = join(dir, m);
      await run('mount', ['--rbind', `/${m}`, target]);
      await run('mount', ['--make-rslave', target]);
      mounts.push(target);
    }
    // No daemons start inside the build chroot.
    await writeFile(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
    if (!hadResolv) await writeFile(resolv, readFileSafe('/etc/resolv.conf'));
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C.UTF-8' };
    log(`revision 2: apt-get install ${DEBIAN_RECIPE.rev2Install.join(' ')}`);
    await run('chroot', [dir, 'apt-get', 'update', '-q'], { env });
    await run(
      'chroot',
      [dir, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', ...DEBIAN_RECIPE.rev2Install],
      { env },
    );
    log(`revision 2: apt-get purge ${DEBIAN_RECIPE.rev2Remove.join(' ')}`);
    await run('chroot', [dir, 'apt-get', 'purge', '-y', '-q', ...DEBIAN_RECIPE.rev2Remove], { env });
    await run('chroot', [dir, 'apt-get', 'clean'], { env });
  } finally {
    for (const target of mounts.reverse()) await run('umount', ['-R', target]).catch(() => {});
    await rm(policy, { force: true });
    if (!hadResolv) await rm(resolv, { force: true });
  }
  // Like mmdebstrap's own cleanup: package lists are download state, not part of the image.
  for (const sub of ['var/lib/apt/lists']) {
    const listDir = join(dir, sub);
    for (const name of await readdir(listDir).catch(() => [] as string[])) {
      if (name !== 'partial' && name !== 'lock')
        await rm(join(listDir, name), { recursive: true, force: true });
    }
  }
}

/** The two revision trees, built on first call (minutes) and cached afterwards. Needs root. */
export async function ensureDebianRootfs(): Promise<DebianRootfs> {
  const cacheDir = debianCacheDir();
  const result = { rev1Dir: join(cacheDir, 'rev1'), rev2Dir: join(cacheDir, 'rev2') };
  if (existsSync(join(cacheDir, 'complete'))) return result;
  requireRoot();
  return withLock(`${cacheDir}.lock`, async () => {
    if (existsSync(join(cacheDir, 'complete'))) return result;
    const started = Date.now();
    const tmp = `${cacheDir}.tmp-${process.pid}`;
    // Leftovers of interrupted builds are never reused.
    for (const name of await readdir(DEBIAN_CACHE_ROOT)) {
      const leftover = join(DEBIAN_CACHE_ROOT, name);
      if (name.startsWith(`${cacheDir.split('/').pop()}.tmp-`)) await removeTree(leftover);
    }
    await rm(cacheDir, { recursive: true, force: true });
    await mkdir(join(tmp, 'rev2'), { recursive: true });
    try {
      await buildRev1(join(tmp, 'rev1'));
      await buildRev2(join(tmp, 'rev1'), join(tmp, 'rev2'));
      await writeFile(join(tmp, 'recipe.json'), `${JSON.stringify(DEBIAN_RECIPE, null, 2)}\n`);
      await writeFile(join(tmp, 'complete'), `${new Date().toISOString()}\n`);
      await rename(tmp, cacheDir);
    } catch (err) {
      await removeTree(tmp);
      throw err;
    }
    log(`built ${cacheDir} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
    return result;
  });
}

/** Removes a build tree, first undoing any mount an interrupted build left inside it. */
async function removeTree(dir: string): Promise<void> {
  const mounts = readFileSafe('/proc/self/mounts')
    .split('\n')
    .map((line) => line.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${dir}/`))
    .sort()
    .reverse();
  for (const m of mounts) await run('umount', ['-l', m]).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

async function ensureTarball(treeDir: string, out: string): Promise<void> {
  if (existsSync(out)) return;
  log(`tar ${treeDir} -> ${out}`);
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await run('sh', [
      '-c',
      // GNU tar is the reference format: xattrs kept, numeric owners, entries relative "./...".
      `tar --xattrs --xattrs-include='*' --numeric-owner --sort=name -C "$1" -cf - . | zstd -q -T2 -3 -o "$2"`,
      'tar',
      treeDir,
      tmp,
    ]);
    await rename(tmp, out);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The two revisions as .tar.zst files made by GNU tar, built on first call and cached. Needs root. */
export async function ensureDebianTarballs(): Promise<DebianTarballs> {
  const { rev1Dir, rev2Dir } = await ensureDebianRootfs();
  const cacheDir = debianCacheDir();
  const result = { rev1: join(cacheDir, 'rev1.tar.zst'), rev2: join(cacheDir, 'rev2.tar.zst') };
  if (existsSync(result.rev1) && existsSync(result.rev2)) return result;
  return withLock(`${cacheDir}.lock`, async () => {
    await ensureTarball(rev1Dir, result.rev1);
    await ensureTarball(rev2Dir, result.rev2);
    const sizes = await Promise.all([stat(result.rev1), stat(result.rev2)]);
    log(`tarballs ready: ${sizes.map((s) => `${(s.size / 2 ** 20).toFixed(1)} MiB`).join(', ')}`);
    return result;
  });
}

// `node test/support/debian.ts` builds (or checks) the cache and prints the paths.
if (import.meta.main) {
  const tarballs = await ensureDebianTarballs();
  const trees = await ensureDebianRootfs();
  process.stdout.write(`${JSON.stringify({ ...trees, ...tarballs }, null, 2)}\n`);
}
