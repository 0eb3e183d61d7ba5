// The local AMI: a registry entry (one JSON file per image) that points at a snapshot, with architecture,
// boot mode, root device and tags. Registering emits "EC2 AMI State Change" (pending, then available) as EC2
// does. Launching is modelled by restore(): the image's blocks decrypted to a raw disk, which needs the
// customer key, so an account without a grant on it cannot, as with shared encrypted AMIs on AWS.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Clock, ImageInfo, Images, RegisterImageInput, Tags } from '#ports';
import { systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';
import { type ServiceEventSink, serviceEvent } from './service-events.ts';
import type { LocalSnapshots, SnapshotManifest } from './snapshots.ts';

export interface LocalImagesOptions {
  /** The region's EBS state directory (see ebsStateDir), shared with LocalSnapshots. */
  dir: string;
  region: string;
  /** The account that owns the images (envelope `account`). */
  accountId: string;
  snapshots: LocalSnapshots;
  events: ServiceEventSink;
  clock?: Clock;
}

interface ImageRecord extends ImageInfo {
  ownerAccountId: string;
  description: string;
  rootDeviceName: string;
  clientToken: string;
  region: string;
}

export function imageArn(region: string, imageId: string): string {
  return `arn:aws:ec2:${region}::image/${imageId}`;
}

export class LocalImages implements Images {
  readonly dir: string;
  readonly region: string;
  readonly accountId: string;
  readonly #snapshots: LocalSnapshots;
  readonly #events: ServiceEventSink;
  readonly #clock: Clock;

  constructor(opts: LocalImagesOptions) {
    this.dir = opts.dir;
    this.region = opts.region;
    this.accountId = opts.accountId;
    this.#snapshots = opts.snapshots;
    this.#events = opts.events;
    this.#clock = opts.clock ?? systemClock;
  }

  async register(input: RegisterImageInput): Promise<{ imageId: string; created: boolean }> {
    const existing = this.#records().find((r) => r.name === input.name && r.state !== 'deregistered');
    if (existing) return { imageId: existing.imageId, created: false };
    const snapshot = this.#snapshots.manifest(input.snapshotId);
    if (!snapshot)
      throw new LocalServiceError(
        'InvalidSnapshot.NotFound',
        `The snapshot '${input.snapshotId}' does not exist.`,
      );
    const imageId = `ami-${randomBytes(9).toString('hex').slice(0, 17)}`;
    const record: ImageRecord = {
      imageId,
      name: input.name,
      state: 'available',
      snapshotId: input.snapshotId,
      architecture: input.architecture,
      bootMode: input.bootMode,
      encrypted: true,
      kmsKeyId: snapshot.kmsKeyId,
      tags: { ...input.tags },
      createdAt: this.#clock.now().toISOString(),
      sharedWith: { organizationArns: [], ouArns: [], accountIds: [] },
      ownerAccountId: this.accountId,
      description: input.description,
      rootDeviceName: input.rootDeviceName,
      clientToken: input.clientToken,
      region: this.region,
    };
    this.#save(record);
    // Local registration completes at once; the events still come in EC2's order.
    this.#notify(imageId, 'pending');
    this.#notify(imageId, 'available');
    return { imageId, created: true };
  }

  async get(imageId: string): Promise<ImageInfo | undefined> {
    const record = this.#load(imageId);
    return record && publicInfo(record);
  }

  async findByName(name: string): Promise<ImageInfo | undefined> {
    const record = this.#records().find((r) => r.name === name && r.state !== 'deregistered');
    return record && publicInfo(record);
  }

  async listByTag(key: string, value: string): Promise<ImageInfo[]> {
    return this.#records()
      .filter((r) => r.tags[key] === value && r.state !== 'deregistered')
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      .map(publicInfo);
  }

  async share(imageId: string, to: { organizationArns: string[]; ouArns: string[] }): Promise<void> {
    const record = this.#require(imageId);
    const union = (a: string[], b: string[]) => [...new Set([...a, ...b])].sort();
    this.#save({
      ...record,
      sharedWith: {
        organizationArns: union(record.sharedWith.organizationArns, to.organizationArns),
        ouArns: union(record.sharedWith.ouArns, to.ouArns),
        accountIds: record.sharedWith.accountIds,
      },
    });
  }

  async deprecate(imageId: string, at: Date): Promise<void> {
    const record = this.#require(imageId);
    this.#save({ ...record, deprecatedAt: at.toISOString() });
  }

  async tag(imageId: string, tags: Tags): Promise<void> {
    const record = this.#require(imageId);
    this.#save({ ...record, tags: { ...record.tags, ...tags } });
  }

  async deregister(imageId: string): Promise<void> {
    const record = this.#require(imageId);
    if (record.state === 'deregistered') return;
    this.#save({ ...record, state: 'deregistered' });
    this.#notify(imageId, 'deregistered');
  }

  // ---------------------------------------------------------------- local-only

  /** Every image ever registered here, deregistered ones included. */
  list(): ImageInfo[] {
    return this.#records().map(publicInfo);
  }

  /**
   * "Launch": restores the image's snapshot to `outFile` as `callerAccountId`. Refused (AccessDeniedException
   * from the key service) for an account without ownership of or a grant on the customer key.
   */
  async restore(
    imageId: string,
    outFile: string,
    callerAccountId: string,
  ): Promise<{ bytes: number; format: SnapshotManifest['format']; image: ImageInfo }> {
    const record = this.#require(imageId);
    if (record.state !== 'available')
      throw new LocalServiceError('InvalidAMIID.Unavailable', `image ${imageId} is ${record.state}`);
    const restored = await this.#snapshots.restore(record.snapshotId, outFile, callerAccountId);
    return { ...restored, image: publicInfo(record) };
  }

  /** Bytes a restore of the image writes: its non-zero blocks (the rest of the raw disk stays sparse). */
  restoreBytes(imageId: string): number {
    const manifest = this.#snapshots.manifest(this.#require(imageId).snapshotId);
    return manifest ? manifest.nonZeroBlocks * manifest.blockSize : 0;
  }

  ownerOf(imageId: string): string {
    return this.#require(imageId).ownerAccountId;
  }

  // ---------------------------------------------------------------- internals

  #notify(imageId: string, state: 'pending' | 'available' | 'deregistered'): void {
    this.#events.emit(
      serviceEvent({
        'detail-type': 'EC2 AMI State Change',
        source: 'aws.ec2',
        account: this.accountId,
        region: this.region,
        resources: [imageArn(this.region, imageId)],
        detail: { RequestId: crypto.randomUUID(), ImageId: imageId, State: state, ErrorMessage: '' },
      }),
    );
  }

  #path(imageId: string): string {
    if (!/^ami-[0-9a-f]{17}$/.test(imageId))
      throw new LocalServiceError('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`);
    return join(this.dir, 'images', `${imageId}.json`);
  }

  #load(imageId: string): ImageRecord | undefined {
    return readJson<ImageRecord | undefined>(this.#path(imageId), undefined);
  }

  #require(imageId: string): ImageRecord {
    const record = this.#load(imageId);
    if (!record)
      throw new LocalServiceError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`);
    return record;
  }

  #save(record: ImageRecord): void {
    writeJsonAtomic(this.#path(record.imageId), record);
  }

  #records(): ImageRecord[] {
    return readJsonDir<ImageRecord>(join(this.dir, 'images'), /^ami-[0-9a-f]{17}\.json$/);
  }
}

function publicInfo(r: ImageRecord): ImageInfo {
  const info: ImageInfo = {
    imageId: r.imageId,
    name: r.name,
    state: r.state,
    snapshotId: r.snapshotId,
    architecture: r.architecture,
    bootMode: r.bootMode,
    encrypted: r.encrypted,
    kmsKeyId: r.kmsKeyId,
    tags: { ...r.tags },
    createdAt: r.createdAt,
    sharedWith: {
      organizationArns: [...r.sharedWith.organizationArns],
      ouArns: [...r.sharedWith.ouArns],
      accountIds: [...r.sharedWith.accountIds],
    },
  };
  if (r.deprecatedAt) info.deprecatedAt = r.deprecatedAt;
  return info;
}
