// The boot gate: between "AMI available" and "Image Ready", each region's image is booted (qemu locally, a
// smoke instance on AWS) and only an image whose serial console showed the stream's marker within the timeout
// is announced. A boot that fails ends the region in "Build Failed" with reason `boot: …`; the image is kept
// for a look, deprecated and tagged with why.
//
// It is two steps so that no Lambda ever waits for a boot. announce asks (bootGate: record `booting`, queue a
// BootCheckJob); the boot-check worker advances the check one look at a time (advanceBootCheck: start the
// machine, observe it once, decide or come back later — an SQS redelivery after the visibility timeout). Every
// step is idempotent, so duplicates and a reconciler re-driving `booting` regions are harmless.
import type { StreamConfig } from '#config/schema.ts';
import type { BootCheckJob } from '#events/aws.ts';
import type { BootCheckRecord, BootCheckRequest, ImageInfo, RegionState, Release } from '#ports';
import type { AnnounceDeps, BootCheckDeps } from '../deps.ts';
import { streamConfig } from '../model/errors.ts';
import { releaseTags } from '../model/naming.ts';
import { announceImage } from './announce.ts';
import { recordBuildFailure } from './build-failure.ts';

/** Tag on an image whose boot check failed, and on every smoke instance (value: the check id). */
export const BOOT_CHECK_TAG = 'stemcell:boot-check';
/** How long a check may wait for a machine (a free qemu slot, a pending instance) before it counts as failed. */
export const WAIT_BUDGET_SECONDS = 600;
/** Console lines quoted in a failure's reason. */
const REASON_LINES = 8;

const BEFORE_BOOT: RegionState[] = ['queued', 'building', 'snapshotting', 'registering', 'available'];

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
    const moved = await deps.releases.updateRegion(
      release.releaseId,
      region,
      {
        state: 'booting',
        imageId: image.imageId,
        snapshotId: image.snapshotId,
        bootCheck,
        updatedAt: bootCheck.requestedAt,
      },
      { stateIn: BEFORE_BOOT },
    );
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

export type BootCheckOutcome =
  | { outcome: 'pending'; state: 'waiting' | 'booting'; releaseId: string; region: string }
  | { outcome: 'passed'; releaseId: string; region: string; seconds: number; announced: boolean }
  | { outcome: 'failed'; releaseId: string; region: string; reason: string }
  | { outcome: 'skipped'; reason: string };

/**
 * One look at a region's boot check: starts the machine if needed, observes it once, decides. `pending` means
 * "look again later" (the worker leaves the job on its queue).
 */
