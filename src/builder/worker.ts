// The builder's job: one BuildJob (one release, one region) onto the stream's volume, then a snapshot.
// It knows ports only, so the same code drives a loop device locally and an EBS volume on EC2; which
// filesystem/boot tooling reaches the attached volume is the Workspace given to it.
//
// Two ways to the snapshot, per stream (BuildJob.snapshots):
// - `direct` (default): the stream's disk is a disk image (deps.diskImages, on the builder's own disk on AWS);
//   after the apply the builder finds the blocks that differ from the parent snapshot's digests and writes only
//   those with the EBS direct APIs (./snapshot/session.ts), then tells register itself;
// - `create-snapshot`: CreateSnapshot of the stream's EBS volume, and EBS's notification tells register.
import { rmSync } from 'node:fs';
import type { Logger } from '#core/deps.ts';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { type P256PublicKey, p256PublicKey, publicKeyId, verifyDigest } from '#core/provenance/signature.ts';
import { failRegion } from '#core/release/build-failure.ts';
import { moveRegion, recordRegionFigures } from '#core/release/region-state.ts';
import type { BuilderServices } from '#core/runtime.ts';
import { InputError } from '#errors';
import type { BuildJob } from '#events/aws.ts';
import type { Attachment, SourceRef, Volumes } from '#ports';
import { type ApplyStats, applyTarball, RejectedArchiveError } from '#unpack/index.ts';
import { loadManifest, targetIdentity } from '#unpack/manifest.ts';
import { announceSnapshot, clearUnfinishedSnapshots, restoreStream } from './direct.ts';
import { syncFilesystem } from './quiesce.ts';
import type { BlockDigests } from './snapshot/digests.ts';
import {
  type ChangeDetection,
  type DirectSnapshotOutcome,
  DirectSnapshotSession,
  type DiskAccess,
} from './snapshot/session.ts';
import type { DirectWriteOptions } from './snapshot/writer.ts';
import { classifySpaceError, DataFolderFullError, type HostSpace, requireHostSpace } from './space.ts';
import { VolumeMismatchError, verifyAgainstManifest } from './verify.ts';

export { isOutOfSpace } from './space.ts';

export interface BootInfo {
  stream: string;
  revision: string;
  sequence: number;
  sha256: string;
}

/** A mounted filesystem on an attached volume, and what can be done to it before the snapshot. */
export interface OpenVolume {
  root: string;
  /** True when this open created the filesystem (first revision on the volume). */
  fresh: boolean;
  makeBootable(info: BootInfo): Promise<void>;
  /** Flushes the filesystem (syncfs), reporting any write that did not reach the volume. Default: sync -f root. */
  flush?(): Promise<void>;
  /** Flushes and unmounts: after this no write is in flight and none will come. */
  quiesce(): Promise<void>;
  /**
   * After quiesce: runs `work` over the volume's content as it is on the device (mounted read-only again, so
   * nothing is read from the page cache of the mount that wrote it). Without it, the verification before the
   * snapshot reads the tree before quiesce.
   */
  inspect?<T>(work: (root: string) => Promise<T>): Promise<T>;
  /** Releases mounts and loop devices; safe after quiesce and on failure. */
  close(): Promise<void>;
  /** The apply manifest kept on the volume itself, when the volume has room for it. */
  manifest?: {
    path: string;
    invalidate(): Promise<void>;
    commit(): Promise<void>;
  };
  /** The disk as blocks with the parent's digests (block volumes with a state partition): direct snapshots. */
  disk?: DiskAccess;
}
export interface Workspace {
  open(
    attachment: Attachment,
    opts: {
      volumeId: string;
      bootMode: BuildJob['bootMode'];
      sizeGiB: number;
      architecture?: BuildJob['architecture'];
    },
  ): Promise<OpenVolume>;
}

