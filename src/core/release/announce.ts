// announce: an image became available. Share it per the stream's configuration, publish "Image Ready" for
// its region, and "Release Complete" once every region of the release is announced. Also records the
// "Launch Template Updated" reports member accounts send back.
import type { AmiStateChangeEnvelope } from '#events/aws.ts';
import { type ImageReady, INSTANCE_REFRESH_SEVERITY, type LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { AccountRecord, ImageInfo, RegionState, Release } from '#ports';
import type { AnnounceDeps, Logger } from '../deps.ts';
import { launchPermissionsFor, shareAndVerify } from '../images/launch-permissions.ts';
import { emit } from '../model/emit.ts';
import { ReleaseNotFoundError, streamConfig } from '../model/errors.ts';
import { releaseFromTags, TAG } from '../model/naming.ts';
import {
  type MaybeRolloutDeps,
  onBakeElapsed,
  onLaunchTemplateReport,
  publishImageReady,
  type RolloutDeps,
  rolloutFinished,
  type TimerResult,
} from '../rollout/rollout.ts';
import { bootGate } from './boot-gate.ts';
import { recordBuildFailure } from './build-failure.ts';

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

const NOT_ANNOUNCED: RegionState[] = [
  'queued',
  'building',
  'snapshotting',
  'registering',
  'available',
  'booting',
];

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
 * Shares a region's image, publishes its "Image Ready" for `release` and records it. Also how a rollback
 * release announces the earlier revision's images (src/core/rollout/rollback.ts).
 */
export async function announceRegionImage(
  deps: AnnounceDeps,
  release: Release,
  region: string,
  image: ImageInfo,
): Promise<AnnounceResult> {
  const { imageId } = image;
  const { images } = deps.imaging(region);
  const config = streamConfig(deps.config, release.stream, `image ${imageId} in ${region}`);
  const regionRecord = release.regions[region];
  const log = { releaseId: release.releaseId, region, imageId };

  let outcome: 'announced' | 'already-announced' = 'already-announced';
  if (regionRecord?.state !== 'announced') {
    // Checked before sharing: an unencrypted image is neither shared nor announced.
    if (!image.encrypted)
      throw new Error(`image ${imageId} in ${region} is not encrypted: refusing to announce`);
    // No image is announced before it has booted.
    const gate = await bootGate(deps, { release, region, image });
    if (gate.gate === 'checking') return { outcome: 'boot-checking', releaseId: release.releaseId, imageId };
    if (gate.gate === 'closed')
      return { outcome: 'ignored', reason: `not announcing ${imageId}: ${gate.reason}` };
    // Sharing is idempotent (launch permissions are a set), so a retry simply adds nothing. What was set is
    // read back before anyone is told.
    const permissions = await launchPermissionsFor(config.sharing, deps.organization);
    await shareAndVerify(images, imageId, region, permissions);

    const detail = imageReadyDetail(release, region, image);
    // Publish, then record: a crash in between republishes on retry, and subscribers are idempotent;
    // once recorded, a retry publishes nothing. Rollout waves decide who hears it (src/core/rollout/rollout.ts).
    const published = await publishImageReady(deps, release, detail, [imageArn(region, imageId)]);
    if (published !== 'published') {
      await deps.releases.updateRegion(
        release.releaseId,
        region,
        {
          state: 'available',
          imageId,
          snapshotId: image.snapshotId,
          updatedAt: deps.clock.now().toISOString(),
        },
        { stateIn: NOT_ANNOUNCED },
      );
      return { outcome: 'held', releaseId: release.releaseId, imageId, reason: published };
    }
    await deps.releases.updateRegion(
      release.releaseId,
      region,
      {
        state: 'announced',
        imageId,
        snapshotId: image.snapshotId,
        updatedAt: deps.clock.now().toISOString(),
      },
      { stateIn: NOT_ANNOUNCED },
    );
    outcome = 'announced';
    deps.logger.info('image announced', log);
  }

  const releaseComplete = await completeIfAllAnnounced(deps, release.releaseId);
  return { outcome, releaseId: release.releaseId, imageId, releaseComplete };
}

/** The bake timer of a wave fired. */
export async function onRolloutTimer(
  deps: AnnounceDeps & Pick<RolloutDeps, 'rollouts' | 'timer'>,
  input: Parameters<typeof onBakeElapsed>[1],
): Promise<TimerResult & { releaseComplete: boolean }> {
  const result = await onBakeElapsed(deps, input);
  const releaseComplete =
    result.outcome === 'rollout-complete' && (await completeIfAllAnnounced(deps, input.releaseId));
  return { ...result, releaseComplete };
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

const OUTCOME_RANK: Record<AccountRecord['outcome'], number> = {
  'skipped-older': 0,
  'already-current': 1,
  updated: 2,
};

/**
 * A member account reported one launch template. The account's record for the region keeps the best outcome
 * seen, the worst instance-refresh outcome, and counts reports; EventBridge delivers at least once, so the
 * count is an upper bound.
 */
export async function recordLaunchTemplateUpdate(
  deps: { releases: AnnounceDeps['releases']; logger: Logger } & Partial<MaybeRolloutDeps>,
  detail: LaunchTemplateUpdated,
): Promise<AccountRecord | undefined> {
  const release = await deps.releases.get(detail.releaseId);
  if (!release) {
    deps.logger.warn('launch template update for an unknown release', {
      releaseId: detail.releaseId,
      accountId: detail.accountId,
    });
    return undefined;
  }
  const existing = release.accounts[`${detail.accountId}/${detail.region}`];
  const outcome =
    existing && OUTCOME_RANK[existing.outcome] > OUTCOME_RANK[detail.outcome]
      ? existing.outcome
      : detail.outcome;
  const refreshRank = (r: string | undefined) =>
    INSTANCE_REFRESH_SEVERITY.indexOf(r as (typeof INSTANCE_REFRESH_SEVERITY)[number]);
  const instanceRefresh =
    refreshRank(existing?.instanceRefresh) > refreshRank(detail.instanceRefresh)
      ? existing?.instanceRefresh
      : detail.instanceRefresh;
  const reported = new Date(detail.updatedAt).toISOString();
  const updatedAt = existing && existing.updatedAt > reported ? existing.updatedAt : reported;
  const record: AccountRecord = {
    accountId: detail.accountId,
    region: detail.region,
    outcome,
    // A refresh's end (`refresh` set) is a second report of a template already counted, or about to be.
    launchTemplates: (existing?.launchTemplates ?? 0) + (detail.refresh ? 0 : 1),
    updatedAt,
    ...(instanceRefresh ? { instanceRefresh } : {}),
  };
  await deps.releases.recordAccount(release.releaseId, record);
  if (deps.rollouts && deps.timer) await onLaunchTemplateReport(deps as MaybeRolloutDeps, detail);
  return record;
}
