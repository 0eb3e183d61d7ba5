// Snapshots on EBS, two ways.
// - CreateSnapshot of a stream's volume (the `create-snapshot` fallback). It takes no ClientToken, so the token is
//   kept as a tag (set at creation) and a retry finds the snapshot it already made instead of starting a second.
// - The EBS direct APIs (`direct`, the default): StartSnapshot on the stream's previous snapshot, PutSnapshotBlock
//   for the changed blocks, CompleteSnapshot. Their retry rules follow AWS's advice and awslabs/coldsnap:
//   throttling and server errors are retried with backoff; a snapshot just started may answer "does not exist"
//   for a while (coldsnap waits up to ~2 minutes), so that answer is retried only within that early window.
import {
  CompleteSnapshotCommand,
  EBSClient,
  GetSnapshotBlockCommand,
  PutSnapshotBlockCommand,
  paginateListSnapshotBlocks,
  StartSnapshotCommand,
} from '@aws-sdk/client-ebs';
import {
  CreateSnapshotCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  paginateDescribeSnapshots,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import type {
  BlockSnapshots,
  SnapshotBlockRef,
  SnapshotInfo,
  StartedSnapshot,
  StartSnapshotInput,
  Tags,
} from '#ports';
import { errorName, isError, realSleep, retrying, type Sleep, THROTTLING } from './retry.ts';
import { fromTagList, tagFilter, tagSpecifications, toTagList } from './tags.ts';

export const CLIENT_TOKEN_TAG = 'stemcell:client-token';

/** Errors of the EBS direct APIs that AWS asks callers to retry (throttling, 5xx). */
export const EBS_RETRYABLE = [
  ...THROTTLING,
  'RequestThrottledException',
  'InternalServerException',
  'ServiceUnavailableException',
  'ConcurrentLimitExceededException',
];

export interface EbsDirectRetry {
  /**
   * How long after StartSnapshot a "does not exist" answer is taken for the documented early window and
   * retried; later it is final. coldsnap's 12 attempts at 2 s × attempt cover 132 s.
   * @defaultValue 150_000
   */
  notFoundWindowMs: number;
  /** Attempts per call for throttling and server errors. @defaultValue 10 */
  attempts: number;
  /** First backoff; doubles per attempt, full jitter. @defaultValue 200 */
  baseDelayMs: number;
  /** @defaultValue 10_000 */
  maxDelayMs: number;
}

export const DEFAULT_EBS_RETRY: EbsDirectRetry = {
  notFoundWindowMs: 150_000,
  attempts: 10,
  baseDelayMs: 200,
  maxDelayMs: 10_000,
};

function toSnapshotInfo(s: Snapshot): SnapshotInfo {
  const state = s.State === 'completed' ? 'completed' : s.State === 'error' ? 'error' : 'pending';
  const info: SnapshotInfo = {
    snapshotId: s.SnapshotId ?? '',
    volumeId: s.VolumeId ?? '',
    state,
    tags: fromTagList(s.Tags),
    kmsKeyId: s.KmsKeyId ?? '',
  };
  if (s.VolumeSize !== undefined) info.volumeSizeGiB = s.VolumeSize;
  return info;
}

export class EbsSnapshots implements BlockSnapshots {
  readonly #ec2: EC2Client;
  readonly #ebsClient: EBSClient | undefined;
  #defaultEbs: EBSClient | undefined;
  readonly #sleep: Sleep;
  readonly #now: () => number;
  readonly #retry: EbsDirectRetry;
  /** When each snapshot this process started was started: the "does not exist" window runs from there. */
  readonly #startedAt = new Map<string, number>();

  constructor(
    options: {
      client?: EC2Client;
      /** The EBS direct APIs' client, in the same region as `client`. */
      ebs?: EBSClient;
      sleep?: Sleep;
      /** Milliseconds clock for the early window. @defaultValue Date.now */
      now?: () => number;
      retry?: Partial<EbsDirectRetry>;
    } = {},
  ) {
    this.#ec2 = options.client ?? new EC2Client({ retryMode: 'adaptive' });
    this.#ebsClient = options.ebs;
    this.#sleep = options.sleep ?? realSleep;
    this.#now = options.now ?? Date.now;
    this.#retry = { ...DEFAULT_EBS_RETRY, ...options.retry };
  }

  /** Made on first use: the functions that only describe and delete snapshots never need one. */
  get #ebs(): EBSClient {
    if (this.#ebsClient) return this.#ebsClient;
    this.#defaultEbs ??= new EBSClient({ retryMode: 'adaptive' });
    return this.#defaultEbs;
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
        sleep: this.#sleep,
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

  /** Deletes the snapshot (completed, or pending: a direct-API snapshot never completed); gone counts as deleted. */
  async delete(snapshotId: string): Promise<void> {
    try {
      await retrying(() => this.#ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })), {
        on: THROTTLING,
        sleep: this.#sleep,
      });
    } catch (err) {
      if (isError(err, 'InvalidSnapshot.NotFound')) return;
      throw err;
    }
  }

  async findByTags(tags: Tags): Promise<SnapshotInfo[]> {
    const pages = paginateDescribeSnapshots(
      { client: this.#ec2 },
      { OwnerIds: ['self'], Filters: Object.entries(tags).map(([k, v]) => tagFilter(k, v)) },
    );
    const found: SnapshotInfo[] = [];
    for await (const page of pages) for (const s of page.Snapshots ?? []) found.push(toSnapshotInfo(s));
    return found;
  }

  // ---------------------------------------------------------------- EBS direct APIs

  async start(input: StartSnapshotInput): Promise<StartedSnapshot> {
    if (!input.parentSnapshotId && !input.kmsKeyId)
      throw new Error(`StartSnapshot ${input.clientToken}: a first snapshot needs the stream's customer key`);
    const out = await this.#retrying(`StartSnapshot ${input.clientToken}`, () =>
      this.#ebs.send(
        new StartSnapshotCommand({
          VolumeSize: input.volumeSizeGiB,
          // A child takes its parent's encryption: EBS refuses Encrypted together with ParentSnapshotId.
          ...(input.parentSnapshotId
            ? { ParentSnapshotId: input.parentSnapshotId }
            : { Encrypted: true, KmsKeyArn: input.kmsKeyId }),
          Description: input.description,
          ClientToken: input.clientToken,
          Timeout: input.timeoutMinutes,
          Tags: toTagList(input.tags),
        }),
      ),
    );
    if (!out.SnapshotId || !out.BlockSize)
      throw new Error(`StartSnapshot ${input.clientToken}: the answer holds no snapshot id or block size`);
    if (!this.#startedAt.has(out.SnapshotId)) this.#startedAt.set(out.SnapshotId, this.#now());
    return {
      snapshotId: out.SnapshotId,
      blockSize: out.BlockSize,
      ...(out.KmsKeyArn ? { kmsKeyArn: out.KmsKeyArn } : {}),
    };
  }

  async putBlock(snapshotId: string, index: number, data: Buffer, checksum: string): Promise<void> {
    await this.#retrying(
      `PutSnapshotBlock ${snapshotId} block ${index}`,
      () =>
        this.#ebs.send(
          new PutSnapshotBlockCommand({
            SnapshotId: snapshotId,
            BlockIndex: index,
            BlockData: data,
            DataLength: data.length,
            Checksum: checksum,
            ChecksumAlgorithm: 'SHA256',
          }),
        ),
      snapshotId,
    );
  }

  async complete(
    snapshotId: string,
    input: { changedBlocksCount: number; checksum: string },
  ): Promise<SnapshotInfo['state']> {
    const out = await this.#retrying(
      `CompleteSnapshot ${snapshotId}`,
      () =>
        this.#ebs.send(
          new CompleteSnapshotCommand({
            SnapshotId: snapshotId,
            ChangedBlocksCount: input.changedBlocksCount,
            Checksum: input.checksum,
            ChecksumAlgorithm: 'SHA256',
            ChecksumAggregationMethod: 'LINEAR',
          }),
        ),
      snapshotId,
    );
    this.#startedAt.delete(snapshotId);
    return out.Status === 'completed' ? 'completed' : out.Status === 'error' ? 'error' : 'pending';
  }

  async *listBlocks(snapshotId: string): AsyncIterable<SnapshotBlockRef> {
    const pages = paginateListSnapshotBlocks({ client: this.#ebs }, { SnapshotId: snapshotId });
    for await (const page of pages) {
      for (const b of page.Blocks ?? []) {
        // Number(): moto answers the index as a JSON string; EBS as a number.
        const index = Number(b.BlockIndex);
        if (!Number.isInteger(index) || index < 0 || !b.BlockToken)
          throw new Error(`ListSnapshotBlocks ${snapshotId}: a block without index or token`);
        yield { index, token: b.BlockToken };
      }
    }
  }

  async getBlock(snapshotId: string, block: SnapshotBlockRef): Promise<{ data: Buffer; checksum: string }> {
    const out = await this.#retrying(`GetSnapshotBlock ${snapshotId} block ${block.index}`, () =>
      this.#ebs.send(
        new GetSnapshotBlockCommand({
          SnapshotId: snapshotId,
          BlockIndex: block.index,
          BlockToken: block.token,
        }),
      ),
    );
    if (!out.BlockData || !out.Checksum)
      throw new Error(`GetSnapshotBlock ${snapshotId} block ${block.index}: no data or checksum`);
    return { data: Buffer.from(await out.BlockData.transformToByteArray()), checksum: out.Checksum };
  }

  /**
   * Retries what AWS says to retry (throttling, server errors) with capped exponential backoff, and "does not
   * exist" on a snapshot this process started while the early window lasts. The last error is rethrown with
   * what was being done.
   */
  async #retrying<T>(what: string, call: () => Promise<T>, snapshotId?: string): Promise<T> {
    const r = this.#retry;
    for (let attempt = 1, notFound = 0; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const started = snapshotId === undefined ? undefined : this.#startedAt.get(snapshotId);
        const early =
          started !== undefined &&
          isError(err, 'ResourceNotFoundException') &&
          this.#now() - started < r.notFoundWindowMs;
        if (early) {
          // coldsnap's schedule: 2 s × attempt, so the window is crossed in about a dozen tries.
          notFound++;
          await this.#sleep(Math.min(2000 * notFound, r.notFoundWindowMs));
          continue;
        }
        if (attempt < r.attempts && isError(err, ...EBS_RETRYABLE)) {
          await this.#sleep(Math.random() * Math.min(r.maxDelayMs, r.baseDelayMs * 2 ** (attempt - 1)));
          continue;
        }
        // The service's error name stays on the error, so callers can still tell one answer from another.
        const name = errorName(err) ?? 'Error';
        throw Object.assign(new Error(`${what}: ${name}: ${(err as Error).message}`, { cause: err }), {
          name,
        });
      }
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
