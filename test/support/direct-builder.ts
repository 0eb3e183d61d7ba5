// A builder over the local EBS stand-ins on real loop devices, for the direct-API snapshot tests: the same
// runBuild the stack and the agent run, with a snapshot store that keeps a copy of the disk image at the moment
// each snapshot is completed (what "the volume as it was" means when the export is compared byte for byte), and
// an optional SIGKILL of its own process after some blocks were put (a builder killed midway, for real).
// Used in-process by test/integration/volumes/direct-snapshots.test.ts and as a child process (main below).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DeviceWorkspace } from '#builder/device.ts';
import type { ChangeDetection } from '#builder/snapshot/session.ts';
import { type BuilderDeps, runBuild } from '#builder/worker.ts';
import type { BuildJob } from '#events/aws.ts';
import { createLocalEbs } from '#local/ebs.ts';
import type { LocalImages } from '#local/images.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import type { LocalSnapshots } from '#local/snapshots.ts';
import { ebsStateDir, type LocalVolumes } from '#local/volumes.ts';
import type { BlockSnapshots, BusEvent } from '#ports';

export const OWNER = '111111111111';
export const REGION = 'eu-west-1';
export const AZ = 'eu-west-1a';

export interface DirectBuilderOptions {
  /**
   * A data folder as `stemcell export` reads it (kms/, regions/<region>/ebs/), plus releases/, the tarballs
   * named by object key under objects/, copies/ and the builders' own disks.
   */
  root: string;
  instanceId: string;
  detection?: ChangeDetection;
  /** Kill this process (SIGKILL) once this many blocks were put. */
  killAfterPuts?: number;
  /** PutSnapshotBlock calls in flight. @defaultValue 2 (a test's puts are few; the kill point stays near) */
  concurrency?: number;
}

export interface DirectBuilder {
  deps: BuilderDeps;
  volumes: LocalVolumes;
  snapshots: LocalSnapshots;
  images: LocalImages;
  releases: LocalReleaseStore;
  published: BusEvent[];
  logs: string[];
  /** snapshotId → path of the disk image copied when it was completed. */
  copies: Map<string, string>;
}

export function directBuilder(opts: DirectBuilderOptions): DirectBuilder {
  const keys = new LocalKeyService(join(opts.root, 'kms'), { accountId: OWNER, region: REGION });
  keys.ensureKey('alias/stemcell');
  const { volumes, snapshots, images } = createLocalEbs({
    dir: ebsStateDir(opts.root, REGION),
    region: REGION,
    accountId: OWNER,
    keys,
    events: { emit: () => {} },
    backend: 'block',
  });
  const releases = new LocalReleaseStore(join(opts.root, 'releases'));
  const published: BusEvent[] = [];
  const logs: string[] = [];
  const copies = new Map<string, string>();
  mkdirSync(join(opts.root, 'copies'), { recursive: true });
  let puts = 0;
  const streamOf = new Map<string, string>();
  // The store as the builder sees it: every call goes to LocalSnapshots; complete() first keeps the image.
  const recording: BlockSnapshots = {
    create: (v, i) => snapshots.create(v, i),
    get: (id) => snapshots.get(id),
    delete: (id) => snapshots.delete(id),
    findByTags: (t) => snapshots.findByTags(t),
    start: async (i) => {
      const started = await snapshots.start(i);
      streamOf.set(started.snapshotId, i.tags['stemcell:stream'] ?? '');
      return started;
    },
    putBlock: async (id, index, data, checksum) => {
      await snapshots.putBlock(id, index, data, checksum);
      puts++;
      if (opts.killAfterPuts !== undefined && puts >= opts.killAfterPuts)
        process.kill(process.pid, 'SIGKILL');
    },
    complete: async (id, input) => {
      const volume = volumes.list().find((v) => v.stream === streamOf.get(id));
      if (volume) {
        const copy = join(opts.root, 'copies', `${id}.raw`);
        execFileSync('cp', ['--sparse=always', volumes.imagePath(volume.volumeId), copy]);
        copies.set(id, copy);
      }
      return snapshots.complete(id, input);
    },
    listBlocks: (id) => snapshots.listBlocks(id),
    getBlock: (id, b) => snapshots.getBlock(id, b),
  };
  const disk = join(opts.root, 'builders', opts.instanceId);
  mkdirSync(join(disk, 'manifests'), { recursive: true });
  const deps: BuilderDeps = {
    region: REGION,
    availabilityZone: AZ,
    instanceId: opts.instanceId,
    kmsKeyId: 'alias/stemcell',
    objects: {
      bucket: 'b',
      get: async (key: string) => ({ body: Readable.from([readFileSync(join(opts.root, 'objects', key))]) }),
    } as unknown as BuilderDeps['objects'],
    volumes,
    snapshots: recording,
    releases,
    publisher: { publish: async (events) => void published.push(...events) },
    workspace: new DeviceWorkspace({ mountRoot: join(disk, 'mnt'), log: (l) => logs.push(l) }),
    manifestPath: (volumeId) => join(disk, 'manifests', `${volumeId}.json`),
    changeDetection: opts.detection ?? 'fast',
    directSnapshots: { concurrency: opts.concurrency ?? 2 },
    clock: { now: () => new Date() },
    log: (l) => logs.push(l),
  };
  return { deps, volumes, snapshots, images, releases, published, logs, copies };
}

/** Creates the release and its build job for a tarball already under `<root>/objects/<key>`. */
export async function directJob(
  releases: LocalReleaseStore,
  stream: string,
  revision: string,
  key: string,
  bootMode: BuildJob['bootMode'],
  architecture: BuildJob['architecture'] = 'x86_64',
  volumeSizeGiB = 1,
): Promise<BuildJob> {
  const source = { bucket: 'b', key, etag: revision };
  const { release } = await releases.create({
    stream,
    revision,
    source,
    regions: [REGION],
    uploadedAt: new Date().toISOString(),
  });
  return {
    version: 1,
    releaseId: release.releaseId,
    stream,
    revision,
    sequence: release.sequence,
    region: REGION,
    architecture,
    bootMode,
    volumeSizeGiB,
    snapshots: 'direct',
    source,
  };
}

// A child process: `node test/support/direct-builder.ts <options json> <job json>` runs one build.
if (import.meta.url === `file://${process.argv[1]}`) {
  const options = JSON.parse(process.argv[2] as string) as DirectBuilderOptions;
  const job = JSON.parse(process.argv[3] as string) as BuildJob;
  const builder = directBuilder(options);
  await runBuild(builder.deps, job);
  process.stdout.write('built\n');
}
