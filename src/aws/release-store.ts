// ReleaseStore on one DynamoDB table (pk, sk). Items of a stream share pk "STREAM#<stream>":
//   sk "COUNTER"            the stream's last sequence, bumped atomically with UpdateItem ADD
//   sk "REVISION#<rev>"     claims the revision: makes create idempotent on (stream, revision)
//   sk "RELEASE#<seq 8>"    the release itself, with `regions` and `accounts` maps
// Region updates are single conditional UpdateItems, so concurrent handlers never lose each other's writes.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  paginateQuery,
  paginateScan,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { releaseId as formatReleaseId } from '#core/naming.ts';
import type {
  AccountRecord,
  RegionRecord,
  RegionState,
  Rejection,
  Release,
  ReleaseStore,
  SourceRef,
} from '#ports';
import { isError } from './retry.ts';

const streamPk = (stream: string) => `STREAM#${stream}`;
const releaseSk = (sequence: number) => `RELEASE#${String(sequence).padStart(8, '0')}`;
const revisionSk = (revision: string) => `REVISION#${revision}`;

/** "web-base#00000042" → stream and sequence; the format of core/naming.ts releaseId(). */
function parseReleaseId(id: string): { stream: string; sequence: number } | undefined {
  const hash = id.lastIndexOf('#');
  const sequence = Number(id.slice(hash + 1));
  if (hash < 1 || !Number.isInteger(sequence) || sequence < 1) return undefined;
  return { stream: id.slice(0, hash), sequence };
}

/** Drops undefined fields, which DynamoDB cannot store, whatever the client's marshalling options. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

type ReleaseItem = Release & { pk: string; sk: string; type: 'release' };

/** A refused upload is one attribute per etag ("rejection#<etag>"), so a condition refuses a duplicate. */
const REJECTION_PREFIX = 'rejection#';

function toRelease(item: Record<string, unknown>): Release {
  const { pk: _pk, sk: _sk, type: _type, ...rest } = item as unknown as ReleaseItem;
  const release: Release = { ...rest };
  const rejections: Rejection[] = [];
  for (const [name, value] of Object.entries(rest)) {
    if (!name.startsWith(REJECTION_PREFIX)) continue;
    rejections.push(value as unknown as Rejection);
    delete (release as unknown as Record<string, unknown>)[name];
  }
  if (rejections.length > 0)
    release.rejections = rejections.sort((a, b) => a.rejectedAt.localeCompare(b.rejectedAt));
  return release;
}

export class DynamoReleaseStore implements ReleaseStore {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(options: { tableName: string; client?: DynamoDBClient | DynamoDBDocumentClient }) {
    this.#table = options.tableName;
    const client = options.client ?? new DynamoDBClient({ retryMode: 'adaptive' });
    this.#db =
      client instanceof DynamoDBDocumentClient
        ? client
        : DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async create(input: {
    stream: string;
    revision: string;
    source: SourceRef;
    regions: string[];
    uploadedAt: string;
  }): Promise<{ release: Release; created: boolean }> {
    const existing = await this.#byRevision(input.stream, input.revision);
    if (existing) return { release: existing, created: false };

    const counter = await this.#db.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: { pk: streamPk(input.stream), sk: 'COUNTER' },
        UpdateExpression: 'ADD #seq :one',
        ExpressionAttributeNames: { '#seq': 'sequence' },
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const sequence = Number(counter.Attributes?.sequence);
    if (!Number.isInteger(sequence) || sequence < 1) {
      throw new Error(`release counter of stream ${input.stream} returned no sequence`);
    }
    const id = formatReleaseId(input.stream, sequence);
    const now = new Date().toISOString();
    const release: Release = {
      releaseId: id,
      stream: input.stream,
      revision: input.revision,
      sequence,
      source: input.source,
      createdAt: now,
      uploadedAt: input.uploadedAt,
      regions: Object.fromEntries(input.regions.map((r) => [r, { state: 'queued', updatedAt: now }])),
      accounts: {},
    };
    try {
      await this.#db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.#table,
                Item: { pk: streamPk(input.stream), sk: revisionSk(input.revision), releaseId: id },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              Put: {
                TableName: this.#table,
                Item: {
                  pk: streamPk(input.stream),
                  sk: releaseSk(sequence),
                  type: 'release',
                  ...plain(release),
                },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      );
      return { release, created: true };
    } catch (err) {
      // A concurrent duplicate claimed the revision first: its release wins, this sequence stays unused.
      if (!isError(err, 'TransactionCanceledException')) throw err;
      const winner = await this.#byRevision(input.stream, input.revision);
      if (!winner) throw err;
      return { release: winner, created: false };
    }
  }

  async get(releaseId: string): Promise<Release | undefined> {
    const parsed = parseReleaseId(releaseId);
    if (!parsed) return undefined;
    const out = await this.#db.send(
      new GetCommand({
        TableName: this.#table,
        Key: { pk: streamPk(parsed.stream), sk: releaseSk(parsed.sequence) },
        ConsistentRead: true,
      }),
    );
    return out.Item ? toRelease(out.Item) : undefined;
  }