export type BuildStep = 'volume' | 'restore' | 'attach' | 'download+apply' | 'boot' | 'quiesce' | 'snapshot';
/** The world's services (src/core/runtime.ts) and what is the builder host's own. */
export interface BuilderDeps extends BuilderServices {
  region: string;
  availabilityZone: string;
  instanceId: string;
  /**
   * Where `direct` streams keep their disk. On AWS: disk images on the builder's own disk, restored from the
   * stream's last snapshot when missing; `volumes` when absent (local mode, where volumes are disk images).
   */
  diskImages?: Volumes;
  /** How a direct snapshot finds the changed blocks. @defaultValue 'fast' */
  changeDetection?: ChangeDetection;
  /** The direct-API writer's settings (puts in flight, timeout, waits). */
  directSnapshots?: DirectWriteOptions;
  workspace: Workspace;
  /**
   * Where a volume's apply manifest lives when the volume cannot hold it (a directory volume, or one
   * partitioned without a state partition): outside every image tree, on this builder.
   */
  manifestPath(volumeId: string): string;
  onStep?(job: BuildJob, step: BuildStep, detail?: Record<string, unknown>): void;
  /** Lines for the operator: a volume grown, and why. */
  log?(line: string): void;
  /** The builder's own data folder: a build needs room there, and an ENOSPC there never grows the volume. */
  hostSpace?: HostSpace;
}

const MAX_GROWS = 3;
const GROWTH_FACTOR = 1.5;
/** A volume that did not hold what was written is written again (manifest invalidated) this many times. */
const MAX_REWRITES = 1;

export type BuildOutcome =
  | {
      kind: 'built';
      snapshotId: string;
      volumeId: string;
      apply: ApplyStats;
      stepMs: Record<BuildStep, number>;
      /** What the direct-API snapshot carried and how its blocks were found (`direct` streams). */
      direct?: DirectSnapshotOutcome;
    }
  | { kind: 'skipped'; reason: string };

