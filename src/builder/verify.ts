// The last check before a snapshot: does the volume hold what the apply manifest says it wrote? Cheap on
// purpose: every regular file's size, the content of a random sample, and the boot files (kernel, initrd) in
// full. It catches a volume whose writes were lost under it (a loop device over a full host, a failed
// writeback) before such an image is registered and announced.

import { createHash, randomInt } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DependencyError } from '#errors';
import { WINDOW } from '#unpack/apply.ts';
import type { ManifestRecord } from '#unpack/manifest.ts';

/** Paths the builder itself rewrites after the apply (makeBootable): the manifest does not describe them. */
const WRITTEN_AFTER_APPLY = [/^etc\/fstab$/, /^etc\/stemcell-release$/, /^boot\/grub\//];
const BOOT_FILE = /^boot\/[^/]+$/;

export interface VerifyOptions {
  /** Regular files whose content is hashed besides the boot files (default 32). */
  sample?: number;
}

export interface VerifyResult {
  files: number;
  hashed: number;
}

export class VolumeMismatchError extends DependencyError {
  override readonly name = 'VolumeMismatchError';
}

/** The manifest's content hash of a file: sha256 of the body, or of its 64 KiB window digests above one window. */
export async function contentHash(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const digests: Buffer[] = [];
    const whole = createHash('sha256');
    const buffer = Buffer.allocUnsafe(WINDOW);
    let total = 0;
    for (;;) {
      let filled = 0;
      while (filled < WINDOW) {
        const { bytesRead } = await handle.read(buffer, filled, WINDOW - filled, total + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      if (filled === 0) break;
      const chunk = buffer.subarray(0, filled);
      whole.update(chunk);
      digests.push(createHash('sha256').update(chunk).digest().subarray(0, 16));
      total += filled;
      if (filled < WINDOW) break;
    }
    if (total <= WINDOW) return whole.digest('hex');
    return createHash('sha256').update(Buffer.concat(digests)).digest('hex');
  } finally {
    await handle.close();
  }
}

/** Throws VolumeMismatchError naming the first few paths that differ from the manifest. */
export async function verifyAgainstManifest(
  root: string,
  records: Map<string, ManifestRecord>,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const problems: string[] = [];
  const files: Array<[string, ManifestRecord]> = [];
  for (const [rel, rec] of records) {
    if (rec.t !== 'file' || WRITTEN_AFTER_APPLY.some((p) => p.test(rel))) continue;
    files.push([rel, rec]);
    let size: number;
    try {
      const st = lstatSync(join(root, rel));
      if (!st.isFile()) {
        problems.push(`${rel}: not a regular file`);
        continue;
      }
      size = st.size;
    } catch {
      problems.push(`${rel}: missing`);
      continue;
    }
    if (rec.s !== undefined && size !== rec.s) problems.push(`${rel}: ${size} bytes, manifest says ${rec.s}`);
  }
  // Boot files in full, plus a random sample of the rest.
  const chosen = new Set(files.filter(([rel]) => BOOT_FILE.test(rel)).map(([rel]) => rel));
  const others = files.filter(([rel]) => !chosen.has(rel));
  const sample = Math.min(opts.sample ?? 32, others.length);
  for (let i = 0; i < sample; i++) {
    const j = i + randomInt(others.length - i);
    [others[i], others[j]] = [others[j] as [string, ManifestRecord], others[i] as [string, ManifestRecord]];
    chosen.add((others[i] as [string, ManifestRecord])[0]);
  }
  let hashed = 0;
  for (const rel of chosen) {
    const rec = records.get(rel);
    if (!rec?.h) continue;
    hashed++;
    const actual = await contentHash(join(root, rel)).catch(() => 'unreadable');
    if (actual !== rec.h) problems.push(`${rel}: content differs from the manifest`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 5).join('; ');
    throw new VolumeMismatchError(
      `volume does not hold what the apply wrote (${problems.length} of ${files.length} files): ${shown}${problems.length > 5 ? '; …' : ''}`,
    );
  }
  return { files: files.length, hashed };
}
