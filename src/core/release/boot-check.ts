// The boot-check worker's step (boot-check λ, and the local boot-check loop): advance one region's boot check
// by one look — start the machine (qemu locally, a smoke instance on AWS), observe it once, and decide: the
// marker was seen (the image is shared and announced, image-ready.ts), the check failed (the region fails with
// `boot: …`, boot-gate.ts's closeFailedRegion), or "look again later" (an SQS redelivery after the visibility
// timeout). The gate that asks for the check is boot-gate.ts.
import type { BootCheckJob } from '#events/aws.ts';
import type { BootCheckRecord, BootCheckRequest, BootObservation, Release } from '#ports';
import type { BootCheckDeps } from '../deps.ts';
import { BootHostError } from '../model/errors.ts';
import { releaseTags } from '../model/naming.ts';
import { BOOT_CHECK_TAG, bootCheckId, closeFailedRegion, WAIT_BUDGET_SECONDS } from './boot-gate.ts';
import { shareAndAnnounce } from './image-ready.ts';
import { moveRegion } from './region-state.ts';

/** Console lines quoted in a failure's reason. */
const REASON_LINES = 8;

export type BootCheckOutcome =
  | {
      outcome: 'pending';
      state: 'waiting' | 'booting';
      releaseId: string;
      region: string;
      /** The host holds the boot back (full data folder, no capacity): not the image's fault. */
      hostCondition?: string;
    }
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
    await fail(deps, release, job, check, { reason });
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
  let seen: BootObservation;
  try {
    await checker.start(request);
    seen = await checker.observe(request);
  } catch (err) {
    if (!(err instanceof BootHostError)) throw err;
    seen = { state: 'waiting', hostCondition: err.message };
  }
  if (seen.state === 'waiting' && seen.hostCondition) {
    // The host's fault, not the image's: look again later, for as long as it takes.
    deps.logger.warn('boot check held back by the host', { ...ids, reason: seen.hostCondition });
    return { outcome: 'pending', state: 'waiting', ...ids, hostCondition: seen.hostCondition };
  }

  if (seen.state === 'marker-seen') {
    const stopped = await checker.stop(request);
    const passed: BootCheckRecord = {
      ...check,
      startedAt: seen.startedAt,
      passed: true,
      seconds: seen.seconds,
      consoleLog: stopped.consoleLog ?? seen.consoleLog,
    };
    await moveRegion(
      deps.releases,
      release.releaseId,
      job.region,
      { bootCheck: passed, updatedAt: now().toISOString() },
      'booting',
    );
    deps.logger.info('boot check passed', { ...ids, imageId: image.imageId, seconds: seen.seconds });
    // Read again: the record now says the check passed, and another delivery may have announced meanwhile.
    const booted = (await deps.releases.get(release.releaseId)) ?? release;
    const announced = await shareAndAnnounce(deps, booted, job.region, image);
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
    // From the request, or from when the host let go of the boot (a full data folder, no capacity).
    const waited = (now().getTime() - Date.parse(seen.since ?? check.requestedAt)) / 1000;
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
  // The console's last lines are in the reason already.
  result: { reason: string; startedAt?: string; consoleLog?: string },
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
  await moveRegion(
    deps.releases,
    release.releaseId,
    job.region,
    { bootCheck: failed, updatedAt: now.toISOString() },
    'booting',
  );
  await closeFailedRegion(deps, release, job, result.reason);
}
