// Rollback and pin. A rollback is a *new* release of the stream, with the next (higher) sequence, that points at
// the images of an earlier revision: subscribers follow it forward like any release, so "never backwards" holds
// while the fleet goes back to the earlier content. Regions whose earlier image is gone are rebuilt from the
// earlier revision's tarball (same object version). A pin holds new revisions back: they build and boot-check,
// but announce keeps their images to itself until unpin.
import type { FifoQueue, Release, RollbackIntent, RolloutStore, StreamPin } from '#ports';
import type { AnnounceDeps } from '../deps.ts';
import { streamConfig } from '../model/errors.ts';
import { announceRegionImage } from '../release/announce.ts';
import { recordBuildFailure } from '../release/build-failure.ts';
import { emitReleaseStarted, queueBuildJob } from '../release/ingest.ts';
import { moveRegion } from '../release/region-state.ts';

import { RolloutStateError, releaseByRevision } from './rollout.ts';

export interface RollbackDeps extends AnnounceDeps {
  rollouts: RolloutStore;
  /** The FIFO build queue of a region, for regions whose earlier image is gone. */
  buildQueue(region: string): FifoQueue;
  /** Crash-test hook, passed after each durable step (src/local/kill-points.ts). */
  checkpoint?: (point: string) => void;
}

/** What finishing a rollback needs: the reconciler may lack a build queue (then rebuilt regions wait). */
export type FinishRollbackDeps = Omit<RollbackDeps, 'buildQueue'> & Partial<Pick<RollbackDeps, 'buildQueue'>>;

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

/**
 * A new release that points at an earlier revision's images. Its first write holds its whole intent (which
 * images, which regions), in the same atomic step that takes its sequence; everything after it is finished by
 * finishRollback, here or, after a crash, by the reconciler.
 */
export async function rollback(deps: RollbackDeps, stream: string, to: string): Promise<RollbackResult> {
  const config = streamConfig(deps.config, stream, 'rollback');
  const target = await releaseByRevision(deps.releases, stream, to);
  const all = await deps.releases.list(stream);
  if (!all.some((r) => r.sequence > target.sequence))
    throw new RolloutStateError(`rollback ${stream} --to ${to}: ${to} is already the newest release`);

  // Which regions still have the earlier image, available to launch.
  const intent: RollbackIntent = { of: to, images: {}, rebuild: {} };
  for (const region of config.regions) {
    const imageId = target.regions[region]?.imageId;
    const image = imageId ? await deps.imaging(region).images.get(imageId) : undefined;
    if (image?.state === 'available') {
      // The image booted when `to` was released: its passed boot check carries over, so the gate opens at
      // once. (`image` was looked up by the target region's own imageId, so the check is of this very image.)
      const booted = target.regions[region]?.bootCheck;
      intent.images[region] = {
        imageId: image.imageId,
        snapshotId: image.snapshotId,
        ...(booted?.passed === true ? { bootCheck: booted } : {}),
      };
    } else
      intent.rebuild[region] = imageId
        ? `image ${imageId} is ${image?.state ?? 'gone'}`
        : `${to} has no image in ${region}`;
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
      rollback: intent,
    });
    if (result.created) created = result.release;
    else n++;
  }
  const release = created;
  deps.checkpoint?.('rollback:recorded');
  await emitReleaseStarted(deps, release, config.regions);
  await finishRollback(deps, release);
  const reused = Object.entries(intent.images).map(([region, i]) => ({ region, imageId: i.imageId }));
  const rebuilt = Object.entries(intent.rebuild).map(([region, reason]) => ({ region, reason }));
  deps.logger.info('rollback', { releaseId: release.releaseId, to, reused, rebuilt });
  return { release, rollbackOf: to, reused, rebuilt };
}

/**
 * Drives a rollback release from its recorded intent to its end; every step is idempotent, so the command and
 * the reconciler (after a crash anywhere in between) run the same code: the marker announce reads, the rebuild
 * jobs of regions still queued, and each reused region made available and announced under the rollback's own
 * release id. Returns the regions announced by this call.
 */
export async function finishRollback(deps: FinishRollbackDeps, release: Release): Promise<string[]> {
  const intent = release.rollback;
  if (!intent || release.completedAt) return [];
  const marker = await deps.rollouts.get(release.releaseId);
  if (marker?.state === 'aborted') return [];
  // The marker announce reads: this release goes to every account at once, even past a pin to `to`.
  if (!marker)
    await deps.rollouts.put(
      {
        releaseId: release.releaseId,
        stream: release.stream,
        state: 'complete',
        waves: [],
        images: {},
        rollbackOf: intent.of,
        version: 1,
      },
      0,
    );
  deps.checkpoint?.('rollback:marker');

  const config = streamConfig(deps.config, release.stream, `rollback ${release.releaseId}`);
  for (const region of Object.keys(intent.rebuild).sort()) {
    if (release.regions[region]?.state !== 'queued') continue;
    if (deps.buildQueue) await queueBuildJob({ buildQueue: deps.buildQueue }, release, region, config);
  }
  const announced: string[] = [];
  // The crash test's point between an "Image Ready" the bus accepted and the region recording it.
  const checkpoint = deps.checkpoint;
  const announcing: FinishRollbackDeps = checkpoint
    ? {
        ...deps,
        events: {
          publish: async (events) => {
            await deps.events.publish(events);
            if (events.some((e) => e.detailType === 'Image Ready')) checkpoint('rollback:delivered');
          },
        },
      }
    : deps;
  for (const [region, reused] of Object.entries(intent.images).sort(([a], [b]) => a.localeCompare(b))) {
    if (release.regions[region]?.state === 'queued') {
      await moveRegion(deps.releases, release.releaseId, region, {
        state: 'available',
        imageId: reused.imageId,
        snapshotId: reused.snapshotId,
        ...(reused.bootCheck ? { bootCheck: reused.bootCheck } : {}),
        updatedAt: deps.clock.now().toISOString(),
      });
    }
    const current = await deps.releases.get(release.releaseId);
    const state = current?.regions[region]?.state;
    if (!current || (state !== 'available' && state !== 'booting')) continue;
    const image = await deps.imaging(region).images.get(reused.imageId);
    if (image?.state !== 'available') {
      // Expire keeps rolled-back-to images, so only a hand could have removed it meanwhile.
      await recordBuildFailure(deps, {
        releaseId: release.releaseId,
        region,
        reason: `rollback to ${intent.of}: image ${reused.imageId} is ${image?.state ?? 'gone'}`,
        attempts: 0,
      });
      continue;
    }
    const result = await announceRegionImage(announcing, current, region, image);
    if (result.outcome === 'announced') announced.push(region);
  }
  return announced;
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
    // A rollback's intent names its image before its region records it (a crash can come in between).
    const imageId = release.regions[region]?.imageId ?? release.rollback?.images[region]?.imageId;
    if (!imageId) continue;
    if (pinned && release.revision === pinned.revision) kept.set(imageId, `pinned (${pinned.revision})`);
    // The intent is recorded with the release itself; the marker follows it (and stands alone in older data).
    if (release.rollback || (await deps.rollouts.get(release.releaseId))?.rollbackOf)
      kept.set(imageId, `rolled back to (${release.revision})`);
  }
  return kept;
}
