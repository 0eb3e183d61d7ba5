// Rollback and pin. A rollback is a *new* release of the stream, with the next (higher) sequence, that points at
// the images of an earlier revision: subscribers follow it forward like any release, so "never backwards" holds
// while the fleet goes back to the earlier content. Regions whose earlier image is gone are rebuilt from the
// earlier revision's tarball (same object version). A pin holds new revisions back: they build and boot-check,
// but announce keeps their images to itself until unpin.
import type { FifoQueue, ImageInfo, RegionRecord, Release, RolloutStore, StreamPin } from '#ports';
import type { AnnounceDeps } from '../deps.ts';
import { streamConfig } from '../model/errors.ts';
import { announceRegionImage } from '../release/announce.ts';
import { emitReleaseStarted, queueBuildJob } from '../release/ingest.ts';
import { moveRegion } from '../release/region-state.ts';
import { RolloutStateError, releaseByRevision } from './rollout.ts';

export interface RollbackDeps extends AnnounceDeps {
  rollouts: RolloutStore;
  /** The FIFO build queue of a region, for regions whose earlier image is gone. */
  buildQueue(region: string): FifoQueue;
}

export interface RollbackResult {
  release: Release;
  rollbackOf: string;
  /** Regions announced at once with the earlier image. */
  reused: { region: string; imageId: string }[];
  /** Regions whose earlier image no longer exists: rebuilt from the earlier revision's tarball. */
  rebuilt: { region: string; reason: string }[];
}

/** The revision of the n-th rollback to `to`; AMI names allow no '+', so the suffix uses '-'. */
export function rollbackRevision(to: string, n: number): string {
  return `${to}-rollback-${n}`.slice(0, 128);
}

export async function rollback(deps: RollbackDeps, stream: string, to: string): Promise<RollbackResult> {
  const config = streamConfig(deps.config, stream, 'rollback');
  const target = await releaseByRevision(deps.releases, stream, to);
  const all = await deps.releases.list(stream);
  if (!all.some((r) => r.sequence > target.sequence))
    throw new RolloutStateError(`rollback ${stream} --to ${to}: ${to} is already the newest release`);

  // Which regions still have the earlier image, available to launch.
  const reusable = new Map<string, ImageInfo>();
  const rebuilt: RollbackResult['rebuilt'] = [];
  for (const region of config.regions) {
    const imageId = target.regions[region]?.imageId;
    const image = imageId ? await deps.imaging(region).images.get(imageId) : undefined;
    if (image?.state === 'available') reusable.set(region, image);
    else
      rebuilt.push({
        region,
        reason: imageId ? `image ${imageId} is ${image?.state ?? 'gone'}` : `${to} has no image in ${region}`,
      });
  }

  // A new release: the next free rollback revision of `to` (a retried command makes another one, which is
  // harmless: it points at the same images with a still higher sequence).
  let n = all.filter((r) => r.revision.startsWith(`${to}-rollback-`)).length + 1;
  let created: Release | undefined;
  while (!created) {
    const result = await deps.releases.create({
      stream,
      revision: rollbackRevision(to, n),
      source: target.source,
      regions: config.regions,
      uploadedAt: deps.clock.now().toISOString(),
    });
    if (result.created) created = result.release;
    else n++;
  }
  const release = created;
  // The marker announce reads: this release goes to every account at once, even past a pin to `to`.
  await deps.rollouts.put(
    {
      releaseId: release.releaseId,
      stream,
      state: 'complete',
      waves: [],
      images: {},
      rollbackOf: to,
      version: 1,
    },
    0,
  );
  await emitReleaseStarted(deps, release, config.regions);

  for (const { region } of rebuilt) await queueBuildJob(deps, release, region, config);
  const reused: RollbackResult['reused'] = [];
  for (const [region, image] of reusable) {
    // The image booted when `to` was released: its passed boot check carries over, so the gate opens at once.
    // (`image` was looked up by the target region's own imageId, so the check is of this very image.)
    const booted = target.regions[region]?.bootCheck;
    if (booted?.passed === true) {
      const record: RegionRecord = {
        state: 'available',
        imageId: image.imageId,
        snapshotId: image.snapshotId,
        bootCheck: booted,
        updatedAt: deps.clock.now().toISOString(),
      };
      await moveRegion(deps.releases, release.releaseId, region, record);
      release.regions[region] = record;
    }
    await announceRegionImage(deps, release, region, image);
    reused.push({ region, imageId: image.imageId });
  }
  deps.logger.info('rollback', { releaseId: release.releaseId, to, reused, rebuilt });
  return { release, rollbackOf: to, reused, rebuilt };
}

/** `stemcell pin`: new revisions of the stream build and boot-check but are not announced. */
export async function pin(
  deps: Pick<RollbackDeps, 'releases' | 'rollouts' | 'clock'>,
  stream: string,
  revision: string,
): Promise<StreamPin> {
  await releaseByRevision(deps.releases, stream, revision);
  const value = { stream, revision, pinnedAt: deps.clock.now().toISOString() };
  await deps.rollouts.setPin(stream, value);
  return value;
}

/**
 * `stemcell unpin`: the pin goes, and the newest release that it held back (regions built and available, not
 * announced) is announced now.
 */
export async function unpin(
  deps: RollbackDeps,
  stream: string,
): Promise<{ announced?: { releaseId: string; regions: string[] } }> {
  await deps.rollouts.setPin(stream, undefined);
  const newest = (await deps.releases.list(stream)).sort((a, b) => b.sequence - a.sequence)[0];
  if (!newest) return {};
  const regions: string[] = [];
  for (const [region, record] of Object.entries(newest.regions)) {
    if (record.state !== 'available' || !record.imageId) continue;
    const image = await deps.imaging(region).images.get(record.imageId);
    if (image?.state !== 'available') continue;
    await announceRegionImage(deps, newest, region, image);
    regions.push(region);
  }
  return regions.length > 0 ? { announced: { releaseId: newest.releaseId, regions } } : {};
}

/**
 * Images expire must keep in a region: the pinned revision's image, and the images rollback releases point at.
 * imageId → why.
 */
export async function protectedImages(
  deps: Pick<RollbackDeps, 'releases' | 'rollouts'>,
  stream: string,
  region: string,
): Promise<Map<string, string>> {
  const kept = new Map<string, string>();
  const releases = await deps.releases.list(stream);
  const pinned = await deps.rollouts.getPin(stream);
  for (const release of releases) {
    const imageId = release.regions[region]?.imageId;
    if (!imageId) continue;
    if (pinned && release.revision === pinned.revision) kept.set(imageId, `pinned (${pinned.revision})`);
    const marker = await deps.rollouts.get(release.releaseId);
    if (marker?.rollbackOf) kept.set(imageId, `rolled back to (${release.revision})`);
  }
  return kept;
}
