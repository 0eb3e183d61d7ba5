// "Every announced image restores to the exact content of its tarball": the image is restored to a raw disk,
// opened read-only through a loop device, and checked file by file against the unpack manifest of the tarball
// applied to a scratch tree (every file's size and full content, not a sample).
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openVolume } from '#builder/device.ts';
import { verifyAgainstManifest } from '#builder/verify.ts';
import { attachLoop, detachLoop } from '#builder/volume/loop.ts';
import type { LocalImages } from '#local/images.ts';
import { applyTarball } from '#unpack/index.ts';
import { loadManifest, targetIdentity } from '#unpack/manifest.ts';

/** Resolves with the number of files checked; throws VolumeMismatchError naming what differs. */
export async function imageHoldsTarball(
  images: LocalImages,
  imageId: string,
  tarball: string,
  scratch: string,
): Promise<number> {
  const work = await mkdtemp(join(scratch, 'content-'));
  try {
    const tree = join(work, 'tree');
    const manifestPath = join(work, 'manifest');
    await mkdir(tree);
    await applyTarball(createReadStream(tarball), tree, { manifestPath });
    const expected = loadManifest(manifestPath, targetIdentity(tree));
    if (!expected.valid) throw new Error(`manifest of ${tarball}: ${expected.reason}`);
    const raw = join(work, 'image.raw');
    const restored = await images.restore(imageId, raw, images.ownerOf(imageId));
    if (restored.format !== 'disk') throw new Error(`image ${imageId} restored as ${restored.format}`);
    const device = await attachLoop(raw);
    try {
      const image = await images.get(imageId);
      const opened = await openVolume(device, {
        bootMode: image?.bootMode ?? 'none',
        mountPoint: join(work, 'mnt'),
        log: () => {},
      });
      try {
        const result = await verifyAgainstManifest(opened.root, expected.records, {
          sample: Number.POSITIVE_INFINITY,
        });
        return result.hashed;
      } finally {
        await opened.close();
      }
    } finally {
      await detachLoop(device);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
