// The step after the boot gate: share a region's image with the stream's audience, read the sharing back,
// publish "Image Ready" (rollout waves decide who hears it), record the region announced, and publish
// "Release Complete" once every region is. announce.ts calls it for an image that needs no boot or has booted;
// the boot-check worker (boot-check.ts) calls it when a check passes.
import type { ImageReady } from '#events/stemcell.ts';
import type { ImageInfo, Release } from '#ports';
import type { AnnounceDeps } from '../deps.ts';
import { launchPermissionsFor, shareAndVerify } from '../images/launch-permissions.ts';
import { emit } from '../model/emit.ts';
import { streamConfig } from '../model/errors.ts';
import { TAG } from '../model/naming.ts';
import { publishImageReady, rolloutFinished } from '../rollout/rollout.ts';
import { moveRegion } from './region-state.ts';

export type AnnounceResult =
  | {
      outcome: 'announced' | 'already-announced';
      releaseId: string;
      imageId: string;
      /** True when this call published "Release Complete". */
      releaseComplete: boolean;
    }
  | { outcome: 'failed'; releaseId: string }
  /** The boot gate holds the image until it has booted (boot-gate.ts). */
  | { outcome: 'boot-checking'; releaseId: string; imageId: string }
  /** Not published: the stream is pinned to another revision, or the release's rollout halted or aborted. */
  | { outcome: 'held'; releaseId: string; imageId: string; reason: string }
  | { outcome: 'ignored'; reason: string };

/** Shares a region's image that may be announced (it booted, or needs no boot), publishes and records it. */
export async function shareAndAnnounce(
  deps: AnnounceDeps,
  release: Release,
  region: string,
  image: ImageInfo,
): Promise<AnnounceResult> {
  const { imageId } = image;
  const log = { releaseId: release.releaseId, region, imageId };
  let outcome: 'announced' | 'already-announced' = 'already-announced';
  if (release.regions[region]?.state !== 'announced') {
    const { images } = deps.imaging(region);
    const config = streamConfig(deps.config, release.stream, `image ${imageId} in ${region}`);
    // Sharing is idempotent (launch permissions are a set), so a retry simply adds nothing. What was set is
    // read back before anyone is told.
    const permissions = await launchPermissionsFor(config.sharing, deps.organization);
    await shareAndVerify(images, imageId, region, permissions);

    const detail = imageReadyDetail(release, region, image);
    // Publish, then record: a crash in between republishes on retry, and subscribers are idempotent;
    // once recorded, a retry publishes nothing. Rollout waves decide who hears it (src/core/rollout/rollout.ts).
    const published = await publishImageReady(deps, release, detail, [imageArn(region, imageId)]);
    if (published !== 'published') {
      await moveRegion(deps.releases, release.releaseId, region, {
        state: 'available',
        imageId,
        snapshotId: image.snapshotId,
        updatedAt: deps.clock.now().toISOString(),
      });
      return { outcome: 'held', releaseId: release.releaseId, imageId, reason: published };
    }
    await moveRegion(deps.releases, release.releaseId, region, {
      state: 'announced',
      imageId,
      snapshotId: image.snapshotId,
      updatedAt: deps.clock.now().toISOString(),
    });
    outcome = 'announced';
    deps.logger.info('image announced', log);
  }

  const releaseComplete = await completeIfAllAnnounced(deps, release.releaseId);
  return { outcome, releaseId: release.releaseId, imageId, releaseComplete };
}

/**
 * Publishes "Release Complete" when every region is announced and the rollout (if any) has reached and baked
 * every wave; markComplete lets only one caller through.
 */
export async function completeIfAllAnnounced(deps: AnnounceDeps, releaseId: string): Promise<boolean> {
  const release = await deps.releases.get(releaseId);
  if (!release || release.completedAt) return false;
  if (!(await rolloutFinished(deps, releaseId))) return false;
  const regions = Object.entries(release.regions);
  if (regions.length === 0 || !regions.every(([, r]) => r.state === 'announced' && r.imageId)) return false;
  const completedAt = deps.clock.now().toISOString();
  if (!(await deps.releases.markComplete(releaseId, completedAt))) return false;
  await emit(
    deps.events,
    'Release Complete',
    {
      version: 1,
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      releaseId,
      images: regions.map(([region, r]) => ({ region, imageId: r.imageId as string })),
      completedAt,
    },
    deps.config.busName,
  );
  deps.logger.info('release complete', { releaseId });
  return true;
}

/**
 * The "Image Ready" detail of one region's image of a release: what announce publishes, and what the
 * reconciler delivers again to an account that missed it or joined later.
 */
export function imageReadyDetail(release: Release, region: string, image: ImageInfo): ImageReady {
  const sha256 = release.source.sha256 ?? image.tags[TAG.sha256];
  if (!sha256) {
    throw new Error(
      `release ${release.releaseId}: no SHA-256 of the source tarball ${release.source.key}; ` +
        `the builder tags the snapshot with ${TAG.sha256} (or the publisher sets x-amz-meta-sha256)`,
    );
  }
  if (!image.encrypted)
    throw new Error(`image ${image.imageId} in ${region} is not encrypted: refusing to announce`);
  return {
    version: 1,
    stream: release.stream,
    revision: release.revision,
    sequence: release.sequence,
    releaseId: release.releaseId,
    region,
    imageId: image.imageId,
    imageName: image.name,
    architecture: image.architecture,
    bootMode: image.bootMode,
    encrypted: true,
    kmsKeyId: image.kmsKeyId,
    snapshotId: image.snapshotId,
    source: { ...release.source, sha256 },
    createdAt: new Date(image.createdAt).toISOString(),
  };
}

export function imageArn(region: string, imageId: string): string {
  return `arn:aws:ec2:${region}::image/${imageId}`;
}
