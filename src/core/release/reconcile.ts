// reconcile: finishes what a crash interrupted. Every step of the flow is triggered by an event or a message;
// a process killed between doing a step and emitting what triggers the next one strands the release. The
// reconciler compares each unfinished release's recorded state with the resources and re-drives the step that
// is missing, through the same idempotent core functions the handlers call:
// - a build job that ran out of attempts (in the DLQ) → the region fails, with its reason and "Build Failed";
// - a completed snapshot with no image → register it;
// - a rollback cut short → finished from the intent its release recorded in its first write (its own release id,
//   never the images' tags, which name the earlier release);
// - an available image not announced → announce it, through the boot gate like announce λ: an image that has
//   not booted gets its boot check (asked again for a region left `booting`, the job deduplicated), one whose
//   check passed is announced, one whose check failed fails its region — never "Image Ready" before a boot;
// - an announced image some account of the audience never reported on → "Image Ready" to that account again
//   (its subscriber's idempotent path also repairs a template version created but not made default);
// - an account that joined the audience later → the newest announced image of each of its streams.
// It runs at start and periodically in local mode, and as a scheduled Lambda on AWS.
import { BuildJob } from '#events/aws.ts';
import type { Release } from '#ports';
import type { ReconcileDeps } from '../deps.ts';
import { desiredAudiences } from '../members/forwarding-rules.ts';
import { stemcellEvent } from '../model/emit.ts';
import { memberBusArn } from '../model/naming.ts';
import { finishRollback } from '../rollout/rollback.ts';
import { admits, mayReannounce, releaseAudience } from '../rollout/rollout.ts';
import { announceRegionImage } from './announce.ts';
import { recordBuildFailure } from './build-failure.ts';
import { completeIfAllAnnounced, imageArn, imageReadyDetail } from './image-ready.ts';
import { registerSnapshot } from './register.ts';

export interface ReconcileOptions {
  /**
   * An account that has not reported this long after a region was announced gets "Image Ready" again.
   * @defaultValue 120000 (2 minutes)
   */
  reportTimeoutMs?: number;
  /**
   * Redeliveries stop this long after the announcement (an account without tagged launch templates never
   * reports, and need not be told forever).
   * @defaultValue 3600000 (1 hour)
   */
  redeliverForMs?: number;
}

export interface ReconcileReport {
  failed: Array<{ releaseId: string; region: string; reason: string }>;
  registered: Array<{ releaseId: string; region: string; imageId: string }>;
  announced: Array<{ releaseId: string; region: string; imageId: string }>;
  redelivered: Array<{ releaseId: string; region: string; accountId: string }>;
}

const DLQ_VISIBILITY_SECONDS = 60;