export async function advanceBootCheck(deps: BootCheckDeps, job: BootCheckJob): Promise<BootCheckOutcome> {
  const release = await deps.releases.get(job.releaseId);
  const record = release?.regions[job.region];
  if (!release || !record)
    return { outcome: 'skipped', reason: `no region ${job.region} in ${job.releaseId}` };
  const check = record.bootCheck;
  if (record.state !== 'booting' || !check || check.passed !== undefined)
    return { outcome: 'skipped', reason: `region ${job.region} of ${job.releaseId} is ${record.state}` };
  if (check.mode !== 'qemu' && check.mode !== 'instance')
    return { outcome: 'skipped', reason: `boot check mode ${String(check.mode)}` };
  const ids = { releaseId: release.releaseId, region: job.region };
  const { images } = deps.imaging(job.region);
  const image = await images.get(job.imageId);
  if (image?.state !== 'available' || image.bootMode === 'none') {
    const reason = `boot: image ${job.imageId} is ${image ? `${image.state} (${image.bootMode})` : 'gone'}`;
    await fail(deps, release, job, check, { reason, lastLines: [] });
    return { outcome: 'failed', ...ids, reason };
  }
  const request: BootCheckRequest = {
    checkId: bootCheckId(release.releaseId, job.region),
    region: job.region,
    imageId: image.imageId,
    architecture: image.architecture,
    bootMode: image.bootMode,
    marker: check.marker,
    timeoutSeconds: check.timeoutSeconds,
    tags: { ...releaseTags(release), [BOOT_CHECK_TAG]: bootCheckId(release.releaseId, job.region) },
  };
  const checker = deps.bootChecker(job.region, check.mode);
  const now = () => deps.clock.now();
  // Idempotent: a running check is left alone; one the checker lost (a restart) is started again.
  await checker.start(request);
  const seen = await checker.observe(request);

  if (seen.state === 'marker-seen') {
    const stopped = await checker.stop(request);
    const passed: BootCheckRecord = {
      ...check,
      startedAt: seen.startedAt,
      passed: true,
      seconds: seen.seconds,
      consoleLog: stopped.consoleLog ?? seen.consoleLog,
    };
    await deps.releases.updateRegion(
      release.releaseId,
      job.region,
      { bootCheck: passed, updatedAt: now().toISOString() },
      { stateIn: ['booting'] },
    );
    deps.logger.info('boot check passed', { ...ids, imageId: image.imageId, seconds: seen.seconds });
    const announced = await announceImage(deps, {
      region: job.region,
      imageId: image.imageId,
      state: 'available',
      errorMessage: '',
    });
    return { outcome: 'passed', ...ids, seconds: seen.seconds, announced: announced.outcome === 'announced' };
  }

  let failure: string | undefined;
  let startedAt: string | undefined;
  if (seen.state === 'stopped') {
    failure = seen.reason;
    startedAt = seen.startedAt;
  } else if (seen.state === 'booting') {
    startedAt = seen.startedAt;
    const elapsed = (now().getTime() - Date.parse(seen.startedAt)) / 1000;
    if (elapsed > check.timeoutSeconds)
      failure = `"${check.marker}" not seen within ${check.timeoutSeconds} s`;
  } else {
    const waited = (now().getTime() - Date.parse(check.requestedAt)) / 1000;
    if (waited > check.timeoutSeconds + WAIT_BUDGET_SECONDS)
      failure = `no ${check.mode === 'qemu' ? 'qemu slot' : 'running smoke instance'} within ${Math.round(waited)} s`;
  }
  if (failure === undefined)
    return { outcome: 'pending', state: seen.state as 'waiting' | 'booting', ...ids };

  const stopped = await checker.stop(request);
  const lastLines =
    stopped.lastLines.length > 0 ? stopped.lastLines : seen.state === 'waiting' ? [] : seen.lastLines;
  const reason = `boot: ${failure}${formatLines(lastLines)}`;
  await fail(deps, release, job, check, {
    reason,
    lastLines,
    ...(startedAt ? { startedAt } : {}),
    ...(stopped.consoleLog ? { consoleLog: stopped.consoleLog } : {}),
  });
  return { outcome: 'failed', ...ids, reason };
}

/** Printable console lines, newest last: control sequences (firmware screen painting) removed. */
export function consoleLines(text: string, count = 20): string[] {
  return (
    text
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping terminal escapes is the point
      .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping terminal escapes is the point
      .replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '')
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l.trim() !== '')
      .slice(-count)
  );
}

function formatLines(lines: string[]): string {
  const last = lines.slice(-REASON_LINES);
  return last.length === 0
    ? ''
    : `; last console lines:\n${last.map((l) => `  ${l.slice(0, 200)}`).join('\n')}`;
}

/** Records the failed check, keeps the image for a look (deprecated, tagged with why) and fails the region. */
async function fail(
  deps: BootCheckDeps,
  release: Release,
  job: BootCheckJob,
  check: BootCheckRecord,
  result: { reason: string; lastLines: string[]; startedAt?: string; consoleLog?: string },
): Promise<void> {
  const now = deps.clock.now();
  const failed: BootCheckRecord = {
    ...check,
    passed: false,
    reason: result.reason,
    ...(result.startedAt
      ? { startedAt: result.startedAt, seconds: (now.getTime() - Date.parse(result.startedAt)) / 1000 }
      : {}),
    ...(result.consoleLog ? { consoleLog: result.consoleLog } : {}),
  };
  await deps.releases.updateRegion(
    release.releaseId,
    job.region,
    { bootCheck: failed, updatedAt: now.toISOString() },
    { stateIn: ['booting'] },
  );
  await closeFailedRegion(deps, release, job, result.reason);
}

/**
 * After a failed check is recorded: the image kept for a look (deprecated, tagged with why), the region failed
 * with "Build Failed". Each step is idempotent, so a re-drive after a crash in between finishes the rest.
 */
async function closeFailedRegion(
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
