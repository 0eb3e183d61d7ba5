// EBS and EC2 images of one region, local stand-ins: volumes, snapshots and images share one state folder and
// one key service, and emit their AWS events on one sink.
import type { Clock, KeyService } from '#ports';
import { LocalImages } from './images.ts';
import type { ServiceEventSink } from './service-events.ts';
import { LocalSnapshots } from './snapshots.ts';
import { LocalVolumes, type VolumeBackend } from './volumes.ts';

export interface LocalEbs {
  volumes: LocalVolumes;
  snapshots: LocalSnapshots;
  images: LocalImages;
}

export function createLocalEbs(opts: {
  /** The region's EBS state folder (ebsStateDir). */
  dir: string;
  region: string;
  accountId: string;
  keys: KeyService;
  events: ServiceEventSink;
  backend?: 'auto' | VolumeBackend;
  clock?: Clock;
  log?: (line: string) => void;
}): LocalEbs {
  const { dir, region, accountId, keys, events } = opts;
  const common = { ...(opts.clock ? { clock: opts.clock } : {}) };
  const volumes = new LocalVolumes({
    dir,
    region,
    ...common,
    ...(opts.backend ? { backend: opts.backend } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  });
  const snapshots = new LocalSnapshots({ dir, region, accountId, keys, volumes, events, ...common });
  const images = new LocalImages({ dir, region, accountId, snapshots, events, ...common });
  return { volumes, snapshots, images };
}