export async function reconcile(deps: ReconcileDeps, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  const report: ReconcileReport = { failed: [], registered: [], announced: [], redelivered: [] };
  await failExhaustedJobs(deps, report);
  const releases = await deps.releases.list();
  for (const release of releases) {
    for (const [region, record] of Object.entries(release.regions)) {
      if (record.state === 'snapshotting' && record.snapshotId) {
        const snapshot = await deps.imaging(region).snapshots.get(record.snapshotId);
        if (!snapshot || snapshot.state === 'pending') continue;
        const result = await registerSnapshot(deps, {
          region,
          snapshotId: record.snapshotId,
          result: snapshot.state === 'completed' ? 'succeeded' : 'failed',
          cause: snapshot.state === 'error' ? 'snapshot in error state (found by the reconciler)' : '',
        });
        if (result.outcome === 'registered' || result.outcome === 'already-registered')
          report.registered.push({ releaseId: release.releaseId, region, imageId: result.imageId });
        else if (result.outcome === 'failed')
          report.failed.push({ releaseId: release.releaseId, region, reason: 'snapshot failed' });
      }
    }
  }
  // A rollback (or a retried one) cut short after its first write: finish it from its recorded intent.
  if (deps.rollouts) {
    const rollouts = deps.rollouts;
    for (const release of await deps.releases.list()) {
      if (!release.rollback || release.completedAt) continue;
      for (const region of await finishRollback({ ...deps, rollouts }, release))
        report.announced.push({
          releaseId: release.releaseId,
          region,
          imageId: release.rollback.images[region]?.imageId ?? '',
        });
    }
  }
  // Registered (now or before) but not announced: announce, once the image is available — announcing opens
  // the boot gate only for an image that booted. Always as the release that records the region: a rollback's
  // images carry the tags of the earlier release.
  const UNANNOUNCED = ['registering', 'available', 'booting'];
  for (const release of await deps.releases.list()) {
    for (const [region, record] of Object.entries(release.regions)) {
      if (!UNANNOUNCED.includes(record.state) || !record.imageId) continue;
      // Held back by a pin or a halted rollout: announce would only hold it again.
      if (!(await mayReannounce(deps, release, region))) continue;
      const image = await deps.imaging(region).images.get(record.imageId);
      if (!image || (image.state !== 'available' && image.state !== 'failed')) continue;
      if (image.state === 'failed') {
        await recordBuildFailure(deps, {
          releaseId: release.releaseId,
          region,
          reason: `image ${record.imageId} failed: image failed (found by the reconciler)`,
          attempts: 1,
        });
        continue;
      }
      const result = await announceRegionImage(deps, release, region, image);
      if (result.outcome === 'announced')
        report.announced.push({ releaseId: release.releaseId, region, imageId: result.imageId });
    }
  }
  // Every region announced but the release never marked complete: a crash between the last region's
  // announcement and the completion check (which only an announcement or a bake timer runs). Completing is
  // idempotent and still waits for the rollout to finish.
  for (const release of await deps.releases.list()) {
    if (release.completedAt) continue;
    const regions = Object.values(release.regions);
    if (regions.length === 0 || !regions.every((r) => r.state === 'announced')) continue;
    if (await completeIfAllAnnounced(deps, release.releaseId))
      deps.logger.info('release completed by the reconciler', { releaseId: release.releaseId });
  }
  await redeliverUnreported(deps, await deps.releases.list(), opts, report);
  if (report.failed.length + report.registered.length + report.announced.length + report.redelivered.length)
    deps.logger.info('reconciled', { ...report });
  return report;
}

/** Consumes each region's build DLQ: a job there ran out of attempts, whether the builder said so or died. */
async function failExhaustedJobs(deps: ReconcileDeps, report: ReconcileReport): Promise<void> {
  if (!deps.buildDeadLetters) return;
  const regions = [...new Set(Object.values(deps.config.streams).flatMap((s) => s.regions))];
  for (const region of regions) {
    const dlq = deps.buildDeadLetters(region);
    for (;;) {
      const messages = await dlq.receive({ max: 10, visibilityTimeoutSeconds: DLQ_VISIBILITY_SECONDS });
      if (messages.length === 0) break;
      for (const message of messages) {
        const parsed = BuildJob.safeParse(safeJson(message.body));
        if (!parsed.success) {
          deps.logger.error('unreadable job in the build DLQ: dropped', {
            region,
            messageId: message.messageId,
          });
          await dlq.delete(message.receiptHandle);
          continue;
        }
        const job = parsed.data;
        const release = await deps.releases.get(job.releaseId);
        const record = release?.regions[job.region];
        // The DLQ's own receive counts too; the builder's count of claims is the better figure.
        const attempts = record?.attempts ?? Math.max(1, message.receiveCount - 1);
        const last = record?.reason ? `; last error: ${record.reason}` : '';
        const reason = `build attempts exhausted (${attempts})${last || '; the builder stopped without reporting (crashed or killed)'}`;
        if (release) {
          const { published } = await recordBuildFailure(deps, {
            releaseId: job.releaseId,
            region: job.region,
            reason,
            attempts,
          });
          if (published) report.failed.push({ releaseId: job.releaseId, region: job.region, reason });
        }
        await dlq.delete(message.receiptHandle);
      }
    }
  }
}

/** For each stream, region and account of the audience: the newest announced release of that stream. */
async function newestAnnounced(releases: Release[]): Promise<Map<string, Release>> {
  const newest = new Map<string, Release>();
  for (const release of releases) {
    for (const [region, record] of Object.entries(release.regions)) {
      if (record.state !== 'announced' || !record.imageId) continue;
      const key = `${release.stream}/${region}`;
      const held = newest.get(key);
      if (!held || held.sequence < release.sequence) newest.set(key, release);
    }
  }
  return newest;
}

