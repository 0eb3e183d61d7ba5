// A builder's dependencies for unit tests: a real release store and applier over a temporary folder, and
// small fakes for the object store, volumes, workspace and snapshots, each recording what was asked of it.
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BuilderDeps, OpenVolume } from '#builder/worker.ts';
import type { BuildJob } from '#events/aws.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import type { BusEvent, QueueMessage, SourceRef } from '#ports';

export interface FakeBuilder {
  dir: string;
  deps: BuilderDeps;
  releases: LocalReleaseStore;
  releaseId: string;
  job: BuildJob;
  published: BusEvent[];
  grows: number[];
  logs: string[];
  message(receiveCount: number): QueueMessage;
}

export async function fakeBuilder(options: {
  tarball: Buffer;
  findVolume?: () => Promise<void>;
  makeBootable?: OpenVolume['makeBootable'];
  /** Overrides of the opened volume's methods (flush, quiesce, inspect, …), given the volume's root. */
  volume?: (root: string) => Partial<OpenVolume>;
  hostSpace?: BuilderDeps['hostSpace'];
  /** What ingest recorded of the source beyond its location: its SHA-256, signer, signature. */
  recorded?: Partial<SourceRef>;
}): Promise<FakeBuilder> {
  const dir = await mkdtemp(join(tmpdir(), 'stemcell-builder-'));
  const releases = new LocalReleaseStore(join(dir, 'releases'));
  const source = { bucket: 'b', key: 'streams/web/r1.tar', etag: 'e1' };
  const { release } = await releases.create({
    stream: 'web',
    revision: 'r1',
    source: { ...source, ...options.recorded },
    regions: ['eu-west-1'],
    uploadedAt: new Date().toISOString(),
  });
  const published: BusEvent[] = [];
  const grows: number[] = [];
  const logs: string[] = [];
  const root = join(dir, 'root');
  await mkdir(root);
  const deps = {
    region: 'eu-west-1',
    availabilityZone: 'eu-west-1a',
    instanceId: 'i-1',
    kmsKeyId: 'k',
    releases,
    publisher: { publish: async (events: BusEvent[]) => void published.push(...events) },
    objects: { bucket: 'b', get: async () => ({ object: {}, body: Readable.from([options.tarball]) }) },
    volumes: {
      findForStream: async () => {
        await options.findVolume?.();
        return { volumeId: 'vol-1', sizeGiB: 1 };
      },
      attach: async () => ({ kind: 'directory', path: root }),
      detach: async () => {},
      grow: async (_id: string, size: number) => void grows.push(size),
    },
    workspace: {
      open: async (): Promise<OpenVolume> => ({
        root,
        fresh: true,
        makeBootable: options.makeBootable ?? (async () => {}),
        quiesce: async () => {},
        close: async () => {},
        ...options.volume?.(root),
      }),
    },
    snapshots: { create: async () => ({ snapshotId: 'snap-1' }) },
    manifestPath: () => join(dir, 'manifest.json'),
    clock: { now: () => new Date() },
    log: (line: string) => void logs.push(line),
    ...(options.hostSpace ? { hostSpace: options.hostSpace } : {}),
  } as unknown as BuilderDeps;
  const job: BuildJob = {
    version: 1,
    releaseId: release.releaseId,
    stream: 'web',
    revision: 'r1',
    sequence: release.sequence,
    region: 'eu-west-1',
    architecture: 'x86_64',
    bootMode: 'none',
    volumeSizeGiB: 1,
    snapshots: 'create-snapshot',
    source,
  };
  return {
    dir,
    deps,
    releases,
    releaseId: release.releaseId,
    job,
    published,
    grows,
    logs,
    message: (receiveCount) => ({
      messageId: 'm',
      receiptHandle: 'r',
      groupId: 'web',
      receiveCount,
      body: JSON.stringify(job),
    }),
  };
}