export async function runBuild(deps: BuilderDeps, job: BuildJob): Promise<BuildOutcome> {
  const now = () => deps.clock.now().toISOString();
  const release = await deps.releases.get(job.releaseId);
  if (!release) throw new Error(`release ${job.releaseId} not found for job in ${job.region}`);
  const claimed = await moveRegion(deps.releases, job.releaseId, job.region, {
    state: 'building',
    updatedAt: now(),
    attempts: (release.regions[job.region]?.attempts ?? 0) + 1,
  });
  if (!claimed) {
    return {
      kind: 'skipped',
      reason: `region ${job.region} of ${job.releaseId} is already ${release.regions[job.region]?.state}`,
    };
  }

  const stepMs: Record<BuildStep, number> = {
    volume: 0,
    restore: 0,
    attach: 0,
    'download+apply': 0,
    boot: 0,
    quiesce: 0,
    snapshot: 0,
  };
  const timed = async <T>(
    step: BuildStep,
    work: () => Promise<T>,
    detail?: Record<string, unknown>,
  ): Promise<T> => {
    deps.onStep?.(job, step, detail);
    const started = performance.now();
    try {
      return await work();
    } finally {
      stepMs[step] += performance.now() - started;
    }
  };

  const direct = job.snapshots === 'direct';
  const volumes = direct ? (deps.diskImages ?? deps.volumes) : deps.volumes;
  let created = false;
  const volume = await timed('volume', async () => {
    const existing = await volumes.findForStream(job.stream, deps.availabilityZone);
    if (existing) {
      if (existing.sizeGiB < job.volumeSizeGiB) await volumes.grow(existing.volumeId, job.volumeSizeGiB);
      return existing;
    }
    created = true;
    return volumes.create({
      stream: job.stream,
      availabilityZone: deps.availabilityZone,
      sizeGiB: job.volumeSizeGiB,
      kmsKeyId: deps.kmsKeyId,
      tags: { 'stemcell:stream': job.stream, Name: `stemcell-${job.stream}` },
      clientToken: `stemcell-volume-${job.stream}-${deps.availabilityZone}`,
    });
  });

  // A direct stream: nothing an earlier, killed attempt started stays; a disk this builder lacks comes back
  // from the stream's last snapshot, so the apply is incremental and the snapshot has its parent.
  let restored: BlockDigests | undefined;
  if (direct) {
    await clearUnfinishedSnapshots(deps.snapshots, job, deps.log);
    if (created)
      restored = await timed('restore', () =>
        restoreStream({ ...deps, volumes }, job, { volumeId: volume.volumeId, sizeGiB: volume.sizeGiB }),
      );
  }
  const attempt = (release.regions[job.region]?.attempts ?? 0) + 1;
  let writes = 0;
  let directOutcome: DirectSnapshotOutcome | undefined;

  /**
   * Attach, open, apply, make bootable, quiesce, verify, (direct) snapshot, release: one attempt at writing the
   * revision.
   */
  const writeRevision = async (sizeGiB: number): Promise<ApplyStats> => {
    requireHostSpace(deps.hostSpace);
    writes++;
    const attachment = await timed('attach', () => volumes.attach(volume.volumeId, deps.instanceId));
    try {
      // First use partitions and formats the volume; later revisions only mount it (and grow it if needed).
      const opened = await timed('attach', () =>
        deps.workspace.open(attachment, {
          volumeId: volume.volumeId,
          bootMode: job.bootMode,
          sizeGiB,
          architecture: job.architecture,
        }),
      );
      const flush = () => (opened.flush ? opened.flush() : syncFilesystem(opened.root));
      const manifestPath = opened.manifest?.path ?? deps.manifestPath(volume.volumeId);
      let session: DirectSnapshotSession | undefined;
      if (direct && opened.disk) {
        session = await DirectSnapshotSession.prepare(deps.snapshots, opened.disk, {
          region: job.region,
          detection: deps.changeDetection ?? 'fast',
          ...(restored ? { restored } : {}),
          ...(deps.log ? { log: deps.log } : {}),
        });
        restored = undefined;
      } else if (direct) {
        deps.log?.(
          `volume ${volume.volumeId} (${job.stream}): not a partitioned block disk; taking the snapshot with CreateSnapshot`,
        );
      }
      let applied: ApplyStats;
      let failed = false;
      try {
        applied = await timed('download+apply', async () => {
          const { body } = await deps.objects.get(job.source.key, job.source.etag, job.source.versionId);
          // The volume's own manifest, so that whichever builder applied the last revision, this one is
          // incremental; it is untrusted from before the tree changes until the apply completes (and again if a later
          // step fails). The
          // apply marks it complete only once the tree's writes reached the volume (flush).
          await opened.manifest?.invalidate();
          const stats = await applyTarball(body, opened.root, { manifestPath, beforeComplete: flush });
          await opened.manifest?.commit();
          return stats;
        });
        // Before anything is made of the tree: the bytes streamed are the ones recorded (and, for a signed
        // tarball, signed) at ingest. The release record is the authority, not the job message.
        checkSourceDigest(release.source, job, applied.inputSha256);
        await timed('boot', () =>
          opened.makeBootable({
            stream: job.stream,
            revision: job.revision,
            sequence: job.sequence,
            sha256: applied.inputSha256,
          }),
        );
        const expected = loadManifest(manifestPath, targetIdentity(opened.root));
        if (!expected.valid) throw new Error(`apply manifest ${manifestPath}: ${expected.reason}`);
        await timed('quiesce', async () => {
          // The last write is done: what the fast way of finding changed blocks needs to know, before unmount.
          session?.noteWrites();
          if (!opened.inspect) await verifyAgainstManifest(opened.root, expected.records);
          await opened.quiesce();
          if (opened.inspect) await opened.inspect((root) => verifyAgainstManifest(root, expected.records));
        });
      } catch (err) {
        failed = true;
        // Whatever failed once the apply began, the tree may not be what the manifest says: never trust it.
        invalidateManifest(manifestPath, deps.log);
        await opened.manifest?.invalidate().catch((e: Error) => deps.log?.(`apply manifest: ${e.message}`));
        const space = classifySpaceError(err, deps.hostSpace);
        if (space.kind === 'host') throw space.error;
        throw err;
      } finally {
        // A direct snapshot reads the disk after the tree is closed (below); a failed attempt takes none.
        if (!session || failed) await opened.close();
      }
      if (session) {
        // Verified and quiesced: the disk is what the snapshot must hold. The token is new per attempt and per
        // write, so a retry never writes into a snapshot an earlier attempt started (and may have deleted).
        try {
          const sha256 = applied.inputSha256;
          directOutcome = await timed('snapshot', () =>
            (session as DirectSnapshotSession).snapshot(
              {
                description: `stemcell ${job.stream} ${job.revision} (sequence ${job.sequence})`,
                tags: { ...releaseTags(job), 'stemcell:sha256': sha256, 'stemcell:region': job.region },
                clientToken: `${job.releaseId}:${job.region}:${attempt}.${writes}`,
                kmsKeyId: deps.kmsKeyId,
              },
              { ...deps.directSnapshots, ...(deps.log ? { log: deps.log } : {}) },
            ),
          );
        } finally {
          await opened.close();
        }
      }
      return applied;
    } finally {
      await volumes.detach(volume.volumeId, deps.instanceId);
    }
  };

  // A revision that no longer fits grows the volume (then partition and filesystem, at the next open) and is
  // applied again; the failed apply left its manifest invalid, so the retry verifies the whole tree. A volume
  // found not to hold what was written is written again the same way.
  let sizeGiB = Math.max(volume.sizeGiB, job.volumeSizeGiB);
  let apply: ApplyStats;
  for (let grows = 0, rewrites = 0; ; ) {
    try {
      apply = await writeRevision(sizeGiB);
      break;
    } catch (err) {
      if (err instanceof VolumeMismatchError && rewrites < MAX_REWRITES) {
        rewrites++;
        deps.log?.(
          `volume ${volume.volumeId} (${job.stream}): ${err.message}; writing ${job.revision} again`,
        );
        continue;
      }
      if (err instanceof DataFolderFullError || !isVolumeFull(err) || grows >= MAX_GROWS) throw err;
      grows++;
      const grown = Math.max(sizeGiB + 1, Math.ceil(sizeGiB * GROWTH_FACTOR));
      deps.log?.(
        `volume ${volume.volumeId} (${job.stream}): ${job.revision} does not fit in ${sizeGiB} GiB; growing to ${grown} GiB and applying again`,
      );
      await timed('volume', () => volumes.grow(volume.volumeId, grown));
      sizeGiB = grown;
    }
  }

  if (directOutcome) {
    // Recorded before it is announced: register may move the region on as soon as it hears of the snapshot.
    const snapshotId = directOutcome.result.snapshotId;
    const figures = {
      updatedAt: now(),
      snapshotId,
      applyMs: Math.round(stepMs['download+apply']),
      deltaBytes: directOutcome.result.bytesPut,
    };
    if (!(await moveRegion(deps.releases, job.releaseId, job.region, { state: 'snapshotting', ...figures })))
      await recordRegionFigures(deps.releases, job.releaseId, job.region, figures);
    await announceSnapshot(deps.publisher, job, directOutcome, deps.clock.now(), deps.log);
    return { kind: 'built', snapshotId, volumeId: volume.volumeId, apply, stepMs, direct: directOutcome };
  }
  const snapshot = await timed('snapshot', () =>
    deps.snapshots.create(volume.volumeId, {
      description: `stemcell ${job.stream} ${job.revision} (sequence ${job.sequence})`,
      tags: {
        ...releaseTags(job),
        [TAG.sha256]: apply.inputSha256,
        [TAG.region]: job.region,
        ...(release.source.signer ? { [TAG.signer]: release.source.signer } : {}),
      },
      clientToken: `${job.releaseId}:${job.region}`,
    }),
  );
  const built = {
    updatedAt: now(),
    snapshotId: snapshot.snapshotId,
    applyMs: Math.round(stepMs['download+apply']),
    ...(snapshot.deltaBytes === undefined ? {} : { deltaBytes: snapshot.deltaBytes }),
    ...(snapshot.writtenBytes === undefined ? {} : { writtenBytes: snapshot.writtenBytes }),
  };
  // register may already have moved the region on (the snapshot's notification can beat this write): then only
  // the build's figures are kept, and the state stays where register put it.
  if (!(await moveRegion(deps.releases, job.releaseId, job.region, { state: 'snapshotting', ...built })))
    await recordRegionFigures(deps.releases, job.releaseId, job.region, built);
  return { kind: 'built', snapshotId: snapshot.snapshotId, volumeId: volume.volumeId, apply, stepMs };
}

