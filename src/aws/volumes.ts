// Volumes on EBS: one gp3 volume per stream and Availability Zone, encrypted with the customer key.
import { readdir, realpath } from 'node:fs/promises';
import {
  AttachVolumeCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  ModifyVolumeCommand,
  paginateDescribeVolumes,
  paginateDescribeVolumesModifications,
  type Volume,
  waitUntilVolumeAvailable,
  waitUntilVolumeInUse,
} from '@aws-sdk/client-ec2';
import { TAG } from '#core/model/naming.ts';
import type { Attachment, VolumeInfo, Volumes } from '#ports';
import { isError, realSleep, retrying, type Sleep, THROTTLING } from './retry.ts';
import { fromTagList, tagFilter, tagSpecifications } from './tags.ts';
import { DEFAULT_WAIT, type WaitLimits, waitWithRecheck } from './waiting.ts';

/** Finds the block device of an attached volume on this instance. */
export type DeviceLookup = (volumeId: string, requestedDevice: string) => Promise<string>;

const BY_ID = '/dev/disk/by-id';

/**
 * On Nitro instances EBS volumes are NVMe devices whose serial is the volume id without its dash; udev links
 * them as /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123…. Device names like /dev/sdf are only hints
 * there, so we never guess from them unless the instance is not Nitro (Xen: the requested name exists).
 */
export function nvmeDeviceLookup(
  deps: {
    list?: (dir: string) => Promise<string[]>;
    resolve?: (path: string) => Promise<string>;
    sleep?: Sleep;
    timeoutMs?: number;
  } = {},
): DeviceLookup {
  const list = deps.list ?? ((dir: string) => readdir(dir));
  const resolve = deps.resolve ?? ((path: string) => realpath(path));
  const sleep = deps.sleep ?? realSleep;
  const timeoutMs = deps.timeoutMs ?? 60_000;
  return async (volumeId, requestedDevice) => {
    const serial = `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`;
    // udev creates the link shortly after the attachment: poll for it, bounded.
    for (let waited = 0; waited <= timeoutMs; waited += 500) {
      const names = await list(BY_ID).catch(() => [] as string[]);
      const link = names.find((n) => n === serial);
      if (link) return resolve(`${BY_ID}/${link}`);
      const xen = await resolve(requestedDevice).catch(() => undefined);
      if (xen) return xen;
      await sleep(500);
    }
    throw new Error(`volume ${volumeId}: no device ${BY_ID}/${serial} appeared within ${timeoutMs} ms`);
  };
}

function toVolumeInfo(v: Volume): VolumeInfo {
  const tags = fromTagList(v.Tags);
  const state =
    v.State === 'in-use' || v.State === 'creating' || v.State === 'deleting' ? v.State : 'available';
  const info: VolumeInfo = {
    volumeId: v.VolumeId ?? '',
    stream: tags[TAG.stream] ?? '',
    availabilityZone: v.AvailabilityZone ?? '',
    sizeGiB: v.Size ?? 0,
    state,
    kmsKeyId: v.KmsKeyId ?? '',
    tags,
  };
  const attached = v.Attachments?.find((a) => a.State === 'attached' || a.State === 'attaching');
  if (attached?.InstanceId) info.attachedTo = attached.InstanceId;
  return info;
}

const DEVICE_NAMES = 'fghijklmnop'.split('').map((c) => `/dev/sd${c}`);

export class Ec2Volumes implements Volumes {
  readonly #ec2: EC2Client;
  readonly #wait: WaitLimits;
  readonly #lookup: DeviceLookup;
  readonly #sleep: Sleep;

  constructor(
    options: { client?: EC2Client; wait?: WaitLimits; deviceLookup?: DeviceLookup; sleep?: Sleep } = {},
  ) {
    this.#ec2 = options.client ?? new EC2Client({ retryMode: 'adaptive' });
    this.#wait = options.wait ?? DEFAULT_WAIT;
    this.#lookup = options.deviceLookup ?? nvmeDeviceLookup();
    this.#sleep = options.sleep ?? realSleep;
  }

