// ingest: a tarball landed in the bucket. Record the release (which assigns its sequence), send one build job
// per target region, announce "Release Started".

import type { StreamConfig } from '#config/schema.ts';
import { BuildJob, type ObjectCreatedEnvelope } from '#events/aws.ts';
import type { Release, SourceRef } from '#ports';
import type { IngestDeps } from '../deps.ts';
import { emit } from '../model/emit.ts';
import { RevisionConflictError, streamConfig } from '../model/errors.ts';
import {
  buildJobDeduplicationId,
  decodeEventKey,
  parseObjectKey,
  SHA256_METADATA_KEY,
} from '../model/naming.ts';

export interface ObjectCreated {
  bucket: string;
  key: string;
  etag: string;
  size?: number;
  versionId?: string;
  /** When S3 saw the upload (the event's time). */
  time: string;
}

export function objectCreatedFromEvent(event: ObjectCreatedEnvelope): ObjectCreated {
  const { bucket, object } = event.detail;
  if (!object.etag) {
    throw new Error(
      `S3 event for ${object.key} in ${bucket.name} carries no etag: not an Object Created event`,
    );
  }
  return {
    bucket: bucket.name,
    key: decodeEventKey(object.key),
    etag: object.etag,
    ...(object.size !== undefined ? { size: object.size } : {}),
    ...(object['version-id'] ? { versionId: object['version-id'] } : {}),
    time: new Date(event.time).toISOString(),
  };
}

export interface IngestResult {
  release: Release;
  /** False for a duplicate event of a release that already exists. */
  created: boolean;
  /** Regions a build job was sent to in this call. */
  enqueued: string[];
  /** Set when the upload was refused: other content under a revision already published. */
  rejected?: string;
}

const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

export async function ingest(deps: IngestDeps, object: ObjectCreated): Promise<IngestResult> {
  const { stream, revision } = parseObjectKey(object.key);
  const config = streamConfig(deps.config, stream, `object key ${object.key}`);

  const source: SourceRef = {
    bucket: object.bucket,
    key: object.key,
    etag: unquote(object.etag),
    ...(object.versionId ? { versionId: object.versionId } : {}),
  };
  const sha256 = await publishedSha256(deps, object);
  if (sha256) source.sha256 = sha256;

  const { release, created } = await deps.releases.create({
    stream,
    revision,
    source,
    regions: config.regions,
    uploadedAt: object.time,
  });
  if (!created && unquote(release.source.etag) !== source.etag) {
    // Other content under a published revision: refused, recorded on the release (status shows it) and told
    // once. The versioned bucket still holds the original, which the release's builds read by version id.
    const conflict = new RevisionConflictError(
      stream,
      revision,
      release.source.etag,
      object.key,
      source.etag,
    );
    const rejectedAt = deps.clock.now().toISOString();
    // Told before recorded: a crash in between tells again (consumers tolerate duplicates), never not at all.
    if (!release.rejections?.some((r) => r.source.etag === source.etag)) {
      await emit(
        deps.events,
        'Release Rejected',
        {
          version: 1,
          stream,
          revision,
          sequence: release.sequence,
          releaseId: release.releaseId,
          reason: conflict.message,
          existing: release.source,
          rejected: source,
          rejectedAt,
        },
        deps.config.busName,
      );
      await deps.releases.recordRejection(release.releaseId, {
        source,
        reason: conflict.message,
        rejectedAt,
      });
    }
    deps.logger.error('upload rejected: revision already published with other content', {
      releaseId: release.releaseId,
      key: object.key,
      etag: source.etag,
    });
    return { release, created: false, enqueued: [], rejected: conflict.message };
  }

  // A duplicate event finds the release: regions still "queued" may have missed their job if the first attempt
  // crashed between create and send. Resending is safe: the FIFO deduplication id is the same.
  const regions = created
    ? config.regions
    : config.regions.filter((region) => (release.regions[region]?.state ?? 'queued') === 'queued');
  for (const region of regions) await queueBuildJob(deps, release, region, config);

  if (created || regions.length > 0) {
    await emitReleaseStarted(deps, release, config.regions);
  }
  deps.logger.info(created ? 'release created' : 'release already recorded', {
    releaseId: release.releaseId,
    sequence: release.sequence,
    enqueued: regions,
  });
  return { release, created, enqueued: regions };
}

async function publishedSha256(deps: IngestDeps, object: ObjectCreated): Promise<string | undefined> {
  if (!deps.objects || deps.objects.bucket !== object.bucket) return undefined;
  const head = await deps.objects.head(object.key);
  const value = head?.metadata[SHA256_METADATA_KEY]?.toLowerCase();
  return value && /^[0-9a-f]{64}$/.test(value) ? value : undefined;
}

/** "Release Started" for a release and the regions it builds in (ingest, and a rollback's new release). */
export async function emitReleaseStarted(
  deps: Pick<IngestDeps, 'events' | 'clock' | 'config'>,
  release: Release,
  regions: string[],
): Promise<void> {
  await emit(
    deps.events,
    'Release Started',
    {
      version: 1,
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      releaseId: release.releaseId,
      regions,
      source: release.source,
      startedAt: deps.clock.now().toISOString(),
    },
    deps.config.busName,
  );
}

/**
 * One region's BuildJob of a release on that region's FIFO queue (group: the stream, so one stream builds
 * serially). Sending again is safe: the deduplication id is the release's and the region's. Ingest and a
 * rollback that rebuilds a region both queue through here.
 */
export async function queueBuildJob(
  deps: Pick<IngestDeps, 'buildQueue'>,
  release: Release,
  region: string,
  config: StreamConfig,
): Promise<void> {
  const job: BuildJob = BuildJob.parse({
    version: 1,
    releaseId: release.releaseId,
    stream: release.stream,
    revision: release.revision,
    sequence: release.sequence,
    region,
    architecture: config.architecture,
    bootMode: config.bootMode,
    volumeSizeGiB: config.volumeSizeGiB,
    source: release.source,
  });
  await deps
    .buildQueue(region)
    .send(JSON.stringify(job), release.stream, buildJobDeduplicationId(release.releaseId, region));
}