/**
 * The tarball streamed is not the one its release recorded or signed: final at once (another attempt would
 * stream the same bytes), and nothing is snapshotted.
 */
export class SourceDigestError extends InputError {
  override readonly name = 'SourceDigestError';
}

/**
 * The SHA-256 computed while streaming must be the release's recorded one; on a signed release, the signature
 * recorded at ingest must also verify over it with the signer's public key (a release record or job that was
 * tampered with does not pass for signed).
 */
export function checkSourceDigest(source: SourceRef, job: BuildJob, streamed: string): void {
  const where = `tarball s3://${job.source.bucket}/${job.source.key}`;
  const expected = source.sha256 ?? job.source.sha256;
  if (expected && expected !== streamed)
    throw new SourceDigestError(
      `${where} changed: sha256 ${streamed} != ${expected}${source.signer ? ` (signed by ${source.signer})` : ''}`,
    );
  if (!source.signer) return;
  if (!source.signature || !source.signerPublicKey)
    throw new SourceDigestError(
      `${where}: release ${job.releaseId} names signer ${source.signer} but records no signature or public key`,
    );
  let key: P256PublicKey;
  try {
    key = p256PublicKey(Buffer.from(source.signerPublicKey, 'base64'), `signer ${source.signer}`);
  } catch (err) {
    throw new SourceDigestError(`${where}: ${(err as Error).message}`, { cause: err });
  }
  const id = source.signer.startsWith('sha256:') ? publicKeyId(key.spki) : source.signer;
  if (id !== source.signer || !verifyDigest(key, streamed, Buffer.from(source.signature, 'base64')))
    throw new SourceDigestError(
      `${where}: the signature recorded for ${source.signer} does not verify over the streamed sha256 ${streamed}`,
    );
}