  async findForStream(stream: string, availabilityZone: string): Promise<VolumeInfo | undefined> {
    const found: VolumeInfo[] = [];
    const pages = paginateDescribeVolumes(
      { client: this.#ec2 },
      {
        Filters: [
          tagFilter(TAG.stream, stream),
          { Name: 'availability-zone', Values: [availabilityZone] },
          { Name: 'status', Values: ['creating', 'available', 'in-use'] },
        ],
      },
    );
    for await (const page of pages) for (const v of page.Volumes ?? []) found.push(toVolumeInfo(v));
    // Prefer a volume that is free to attach.
    found.sort((a, b) => Number(a.state !== 'available') - Number(b.state !== 'available'));
    return found[0];
  }

  async create(input: {
    stream: string;
    availabilityZone: string;
    sizeGiB: number;
    kmsKeyId: string;
    tags: Record<string, string>;
    clientToken: string;
  }): Promise<VolumeInfo> {
    const out = await retrying(
      () =>
        this.#ec2.send(
          new CreateVolumeCommand({
            AvailabilityZone: input.availabilityZone,
            Size: input.sizeGiB,
            VolumeType: 'gp3',
            Encrypted: true,
            KmsKeyId: input.kmsKeyId,
            ClientToken: input.clientToken,
            TagSpecifications: tagSpecifications('volume', { ...input.tags, [TAG.stream]: input.stream }),
          }),
        ),
      { on: THROTTLING, sleep: this.#sleep },
    );
    const volumeId = out.VolumeId;
    if (!volumeId) throw new Error(`CreateVolume for stream ${input.stream} returned no VolumeId`);
    await this.#waitFor(volumeId, 'available');
    const volume = await this.#describe(volumeId);
    if (!volume) throw new Error(`volume ${volumeId} vanished after creation`);
    return toVolumeInfo(volume);
  }

  async attach(volumeId: string, instanceId: string): Promise<Attachment> {
    const before = await this.#describe(volumeId);
    if (!before) throw new Error(`volume ${volumeId} does not exist`);
    const current = before.Attachments?.find((a) => a.InstanceId === instanceId);
    let device = current?.Device;
    if (!device) {
      device = await this.#freeDeviceName(instanceId);
      const name = device;
      // IncorrectState: the volume is still creating or detaching; wait it out, bounded.
      await retrying(
        () =>
          this.#ec2.send(
            new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: name }),
          ),
        { on: ['IncorrectState', ...THROTTLING], sleep: this.#sleep, attempts: 8, baseDelayMs: 2000 },
      );
    }
    await this.#waitFor(volumeId, 'in-use');
    return { kind: 'block', devicePath: await this.#lookup(volumeId, device) };
  }

  async detach(volumeId: string, instanceId: string): Promise<void> {
    const volume = await this.#describe(volumeId);
    if (!volume) throw new Error(`volume ${volumeId} does not exist`);
    if (!volume.Attachments?.some((a) => a.InstanceId === instanceId && a.State !== 'detached')) return;
    await retrying(
      () => this.#ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId })),
      { on: ['IncorrectState', ...THROTTLING], sleep: this.#sleep, attempts: 8, baseDelayMs: 2000 },
    );
    await this.#waitFor(volumeId, 'available');
  }

  /** Grows the volume; resolves once the new size is usable (modification optimizing or completed). */
  async grow(volumeId: string, sizeGiB: number): Promise<void> {
    const volume = await this.#describe(volumeId);
    if (!volume) throw new Error(`volume ${volumeId} does not exist`);
    if ((volume.Size ?? 0) >= sizeGiB) return;
    await retrying(() => this.#ec2.send(new ModifyVolumeCommand({ VolumeId: volumeId, Size: sizeGiB })), {
      on: ['IncorrectModificationState', ...THROTTLING],
      sleep: this.#sleep,
    });
    // No SDK waiter exists for volume modifications: poll, bounded by the same limit as the waiters.
    const deadline = this.#wait.maxWaitTime * 1000;
    for (let waited = 0; ; waited += 2000) {
      let state: string | undefined;
      for await (const page of paginateDescribeVolumesModifications(
        { client: this.#ec2 },
        { VolumeIds: [volumeId] },
      )) {
        state = page.VolumesModifications?.[0]?.ModificationState ?? state;
      }
      if (state === 'optimizing' || state === 'completed') return;
      if (state === 'failed') throw new Error(`volume ${volumeId}: growing to ${sizeGiB} GiB failed`);
      if (waited >= deadline) throw new Error(`volume ${volumeId}: still ${state} growing to ${sizeGiB} GiB`);
      await this.#sleep(2000);
    }
  }

  async #describe(volumeId: string): Promise<Volume | undefined> {
    try {
      const out = await this.#ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
      return out.Volumes?.[0];
    } catch (err) {
      if (isError(err, 'InvalidVolume.NotFound')) return undefined;
      throw err;
    }
  }

  async #waitFor(volumeId: string, state: 'available' | 'in-use'): Promise<void> {
    const waiter = state === 'available' ? waitUntilVolumeAvailable : waitUntilVolumeInUse;
    await waitWithRecheck(
      `volume ${volumeId} becoming ${state}`,
      this.#wait,
      (limits) =>
        waiter(
          {
            client: this.#ec2,
            maxWaitTime: limits.maxWaitTime,
            minDelay: limits.minDelay ?? 2,
            maxDelay: limits.maxDelay ?? 15,
          },
          { VolumeIds: [volumeId] },
        ),
      async () => {
        const v = await this.#describe(volumeId);
        return { reached: v?.State === state, state: v?.State };
      },
    );
  }

  async #freeDeviceName(instanceId: string): Promise<string> {
    const out = await this.#ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const used = new Set(
      (out.Reservations?.[0]?.Instances?.[0]?.BlockDeviceMappings ?? []).map((m) => m.DeviceName),
    );
    const free = DEVICE_NAMES.find((d) => !used.has(d) && !used.has(d.replace('/dev/sd', '/dev/xvd')));
    if (!free) throw new Error(`instance ${instanceId} has no free device name for another volume`);
    return free;
  }
}
