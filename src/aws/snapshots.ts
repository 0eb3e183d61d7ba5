// Snapshots on EBS. CreateSnapshot takes no ClientToken, so the token is kept as a tag (set at creation) and
// a retry finds the snapshot it already made instead of starting a second one.
import {
  CreateSnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  paginateDescribeSnapshots,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import type { SnapshotInfo, Snapshots, Tags } from '#ports';
import { isError, retrying, type Sleep, THROTTLING } from './retry.ts';
import { fromTagList, tagFilter, tagSpecifications } from './tags.ts';

export const CLIENT_TOKEN_TAG = 'stemcell:client-token';

function toSnapshotInfo(s: Snapshot): SnapshotInfo {
  const state = s.State === 'completed' ? 'completed' : s.State === 'error' ? 'error' : 'pending';
  const info: SnapshotInfo = {
    snapshotId: s.SnapshotId ?? '',
    volumeId: s.VolumeId ?? '',
    state,
    tags: fromTagList(s.Tags),
    kmsKeyId: s.KmsKeyId ?? '',
  };
  return info;
}

export class EbsSnapshots implements Snapshots {
  readonly #ec2: EC2Client;
  readonly #sleep: Sleep | undefined;

  constructor(options: { client?: EC2Client; sleep?: Sleep } = {}) {
    this.#ec2 = options.client ?? new EC2Client({ retryMode: 'adaptive' });
    this.#sleep = options.sleep;
  }

  async create(
    volumeId: string,
    input: { description: string; tags: Tags; clientToken: string },
  ): Promise<SnapshotInfo> {
    const existing = await this.#findByToken(input.clientToken);
    if (existing) return existing;
    const out = await retrying(
      () =>
        this.#ec2.send(
          new CreateSnapshotCommand({
            VolumeId: volumeId,
            Description: input.description,
            TagSpecifications: tagSpecifications('snapshot', {
              ...input.tags,
              [CLIENT_TOKEN_TAG]: input.clientToken,
            }),
          }),
        ),
      {
        on: ['ConcurrentSnapshotLimitExceeded', 'SnapshotCreationPerVolumeRateExceeded', ...THROTTLING],
        attempts: 8,
        baseDelayMs: 2000,
        maxDelayMs: 60_000,
        ...(this.#sleep ? { sleep: this.#sleep } : {}),
      },
    );
    return toSnapshotInfo(out);
  }

  async get(snapshotId: string): Promise<SnapshotInfo | undefined> {
    try {
      const out = await this.#ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [snapshotId] }));
      const s = out.Snapshots?.[0];
      return s ? toSnapshotInfo(s) : undefined;
    } catch (err) {
      if (isError(err, 'InvalidSnapshot.NotFound')) return undefined;
      throw err;
    }
  }

  /** Deletes the snapshot; one already gone counts as deleted. */
  async delete(snapshotId: string): Promise<void> {
    try {
      await retrying(() => this.#ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })), {
        on: THROTTLING,
        ...(this.#sleep ? { sleep: this.#sleep } : {}),
      });
    } catch (err) {
      if (isError(err, 'InvalidSnapshot.NotFound')) return;
      throw err;
    }
  }

  async #findByToken(clientToken: string): Promise<SnapshotInfo | undefined> {
    const pages = paginateDescribeSnapshots(
      { client: this.#ec2 },
      { OwnerIds: ['self'], Filters: [tagFilter(CLIENT_TOKEN_TAG, clientToken)] },
    );
    for await (const page of pages) {
      const s = page.Snapshots?.find((x) => x.State !== 'error');
      if (s) return toSnapshotInfo(s);
    }
    return undefined;
  }
}