/** ENOSPC that the data folder is not to blame for (classified in writeRevision). */
function isVolumeFull(err: unknown): boolean {
  return classifySpaceError(err, undefined).kind === 'volume';
}

/** Removes the apply manifest, so the next apply verifies the whole tree. */
function invalidateManifest(path: string, log?: (line: string) => void): void {
  try {
    rmSync(path, { force: true });
  } catch (err) {
    log?.(`apply manifest ${path} could not be removed: ${(err as Error).message}`);
  }
}

/** The core's logger over the builder's operator lines: what goes wrong is shown, the rest is not. */
function builderLogger(deps: Pick<BuilderDeps, 'log'>): Logger {
  const line = (message: string, ...attributes: Record<string, unknown>[]) =>
    deps.log?.(`${message} ${attributes.map((a) => JSON.stringify(a)).join(' ')}`.trim());
  return { debug() {}, info() {}, warn: line, error: line };
}

/** done: delete the message; retry: leave it to the queue; wait: keep it and retry once space returns. */
export type MessageVerdict = 'done' | 'retry' | 'wait';

/**
 * What to do with a queue message after a build attempt: done (delete it) or retry (leave it to be
 * redelivered; the queue moves it to the DLQ after maxReceiveCount). A rejected archive is final at once:
 * it would be rejected again. The last attempt, and a rejection, publish "Build Failed".
 */
export async function handleBuildFailure(
  deps: Pick<BuilderDeps, 'releases' | 'publisher' | 'clock' | 'log'>,
  job: BuildJob,
  error: unknown,
  attempt: { receiveCount: number; maxReceiveCount: number },
): Promise<MessageVerdict> {
  const reason = error instanceof Error ? error.message : String(error);
  if (error instanceof DataFolderFullError) {
    // The builder's disk, not the build: the attempt does not count, the job waits for space.
    await moveRegion(deps.releases, job.releaseId, job.region, {
      state: 'queued',
      reason,
      updatedAt: deps.clock.now().toISOString(),
    });
    return 'wait';
  }
  const rejected = error instanceof RejectedArchiveError || error instanceof SourceDigestError;
  const final = rejected || attempt.receiveCount >= attempt.maxReceiveCount;
  if (!final) {
    await moveRegion(deps.releases, job.releaseId, job.region, {
      state: 'queued',
      reason,
      updatedAt: deps.clock.now().toISOString(),
    });
    return 'retry';
  }
  // The one "this region failed" path: "Build Failed" is published before `failed` is recorded, so a publish
  // that fails here leaves the region for the reconciler (the job goes to the DLQ), which publishes again.
  await failRegion(
    { releases: deps.releases, events: deps.publisher, clock: deps.clock, logger: builderLogger(deps) },
    { releaseId: job.releaseId, region: job.region, reason, attempts: attempt.receiveCount },
  );
  return rejected ? 'done' : 'retry';
}