/** Accounts per stream, from the same audience sync-subscribers computes. */
async function accountsByStream(deps: ReconcileDeps): Promise<Map<string, string[]>> {
  const byStream = new Map<string, string[]>();
  for (const audience of await desiredAudiences(deps)) {
    for (const stream of audience.streams ?? Object.keys(deps.config.streams)) {
      byStream.set(stream, [...(byStream.get(stream) ?? []), ...audience.accountIds]);
    }
  }
  return byStream;
}

async function redeliverUnreported(
  deps: ReconcileDeps,
  releases: Release[],
  opts: ReconcileOptions,
  report: ReconcileReport,
): Promise<void> {
  const timeout = opts.reportTimeoutMs ?? 120_000;
  const window = opts.redeliverForMs ?? 3_600_000;
  const now = deps.clock.now().getTime();
  const audience = await accountsByStream(deps);
  for (const [key, release] of await newestAnnounced(releases)) {
    const region = key.slice(key.indexOf('/') + 1);
    const record = release.regions[region];
    if (!record) continue;
    const age = now - new Date(record.updatedAt).getTime();
    if (age < timeout || age > window) continue;
    // Waves and pins decide who may hear it: never an account of a later wave, nor past a pin or a halt.
    const allowed = await releaseAudience(deps, release, region);
    const missing = (audience.get(release.stream) ?? []).filter(
      (a) => !release.accounts[`${a}/${region}`] && admits(allowed, a),
    );
    for (const accountId of missing) {
      if (await deliverImageReady(deps, release, region, accountId))
        report.redelivered.push({ releaseId: release.releaseId, region, accountId });
    }
  }
}

/**
 * Late joiners: accounts that entered a stream's audience get the newest announced image of each of their
 * streams, in every region, without waiting for the next release. Returns what was delivered. An account whose
 * bus refuses (its member stack not deployed yet) is logged and skipped: it does not keep the others waiting.
 */
export async function deliverLatestTo(
  deps: ReconcileDeps,
  accountIds: string[],
): Promise<ReconcileReport['redelivered']> {
  const delivered: ReconcileReport['redelivered'] = [];
  if (accountIds.length === 0) return delivered;
  const audience = await accountsByStream(deps);
  // Per stream and region, newest first: each account gets the newest release it may hear (a rollout still in
  // its early waves, or a pinned stream, leaves it on the release before).
  const served = new Set<string>();
  const releases = (await deps.releases.list()).sort((a, b) => b.sequence - a.sequence);
  for (const release of releases) {
    for (const [region, record] of Object.entries(release.regions)) {
      if (record.state !== 'announced' || !record.imageId) continue;
      const waiting = accountIds.filter(
        (a) =>
          (audience.get(release.stream) ?? []).includes(a) && !served.has(`${release.stream}/${region}/${a}`),
      );
      if (waiting.length === 0) continue;
      const allowed = await releaseAudience(deps, release, region);
      for (const accountId of waiting) {
        if (!admits(allowed, accountId)) continue;
        served.add(`${release.stream}/${region}/${accountId}`);
        try {
          if (await deliverImageReady(deps, release, region, accountId))
            delivered.push({ releaseId: release.releaseId, region, accountId });
        } catch (err) {
          deps.logger.error('latest image not delivered to a new account', {
            accountId,
            region,
            releaseId: release.releaseId,
            error: (err as Error).message,
          });
        }
      }
    }
  }
  // Reported by region and account (the deliveries went newest release first).
  delivered.sort(
    (a, b) =>
      a.region.localeCompare(b.region) ||
      a.accountId.localeCompare(b.accountId) ||
      a.releaseId.localeCompare(b.releaseId),
  );
  if (delivered.length > 0) deps.logger.info('latest images delivered to new accounts', { delivered });
  return delivered;
}

/** "Image Ready" straight to one member account's bus (its policy lets the publisher in). */
async function deliverImageReady(
  deps: ReconcileDeps,
  release: Release,
  region: string,
  accountId: string,
): Promise<boolean> {
  const imageId = release.regions[region]?.imageId;
  if (!imageId) return false;
  const image = await deps.imaging(region).images.get(imageId);
  if (image?.state !== 'available') return false;
  const bus = memberBusArn(deps.config.homeRegion, accountId, deps.memberBusName);
  await deps.events.publish([
    stemcellEvent('Image Ready', imageReadyDetail(release, region, image), bus, [imageArn(region, imageId)]),
  ]);
  return true;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
