// The boot gate: between "AMI available" and "Image Ready", each region's image is booted (qemu locally, a
// smoke instance on AWS) and only an image whose serial console showed the stream's marker within the timeout
// is announced. A boot that fails ends the region in "Build Failed" with reason `boot: …`; the image is kept
// for a look, deprecated and tagged with why.
//
// It is two steps so that no Lambda ever waits for a boot. announce asks (bootGate, here: record `booting`, queue
// a BootCheckJob); the boot-check worker advances the check one look at a time (boot-check.ts). Every step is
// idempotent, so duplicates and a reconciler re-driving `booting` regions are harmless.
import type { StreamConfig } from '#config/schema.ts';
import type { BootCheckJob } from '#events/aws.ts';
import type { BootCheckRecord, ImageInfo, Release } from '#ports';
import type { AnnounceDeps } from '../deps.ts';
import { streamConfig } from '../model/errors.ts';
import { recordBuildFailure } from './build-failure.ts';
import { moveRegion } from './region-state.ts';

/** Tag on an image whose boot check failed, and on every smoke instance (value: the check id). */
export const BOOT_CHECK_TAG = 'stemcell:boot-check';
/** How long a check may wait for a machine (a free qemu slot, a pending instance) before it counts as failed. */
export const WAIT_BUDGET_SECONDS = 600;

export type BootCheckMode = 'qemu' | 'instance' | 'none';

/** The check a stream's images get here: none for data-only streams; the world's default when unnamed. */
export function bootCheckMode(
  deps: Pick<AnnounceDeps, 'defaultBootCheckMode'>,
  stream: Pick<StreamConfig, 'bootCheck' | 'bootMode'>,
): BootCheckMode {
  if (stream.bootMode === 'none') return 'none';
  return stream.bootCheck.mode ?? deps.defaultBootCheckMode ?? 'instance';
}

/** One check per release and region; also the smoke instance's ClientToken and the FIFO deduplication id. */
export function bootCheckId(releaseId: string, region: string): string {
  return `boot-${releaseId.replace(/[^A-Za-z0-9-]/g, '-')}-${region}`;
}

export type GateVerdict =
  /** Announce now: no check for this stream, or it passed. */
  | { gate: 'open' }
  /** A check was asked for (or is running): announce later, from the boot-check worker. */
  | { gate: 'checking' }
  /** Never announce this image here: its region failed. */
  | { gate: 'closed'; reason: string };

/** Called by announce for an available image: may it be announced now, or must it boot first? */
export async function bootGate(
  deps: AnnounceDeps,
  input: { release: Release; region: string; image: ImageInfo },
): Promise<GateVerdict> {
  const { release, region, image } = input;
  const config = streamConfig(deps.config, release.stream, `image ${image.imageId} in ${region}`);
  const mode = bootCheckMode(deps, config);
  if (mode === 'none') return { gate: 'open' };
  const record = release.regions[region];
  if (record?.state === 'announced') return { gate: 'open' };
  if (record?.state === 'failed')
    return { gate: 'closed', reason: record.reason ?? `region ${region} of ${release.releaseId} failed` };
  if (record?.bootCheck?.passed === true && record.imageId === image.imageId) return { gate: 'open' };
  if (record?.state === 'booting' && record.bootCheck?.passed === false) {
    // The check failed and was recorded, but the process died before the region did (a reconciler re-drive).
    const reason = record.bootCheck.reason ?? `boot: check of ${image.imageId} failed`;
    await closeFailedRegion(deps, release, { region, imageId: image.imageId }, reason);
    return { gate: 'closed', reason };
  }
  if (!deps.bootChecks)
    throw new Error(
      `stream ${release.stream}: bootCheck mode ${mode} needs the boot-check queue, and none is configured ` +
        '(set bootCheck.mode: none with allowUnverified to skip booting)',
    );
  if (record?.state !== 'booting') {
    const bootCheck: BootCheckRecord = {
      mode,
      marker: config.bootCheck.marker,
      timeoutSeconds: config.bootCheck.timeoutSeconds,
      requestedAt: deps.clock.now().toISOString(),
    };
    const moved = await moveRegion(deps.releases, release.releaseId, region, {
      state: 'booting',
      imageId: image.imageId,
      snapshotId: image.snapshotId,
      bootCheck,
      updatedAt: bootCheck.requestedAt,
    });
    if (!moved) {
      // Someone else moved the region meanwhile (another delivery asked first, or it failed): look again.
      const again = (await deps.releases.get(release.releaseId))?.regions[region];
      if (again?.state === 'failed') return { gate: 'closed', reason: again.reason ?? 'failed' };
      if (again?.state === 'announced') return { gate: 'open' };
    }
  }
  // Sent every time (a reconciler re-drives `booting` regions this way); FIFO deduplication drops repeats.
  const job: BootCheckJob = { version: 1, releaseId: release.releaseId, region, imageId: image.imageId };
  await deps.bootChecks.send(
    JSON.stringify(job),
    `${release.releaseId}/${region}`,
    bootCheckId(release.releaseId, region),
  );
  deps.logger.info('boot check requested', {
    releaseId: release.releaseId,
    region,
    imageId: image.imageId,
    mode,
  });
  return { gate: 'checking' };
}

/**
 * After a failed check is recorded: the image kept for a look (deprecated, tagged with why), the region failed
 * with "Build Failed". Each step is idempotent, so a re-drive after a crash in between finishes the rest.
 */
export async function closeFailedRegion(
  deps: AnnounceDeps,
  release: Release,
  at: { region: string; imageId: string },
  reason: string,
): Promise<void> {
  const { images } = deps.imaging(at.region);
  if (await images.get(at.imageId)) {
    // AWS tag values hold at most 256 characters: the first line says enough, the console log the rest.
    const why = (reason.split('\n')[0] ?? reason).slice(0, 256);
    await images.tag(at.imageId, { [BOOT_CHECK_TAG]: why });
    await images.deprecate(at.imageId, deps.clock.now());
  }
  await recordBuildFailure(deps, {
    releaseId: release.releaseId,
    region: at.region,
    reason,
    attempts: release.regions[at.region]?.attempts ?? 1,
  });
}
