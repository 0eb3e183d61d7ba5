// announce: an image became available (EC2 "AMI State Change"). It goes through the boot gate; once the image
// has booted, image-ready.ts shares it and tells the audience. The boot-check worker (boot-check.ts) takes the
// same last step when a check passes. The other two events the announce λ serves have their own paths:
// account-reports.ts ("Launch Template Updated") and src/core/rollout/bake-timer.ts (a wave's bake elapsed).
import type { AmiStateChangeEnvelope } from '#events/aws.ts';
import type { ImageInfo, Release } from '#ports';
import type { AnnounceDeps } from '../deps.ts';
import { ReleaseNotFoundError } from '../model/errors.ts';
import { releaseFromTags } from '../model/naming.ts';
import { bootGate } from './boot-gate.ts';
import { recordBuildFailure } from './build-failure.ts';
import { type AnnounceResult, shareAndAnnounce } from './image-ready.ts';

export interface AmiStateChange {
  region: string;
  imageId: string;
  state: 'pending' | 'available' | 'failed' | 'deregistered' | 'disabled';
  errorMessage: string;
}

export function amiStateChangeFromEvent(event: AmiStateChangeEnvelope): AmiStateChange {
  return {
    region: event.region,
    imageId: event.detail.ImageId,
    state: event.detail.State,
    errorMessage: event.detail.ErrorMessage,
  };
}

export async function announceImage(deps: AnnounceDeps, change: AmiStateChange): Promise<AnnounceResult> {
  const { region, imageId } = change;
  if (change.state !== 'available' && change.state !== 'failed') {
    return { outcome: 'ignored', reason: `image ${imageId} is ${change.state}` };
  }
  const { images } = deps.imaging(region);
  const image = await images.get(imageId);
  if (!image) throw new Error(`image ${imageId} not found in ${region}`);
  const tagged = releaseFromTags(image.tags);
  if (!tagged) return { outcome: 'ignored', reason: `image ${imageId} carries no stemcell release tags` };

  if (change.state === 'failed') {
    await recordBuildFailure(deps, {
      releaseId: tagged.releaseId,
      region,
      reason: `image ${imageId} failed: ${change.errorMessage || 'no error message given'}`,
      attempts: 1,
    });
    return { outcome: 'failed', releaseId: tagged.releaseId };
  }

  const release = await deps.releases.get(tagged.releaseId);
  if (!release) throw new ReleaseNotFoundError(tagged.releaseId, `image ${imageId} in ${region}`);
  return announceRegionImage(deps, release, region, image);
}

/**
 * Announces a region's image for `release`: through the boot gate, then shared and published. Also how a
 * rollback release announces the earlier revision's images (src/core/rollout/rollback.ts).
 */
export async function announceRegionImage(
  deps: AnnounceDeps,
  release: Release,
  region: string,
  image: ImageInfo,
): Promise<AnnounceResult> {
  const { imageId } = image;
  if (release.regions[region]?.state !== 'announced') {
    // Checked before the gate: an unencrypted image is neither booted, shared nor announced.
    if (!image.encrypted)
      throw new Error(`image ${imageId} in ${region} is not encrypted: refusing to announce`);
    // No image is announced before it has booted.
    const gate = await bootGate(deps, { release, region, image });
    if (gate.gate === 'checking') return { outcome: 'boot-checking', releaseId: release.releaseId, imageId };
    if (gate.gate === 'closed')
      return { outcome: 'ignored', reason: `not announcing ${imageId}: ${gate.reason}` };
  }
  return shareAndAnnounce(deps, release, region, image);
}