  /** Releases oldest first; all streams when no stream is given (a Scan: `stemcell status` only). */
  async list(stream?: string): Promise<Release[]> {
    const releases: Release[] = [];
    if (stream) {
      const pages = paginateQuery(
        { client: this.#db },
        {
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :release)',
          ExpressionAttributeValues: { ':pk': streamPk(stream), ':release': 'RELEASE#' },
        },
      );
      for await (const page of pages) for (const item of page.Items ?? []) releases.push(toRelease(item));
      return releases;
    }
    const pages = paginateScan(
      { client: this.#db },
      {
        TableName: this.#table,
        FilterExpression: '#type = :release',
        ExpressionAttributeNames: { '#type': 'type' },
        ExpressionAttributeValues: { ':release': 'release' },
      },
    );
    for await (const page of pages) for (const item of page.Items ?? []) releases.push(toRelease(item));
    return releases.sort((a, b) => a.stream.localeCompare(b.stream) || a.sequence - b.sequence);
  }

  async updateRegion(
    releaseId: string,
    region: string,
    patch: Partial<RegionRecord>,
    onlyIf?: { stateIn: RegionState[] },
  ): Promise<boolean> {
    const key = this.#key(releaseId);
    const fields = Object.entries(patch).filter(([, v]) => v !== undefined);
    const names: Record<string, string> = { '#regions': 'regions', '#region': region };
    const values: Record<string, unknown> = {};
    const sets = fields.map(([field, value], i) => {
      names[`#f${i}`] = field;
      values[`:v${i}`] = value;
      return `#regions.#region.#f${i} = :v${i}`;
    });
    if (onlyIf && onlyIf.stateIn.length === 0) return false;
    let condition = 'attribute_exists(pk) AND attribute_exists(#regions.#region)';
    if (onlyIf) {
      names['#state'] = 'state';
      const states = onlyIf.stateIn.map((s, i) => {
        values[`:s${i}`] = s;
        return `:s${i}`;
      });
      condition += ` AND #regions.#region.#state IN (${states.join(', ')})`;
    }
    if (sets.length === 0) {
      // Nothing to write: still answer whether the guard holds.
      const release = await this.get(releaseId);
      const record = release?.regions[region];
      return !!record && (!onlyIf || onlyIf.stateIn.includes(record.state));
    }
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: key,
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (!isError(err, 'ConditionalCheckFailedException')) throw err;
      if (onlyIf) return false;
      // Not guarded and the region is new to this release: add its whole record (first writer wins).
      return this.#addRegion(releaseId, region, patch);
    }
  }

  async #addRegion(releaseId: string, region: string, patch: Partial<RegionRecord>): Promise<boolean> {
    const release = await this.get(releaseId);
    if (!release) throw new Error(`release ${releaseId} does not exist`);
    const record = { state: 'queued', updatedAt: new Date().toISOString(), ...patch };
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: this.#key(releaseId),
          UpdateExpression: 'SET #regions.#region = :record',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#regions.#region)',
          ExpressionAttributeNames: { '#regions': 'regions', '#region': region },
          ExpressionAttributeValues: { ':record': plain(record) },
        }),
      );
      return true;
    } catch (err) {
      if (!isError(err, 'ConditionalCheckFailedException')) throw err;
      // Another writer added it meanwhile: merge into it.
      return this.updateRegion(releaseId, region, patch);
    }
  }

  async recordAccount(releaseId: string, record: AccountRecord): Promise<void> {
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: this.#key(releaseId),
          UpdateExpression: 'SET #accounts.#account = :record',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: {
            '#accounts': 'accounts',
            '#account': `${record.accountId}/${record.region}`,
          },
          ExpressionAttributeValues: { ':record': plain(record) },
        }),
      );
    } catch (err) {
      if (isError(err, 'ConditionalCheckFailedException'))
        throw new Error(`release ${releaseId} does not exist`);
      throw err;
    }
  }

  async recordRejection(releaseId: string, rejection: Rejection): Promise<boolean> {
    const release = await this.get(releaseId);
    if (!release) throw new Error(`release ${releaseId} does not exist`);
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: this.#key(releaseId),
          UpdateExpression: 'SET #rejection = :rejection',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#rejection)',
          ExpressionAttributeNames: { '#rejection': `${REJECTION_PREFIX}${rejection.source.etag}` },
          ExpressionAttributeValues: { ':rejection': plain(rejection) },
        }),
      );
      return true;
    } catch (err) {
      if (isError(err, 'ConditionalCheckFailedException')) return false;
      throw err;
    }
  }

  /** Sets completedAt once; false if the release was already complete. */
  async markComplete(releaseId: string, completedAt: string): Promise<boolean> {
    try {
      await this.#db.send(
        new UpdateCommand({
          TableName: this.#table,
          Key: this.#key(releaseId),
          UpdateExpression: 'SET completedAt = :at',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(completedAt)',
          ExpressionAttributeValues: { ':at': completedAt },
        }),
      );
      return true;
    } catch (err) {
      if (isError(err, 'ConditionalCheckFailedException')) return false;
      throw err;
    }
  }

  async #byRevision(stream: string, revision: string): Promise<Release | undefined> {
    const claim = await this.#db.send(
      new GetCommand({
        TableName: this.#table,
        Key: { pk: streamPk(stream), sk: revisionSk(revision) },
        ConsistentRead: true,
      }),
    );
    const id = claim.Item?.releaseId;
    return typeof id === 'string' ? this.get(id) : undefined;
  }

  #key(releaseId: string): { pk: string; sk: string } {
    const parsed = parseReleaseId(releaseId);
    if (!parsed)
      throw new Error(`not a release id: ${JSON.stringify(releaseId)} (expected <stream>#<sequence>)`);
    return { pk: streamPk(parsed.stream), sk: releaseSk(parsed.sequence) };
  }
}
