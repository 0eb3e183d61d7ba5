// Shared set-up for the volume, snapshot and image tests: the local EBS stand-ins on one region directory,
// with a real local key service and an event sink that records what would go to the bus.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createLocalEbs } from '#local/ebs.ts';
import type { LocalImages } from '#local/images.ts';
import { LocalKeyService } from '#local/key-service.ts';
import type { ServiceEventEnvelope, ServiceEventSink } from '#local/service-events.ts';
import type { LocalSnapshots } from '#local/snapshots.ts';
import type { LocalVolumes, VolumeBackend } from '#local/volumes.ts';

export const OWNER = '111111111111';
export const MEMBER = '222222222222';
export const REGION = 'eu-west-1';
export const AZ = 'eu-west-1a';
export const INSTANCE = 'i-0123456789abcdef0';

export class RecordingSink implements ServiceEventSink {
  readonly events: ServiceEventEnvelope[] = [];
  emit(envelope: ServiceEventEnvelope): void {
    this.events.push(envelope);
  }
  ofType(detailType: string): ServiceEventEnvelope[] {
    return this.events.filter((e) => e['detail-type'] === detailType);
  }
}

export interface LocalEbs {
  root: string;
  keys: LocalKeyService;
  kmsKeyId: string;
  volumes: LocalVolumes;
  snapshots: LocalSnapshots;
  images: LocalImages;
  sink: RecordingSink;
  cleanup(): void;
}

/** A fresh region directory (under /var/tmp: real disk, not tmpfs) with volumes, snapshots and images. */
export function localEbs(backend: 'auto' | VolumeBackend = 'auto'): LocalEbs {
  const root = mkdtempSync(join('/var/tmp', 'stemcell-ebs-'));
  const keys = new LocalKeyService(root, { accountId: OWNER, region: REGION });
  const { keyId } = keys.createKey({ alias: 'alias/stemcell' });
  const dir = join(root, 'ebs');
  const sink = new RecordingSink();
  const { volumes, snapshots, images } = createLocalEbs({
    dir,
    region: REGION,
    accountId: OWNER,
    keys,
    events: sink,
    backend,
  });
  return {
    root,
    keys,
    kmsKeyId: keyId,
    volumes,
    snapshots,
    images,
    sink,
    cleanup: () => {
      // Whatever a failed test left attached to files under root goes first.
      const loops = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
        encoding: 'utf8',
      });
      for (const line of loops.split('\n')) {
        const [name, file] = line.trim().split(/\s+/);
        if (name && file?.startsWith(root)) execFileSync('losetup', ['--detach', name]);
      }
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Whether this process may use loop devices; tests that need them skip with this reason elsewhere. */
export function needsRoot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: loop devices, mount and mkfs';
  return undefined;
}
