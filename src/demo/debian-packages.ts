// Debian packages unpacked into a cache, for the demo's sample images: a real kernel and busybox, for x86_64 and
// arm64 alike. They come through the machine's own package tools (`apt-get download`, then `dpkg-deb -x`, never
// installed: nothing of arm64 runs here), so the host's apt sources decide where from. An arm64 package needs
// the arm64 architecture known to apt (scripts/setup.sh adds it). Each package is unpacked into a temporary
// directory and renamed into place, so a half-done unpack is never taken for a cached one.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Architecture } from '#core/model/types.ts';
import { DependencyError } from '#errors';

const exec = promisify(execFile);

export const PACKAGE_CACHE = process.env.STEMCELL_PACKAGE_CACHE ?? '/var/cache/stemcell/packages';

export type DebianArch = 'amd64' | 'arm64';
export const debianArch = (a: Architecture): DebianArch => (a === 'arm64' ? 'arm64' : 'amd64');

export class PackageToolError extends DependencyError {
  constructor(what: string, cause: unknown) {
    const detail = (cause as { stderr?: string }).stderr?.trim() || (cause as Error).message;
    super(`${what}: ${detail}`, { cause });
  }
}

/** `apt-cache show` of the candidate version: its fields (Version, Depends, …). */
export async function packageFields(name: string, arch: DebianArch): Promise<Record<string, string>> {
  let stdout: string;
  try {
    ({ stdout } = await exec('apt-cache', ['show', '--no-all-versions', `${name}:${arch}`]));
  } catch (err) {
    const hint = arch === 'arm64' ? ' (is the arm64 architecture added? run scripts/setup.sh)' : '';
    throw new PackageToolError(`apt-cache show ${name}:${arch}${hint}`, err);
  }
  const fields: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^([A-Za-z-]+): (.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined && !(m[1] in fields)) fields[m[1]] = m[2];
  }
  return fields;
}

/** The kernel package a `linux-image-<flavour>` metapackage points at, e.g. linux-image-6.1.0-57-cloud-arm64. */
export async function kernelPackage(arch: DebianArch): Promise<string> {
  const meta = `linux-image-cloud-${arch}`;
  const depends = (await packageFields(meta, arch)).Depends ?? '';
  const target = /^(linux-image-[0-9][^\s,(]*)/.exec(depends)?.[1];
  if (!target) throw new Error(`${meta}:${arch}: no linux-image-<version> in its Depends ("${depends}")`);
  return target;
}

/** The package's files, unpacked under the cache (downloaded on first use). Returns the unpacked root. */
export async function unpackedPackage(
  name: string,
  arch: DebianArch,
  log: (line: string) => void = () => {},
): Promise<string> {
  const version = (await packageFields(name, arch)).Version;
  if (!version) throw new Error(`${name}:${arch}: apt knows no candidate version`);
  const dir = join(PACKAGE_CACHE, `${name}_${version.replace(/[^A-Za-z0-9.+~-]/g, '_')}_${arch}`);
  if (existsSync(join(dir, '.complete'))) return dir;
  await mkdir(PACKAGE_CACHE, { recursive: true });
  const tmp = await mkdtemp(`${dir}.tmp-`);
  try {
    // apt's download sandbox user must be able to write here.
    await chmod(tmp, 0o755);
    log(`downloading ${name}:${arch} ${version} (apt-get download)`);
    try {
      await exec('apt-get', ['download', '-qq', `${name}:${arch}=${version}`], { cwd: tmp });
    } catch (err) {
      throw new PackageToolError(`apt-get download ${name}:${arch}`, err);
    }
    const deb = (await readdir(tmp)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${name}:${arch} left no .deb in ${tmp}`);
    const root = join(tmp, 'root');
    await exec('dpkg-deb', ['-x', join(tmp, deb), root]);
    await rm(join(tmp, deb));
    await exec('touch', [join(root, '.complete')]);
    await rename(root, dir).catch(async (err) => {
      // Another process unpacked the same version meanwhile: keep theirs.
      if (!existsSync(join(dir, '.complete'))) throw err;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}
