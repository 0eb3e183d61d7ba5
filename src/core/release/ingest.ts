// ingest: a tarball landed in the bucket. On a stream with `provenance`, verify its signature first: a refused
// upload is told ("Release Rejected") and nothing else happens (no release, no sequence, no job). Then record the
// release (which assigns its sequence), send one build job per target region, announce "Release Started".

import type { Readable } from 'node:stream';
import type { StreamConfig } from '#config/schema.ts';
import { BuildJob, type ObjectCreatedEnvelope } from '#events/aws.ts';
import type { Release, SourceRef, StoredObject } from '#ports';
import type { IngestDeps } from '../deps.ts';
import { emit } from '../model/emit.ts';
import { RevisionConflictError, streamConfig } from '../model/errors.ts';
import { buildJobDeduplicationId, decodeEventKey, parseObjectKey } from '../model/naming.ts';
import { ProvenanceError, signatureMetadata, TrustedKeys, verifyUpload } from '../provenance/verify.ts';
import { checkArchiveHead } from './archive-head.ts';

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

export type IngestResult =
  | {
      release: Release;
      /** False for a duplicate event of a release that already exists. */
      created: boolean;
      /** Regions a build job was sent to in this call. */
      enqueued: string[];
      /** Set when the upload was refused: other content under a revision already published. */
      rejected?: string;
    }
  | {
      /**
       * Refused before it became a release (its provenance, or not a tar archive): no sequence, no job.
       */
      release?: undefined;
      created: false;
      enqueued: [];
      rejected: string;
      /** The provenance check that failed; absent for an upload that is not a tar archive. */
      check?: ProvenanceError['check'];
    };

const unquote = (etag: string) => etag.replace(/^"|"$/g, '');

/** Public keys resolved once per process (a Lambda container, the local stack), per key service. */
const trustedKeysFor = new WeakMap<object, TrustedKeys>();
const noKeyService = {};
function trustedKeys(deps: IngestDeps): TrustedKeys {
  const owner = deps.signingKeys ?? noKeyService;
  let found = trustedKeysFor.get(owner);
  if (!found) {
    found = new TrustedKeys(deps.signingKeys);
    trustedKeysFor.set(owner, found);
  }
  return found;
}

export async function ingest(deps: IngestDeps, object: ObjectCreated): Promise<IngestResult> {
  const { stream, revision } = parseObjectKey(object.key);
  const config = streamConfig(deps.config, stream, `object key ${object.key}`);

  const source: SourceRef = {
    bucket: object.bucket,
    key: object.key,
    etag: unquote(object.etag),
    ...(object.versionId ? { versionId: object.versionId } : {}),
  };
  const head = await headOf(deps, object);
  const published = head ? signatureMetadata(head) : {};
  if (published.sha256 && /^[0-9a-f]{64}$/.test(published.sha256)) source.sha256 = published.sha256;

  if (config.provenance) {
    // Before anything is recorded: a refused upload takes no sequence and changes nothing but the bus.
    try {
      if (!head)
        throw new ProvenanceError(
          'unsigned',
          `s3://${object.bucket}/${object.key}: its metadata cannot be read here (not the tarball bucket ${deps.objects?.bucket ?? 'of this deployment'}, or gone), so its signature cannot be checked`,
        );
      // Another upload of the key since the event: its signature is not this object's (its own event follows).
      if (unquote(head.etag) !== source.etag)
        throw new ProvenanceError(
          'unsigned',
          `s3://${object.bucket}/${object.key} (etag ${source.etag}) was replaced by another upload (etag ${unquote(head.etag)}) before its signature could be read`,
        );
      const verified = await verifyUpload(trustedKeys(deps), stream, config.provenance, head);
      if (verified) Object.assign(source, verified);
    } catch (err) {
      if (!(err instanceof ProvenanceError)) throw err;
      return rejectForProvenance(deps, { stream, revision, source, error: err });
    }
  }

  // Before a sequence is taken: a file that is not a tar archive is refused now, without one.
  const notTar = await notATarArchive(deps, object);
  if (notTar) {
    const rejectedAt = deps.clock.now().toISOString();
    await emit(
      deps.events,
      'Release Rejected',
      { version: 1, stream, revision, reason: notTar, rejected: source, rejectedAt },
      deps.config.busName,
    );
    deps.logger.error('upload rejected: not a tar archive', {
      key: object.key,
      etag: source.etag,
      reason: notTar,
    });
    return { created: false, enqueued: [], rejected: notTar };
  }

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

/**
 * Why the upload is not a tar archive, read from its first header (archive-head.ts); undefined when it is one,
 * or when it cannot be read here (gone, replaced, no access): the builder reads it in any case, and judges.
 */
async function notATarArchive(deps: IngestDeps, object: ObjectCreated): Promise<string | undefined> {
  if (!deps.objects || deps.objects.bucket !== object.bucket) return undefined;
  let body: Readable;
  try {
    ({ body } = await deps.objects.get(object.key, unquote(object.etag)));
  } catch (err) {
    deps.logger.warn('upload not checked before its sequence: unreadable here', {
      key: object.key,
      error: (err as Error).message,
    });
    return undefined;
  }
  const head = await checkArchiveHead(body);
  return head.ok ? undefined : `${object.key}: ${head.reason}`;
}

/** The object's metadata, from the tarball bucket (undefined for another bucket, or an object gone since). */
async function headOf(deps: IngestDeps, object: ObjectCreated): Promise<StoredObject | undefined> {
  if (!deps.objects || deps.objects.bucket !== object.bucket) return undefined;
  return deps.objects.head(object.key);
}

/** "Release Rejected" for an upload refused for its provenance; nothing else is written. */
async function rejectForProvenance(
  deps: IngestDeps,
  input: { stream: string; revision: string; source: SourceRef; error: ProvenanceError },
): Promise<IngestResult> {
  const { stream, revision, source, error } = input;
  await emit(
    deps.events,
    'Release Rejected',
    {
      version: 1,
      stream,
      revision,
      reason: error.message,
      check: error.check,
      rejected: {
        bucket: source.bucket,
        key: source.key,
        etag: source.etag,
        ...(source.versionId ? { versionId: source.versionId } : {}),
        ...(source.sha256 ? { sha256: source.sha256 } : {}),
        ...(error.signer && /^(arn:|sha256:)/.test(error.signer) ? { signer: error.signer } : {}),
      },
      rejectedAt: deps.clock.now().toISOString(),
    },
    deps.config.busName,
  );
  deps.logger.error('upload rejected: provenance', {
    key: source.key,
    check: error.check,
    reason: error.message,
  });
  return { created: false, enqueued: [], rejected: error.message, check: error.check };
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
    snapshots: config.snapshots,
    source: release.source,
  });
  await deps
    .buildQueue(region)
    .send(JSON.stringify(job), release.stream, buildJobDeduplicationId(release.releaseId, region));
}
