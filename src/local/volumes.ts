// The local EBS volume: a sparse disk-image file (vol-….img) in the region's state directory, attached
// through a loop device, so the builder gets a real block device with a partition table and ext4 on it.
// Without root or a loop driver the volume is a plain directory instead; stemcell says so once.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { flushDevice } from '#builder/quiesce.ts';
import { run } from '#builder/volume/exec.ts';
import {
  attachLoop,
  detachLoop,
  loopSupported,
  loopsOf,
  refreshLoopCapacity,
  sectorsWritten,
} from '#builder/volume/loop.ts';
import type { Attachment, Clock, Tags, VolumeInfo, Volumes } from '#ports';
import { systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';

export type VolumeBackend = 'block' | 'directory';

/** Where a region's volumes, snapshot blocks, snapshots and images live under the local data directory. */
export function ebsStateDir(dataDir: string, region: string): string {
  return join(dataDir, 'regions', region, 'ebs');
}

export interface LocalVolumesOptions {
  /** The region's EBS state directory (see ebsStateDir). */
  dir: string;
  region: string;
  /** 'auto' (default): loop-backed block volumes where root and a loop driver allow, directories elsewhere. */
  backend?: 'auto' | VolumeBackend;
  clock?: Clock;
  log?: (line: string) => void;
}

interface VolumeRecord extends VolumeInfo {
  backend: VolumeBackend;
  clientToken: string;
  createdAt: string;
  /** Loop device while attached, and its sectors-written counter at attach time. */
  loop?: { device: string; baseSectors: number };
  /** Sectors written through earlier attachments (block-layer statistics, 512 B each). */
  sectorsWrittenBefore: number;
}

let announcedDirectoryFallback = false;

/** Picks the volume backend once per process and says so when it has to fall back to directories. */
export function chooseVolumeBackend(
  wanted: 'auto' | VolumeBackend = 'auto',
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): VolumeBackend {
  if (wanted !== 'auto') return wanted;
  const support = loopSupported();
  if (support.ok) return 'block';
  if (!announcedDirectoryFallback) {
    announcedDirectoryFallback = true;
    log(
      `stemcell: volumes are plain directories (${support.reason}); ` +
        'run as root with loop devices for real disks, bootable images and block-level snapshots',
    );
  }
  return 'directory';
}

export class LocalVolumes implements Volumes {
  readonly dir: string;
  readonly region: string;
  readonly backend: VolumeBackend;
  readonly #clock: Clock;

  constructor(opts: LocalVolumesOptions) {
    this.dir = opts.dir;
    this.region = opts.region;
    this.#clock = opts.clock ?? systemClock;
    this.backend = chooseVolumeBackend(opts.backend, opts.log);
  }

  async findForStream(stream: string, availabilityZone: string): Promise<VolumeInfo | undefined> {
    const found = this.#records()
      .filter((r) => r.stream === stream && r.availabilityZone === availabilityZone && r.state !== 'deleting')
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
    return found && publicInfo(found);
  }

  async create(input: {
    stream: string;
    availabilityZone: string;
    sizeGiB: number;
    kmsKeyId: string;
    tags: Tags;
    clientToken: string;
  }): Promise<VolumeInfo> {
    const existing = this.#records().find((r) => r.clientToken === input.clientToken);
    if (existing) return publicInfo(existing);
    if (!Number.isInteger(input.sizeGiB) || input.sizeGiB < 1)
      throw new LocalServiceError(
        'InvalidParameterValue',
        `volume size ${input.sizeGiB} GiB: must be a whole number ≥ 1`,
      );
    const volumeId = `vol-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const record: VolumeRecord = {
      volumeId,
      stream: input.stream,
      availabilityZone: input.availabilityZone,
      sizeGiB: input.sizeGiB,
      state: 'available',
      kmsKeyId: input.kmsKeyId,
      tags: { ...input.tags },
      backend: this.backend,
      clientToken: input.clientToken,
      createdAt: this.#clock.now().toISOString(),
      sectorsWrittenBefore: 0,
    };
    await mkdir(this.#volumesDir(), { recursive: true });
    if (record.backend === 'block') {
      // Sparse: the file takes no space until blocks are written.
      const handle = await open(this.imagePath(volumeId), 'wx');
      await handle.truncate(input.sizeGiB * 2 ** 30);
      await handle.close();
    } else {
      await mkdir(this.directoryPath(volumeId), { recursive: true });
    }
    this.#save(record);
    return publicInfo(record);
  }

  async attach(volumeId: string, instanceId: string): Promise<Attachment> {
    const record = this.#require(volumeId);
    if (record.backend === 'directory') {
      if (record.attachedTo && record.attachedTo !== instanceId) throw inUse(record);
      this.#save({ ...record, attachedTo: instanceId, state: 'in-use' });
      return { kind: 'directory', path: this.directoryPath(volumeId) };
    }
    if (record.attachedTo && record.loop) {
      if (record.attachedTo !== instanceId) throw inUse(record);
      // A redelivered attach: the same device, if it still backs this volume.
      if ((await loopsOf(this.imagePath(volumeId))).includes(record.loop.device))
        return { kind: 'block', devicePath: record.loop.device };
    }
    const device = await attachLoop(this.imagePath(volumeId));
    this.#save({
      ...record,
      attachedTo: instanceId,
      state: 'in-use',
      loop: { device, baseSectors: sectorsWritten(device) },
    });
    return { kind: 'block', devicePath: device };
  }

  async detach(volumeId: string, instanceId: string): Promise<void> {
    const record = this.#require(volumeId);
    if (!record.attachedTo) return;
    if (record.attachedTo !== instanceId)
      throw new LocalServiceError(
        'IncorrectState',
        `volume ${volumeId} is attached to ${record.attachedTo}, not ${instanceId}`,
      );
    const { loop, attachedTo: _attachedTo, ...rest } = record;
    let sectorsWrittenBefore = record.sectorsWrittenBefore;
    if (loop && (await loopsOf(this.imagePath(volumeId))).includes(loop.device)) {
      await flushDevice(loop.device);
      sectorsWrittenBefore += sectorsWritten(loop.device) - loop.baseSectors;
      await detachLoop(loop.device);
    }
    this.#save({ ...rest, state: 'available', sectorsWrittenBefore });
  }

  async grow(volumeId: string, sizeGiB: number): Promise<void> {
    const record = this.#require(volumeId);
    if (sizeGiB < record.sizeGiB)
      throw new LocalServiceError(
        'InvalidParameterValue',
        `volume ${volumeId}: cannot shrink from ${record.sizeGiB} GiB to ${sizeGiB} GiB`,
      );
    if (sizeGiB === record.sizeGiB) return;
    if (record.backend === 'block') {
      await truncate(this.imagePath(volumeId), sizeGiB * 2 ** 30);
      if (record.loop) await refreshLoopCapacity(record.loop.device);
    }
    this.#save({ ...record, sizeGiB });
  }

  // ---------------------------------------------------------------- local-only

  /**
   * EC2 detaches the volumes of a terminated instance: every volume attached to an instance `isDead` names is
   * released, with what a killed builder left on it (a frozen or mounted filesystem, partition loop devices).
   * Returns the volumes released.
   */
  async releaseAttachments(isDead: (instanceId: string) => boolean): Promise<string[]> {
    const released: string[] = [];
    for (const record of this.#records()) {
      const dead = Boolean(record.attachedTo && isDead(record.attachedTo));
      if (record.attachedTo && !dead) continue;
      if (record.backend === 'block') {
        // Also a loop device the record never learnt of (killed between losetup and saving the attachment).
        for (const disk of await loopsOf(this.imagePath(record.volumeId))) {
          for (const part of await loopsOf(disk)) {
            for (const target of await mountsOf(part)) {
              await run('fsfreeze', ['--unfreeze', target]).catch(() => undefined); // not frozen: fine
              await run('umount', [target]);
            }
            await detachLoop(part);
          }
          if (!dead || disk !== record.loop?.device) await detachLoop(disk);
        }
      }
      if (dead) {
        await this.detach(record.volumeId, record.attachedTo as string);
        released.push(record.volumeId);
      }
    }
    return released;
  }

  get(volumeId: string): VolumeInfo | undefined {
    const record = this.#load(volumeId);
    return record && publicInfo(record);
  }

  list(): VolumeInfo[] {
    return this.#records().map(publicInfo);
  }

  backendOf(volumeId: string): VolumeBackend {
    return this.#require(volumeId).backend;
  }

  imagePath(volumeId: string): string {
    return join(this.#volumesDir(), `${volumeId}.img`);
  }

  directoryPath(volumeId: string): string {
    return join(this.#volumesDir(), `${volumeId}.d`);
  }

  /** The loop device the volume is attached through, if any. */
  devicePath(volumeId: string): string | undefined {
    return this.#require(volumeId).loop?.device;
  }

  /**
   * Bytes the volume's device has seen written since it was created, summed over attachments (block-layer
   * statistics). An upper bound on what an EBS snapshot would carry; 0 for directory volumes.
   */
  async writtenBytesTotal(volumeId: string): Promise<number> {
    const record = this.#require(volumeId);
    let sectors = record.sectorsWrittenBefore;
    if (record.loop && (await loopsOf(this.imagePath(volumeId))).includes(record.loop.device)) {
      await flushDevice(record.loop.device);
      sectors += sectorsWritten(record.loop.device) - record.loop.baseSectors;
    }
    return sectors * 512;
  }

  /** DeleteVolume: refused while attached. */
  async delete(volumeId: string): Promise<void> {
    const record = this.#require(volumeId);
    if (record.attachedTo) throw inUse(record);
    await rm(this.imagePath(volumeId), { force: true });
    await rm(this.directoryPath(volumeId), { recursive: true, force: true });
    await rm(this.#recordPath(volumeId), { force: true });
  }

  // ---------------------------------------------------------------- internals

  #volumesDir(): string {
    return join(this.dir, 'volumes');
  }

  #recordPath(volumeId: string): string {
    if (!/^vol-[0-9a-f]{17}$/.test(volumeId))
      throw new LocalServiceError(
        'InvalidVolumeID.Malformed',
        `Invalid id: "${volumeId}" (expecting "vol-...")`,
      );
    return join(this.#volumesDir(), `${volumeId}.json`);
  }

  #load(volumeId: string): VolumeRecord | undefined {
    return readJson<VolumeRecord | undefined>(this.#recordPath(volumeId), undefined);
  }

  #require(volumeId: string): VolumeRecord {
    const record = this.#load(volumeId);
    if (!record)
      throw new LocalServiceError('InvalidVolume.NotFound', `The volume '${volumeId}' does not exist.`);
    return record;
  }

  #save(record: VolumeRecord): void {
    writeJsonAtomic(this.#recordPath(record.volumeId), record);
  }

  #records(): VolumeRecord[] {
    return readJsonDir<VolumeRecord>(this.#volumesDir(), /^vol-[0-9a-f]{17}\.json$/);
  }
}

function inUse(record: VolumeRecord): LocalServiceError {
  return new LocalServiceError(
    'VolumeInUse',
    `vol ${record.volumeId} is already attached to ${record.attachedTo}`,
  );
}

function publicInfo(r: VolumeRecord): VolumeInfo {
  const info: VolumeInfo = {
    volumeId: r.volumeId,
    stream: r.stream,
    availabilityZone: r.availabilityZone,
    sizeGiB: r.sizeGiB,
    state: r.state,
    kmsKeyId: r.kmsKeyId,
    tags: { ...r.tags },
  };
  if (r.attachedTo) info.attachedTo = r.attachedTo;
  return info;
}

/** Mount points whose source is `device`, from /proc/self/mounts. */
async function mountsOf(device: string): Promise<string[]> {
  return (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .map((line) => line.split(' '))
    .filter(([source]) => source === device)
    .map(([, target]) => (target as string).replace(/\\040/g, ' '));
}
