// ReleaseStore on one DynamoDB table (pk, sk). Items of a stream share pk "STREAM#<stream>":
//   sk "COUNTER"            the stream's last sequence, moved in the same transaction that writes the release
//   sk "REVISION#<rev>"     claims the revision: makes create idempotent on (stream, revision)
//   sk "RELEASE#<seq 8>"    the release itself, with its `regions` map
//   sk "RELEASE#<seq 8>#ACCOUNT#<account>/<region>"   one account's outcome (an item each: see recordAccount)
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
import { releaseId as formatReleaseId } from '#core/model/naming.ts';
import type {
  AccountRecord,
  RegionRecord,
  RegionState,
  Rejection,
  Release,
  ReleaseStore,
  SourceRef,
} from '#ports';
import { isError, realSleep, type Sleep } from './retry.ts';

const streamPk = (stream: string) => `STREAM#${stream}`;
const releaseSk = (sequence: number) => `RELEASE#${String(sequence).padStart(8, '0')}`;
const revisionSk = (revision: string) => `REVISION#${revision}`;
/** Rounds of the optimistic create: each round one concurrent writer of the stream wins. */
const CREATE_ATTEMPTS = 30;

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

/** The error for a release id that names no release. */
function missing(releaseId: string): Error {
  return new Error(`release ${releaseId} does not exist`);
}

/** A refused upload is one attribute per etag ("rejection#<etag>"), so a condition refuses a duplicate. */
const REJECTION_PREFIX = 'rejection#';

/** The release with its "rejection#<etag>" attributes gathered into `rejections`, oldest first. */
function withRejections(release: Release): Release {
  const rejections: Rejection[] = [];
  for (const [name, value] of Object.entries(release)) {
    if (!name.startsWith(REJECTION_PREFIX)) continue;
    rejections.push(value as unknown as Rejection);
    delete (release as unknown as Record<string, unknown>)[name];
  }
  if (rejections.length > 0)
    release.rejections = rejections.sort((a, b) => a.rejectedAt.localeCompare(b.rejectedAt));
  return release;
}

/** A failed condition on an item that exists (ReturnValuesOnConditionCheckFailure: ALL_OLD hands it back). */
function failedOnItem(err: unknown): boolean {
  const item = (err as { Item?: unknown }).Item;
  return typeof item === 'object' && item !== null && Object.keys(item).length > 0;
}

type ReleaseItem = Release & { pk: string; sk: string; type: 'release' };
type AccountItem = { pk: string; sk: string; type: 'account'; releaseId: string; record: AccountRecord };

function ownedBy(item: Record<string, unknown>, releaseId: string): boolean {
  return item.type === 'account' && item.releaseId === releaseId;
}

/** Releases from their items and their account items, in the order the release items came. */
function assemble(items: Record<string, unknown>[]): Release[] {
  const releases = new Map<string, Release>();
  for (const item of items) {
    if (item.type !== 'release') continue;
    const { pk: _pk, sk: _sk, type: _type, ...release } = item as unknown as ReleaseItem;
    releases.set(release.releaseId, withRejections({ ...release, accounts: { ...release.accounts } }));
  }
  for (const item of items) {
    if (item.type !== 'account') continue;
    const { releaseId, record } = item as unknown as AccountItem;
    const release = releases.get(releaseId);
    if (release) release.accounts[`${record.accountId}/${record.region}`] = record;
  }
  return [...releases.values()];
}

export class DynamoReleaseStore implements ReleaseStore {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #sleep: Sleep;

  constructor(options: {
    tableName: string;
    client?: DynamoDBClient | DynamoDBDocumentClient;
    sleep?: Sleep;
  }) {
    this.#table = options.tableName;
    this.#sleep = options.sleep ?? realSleep;
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
    // Optimistic: read the counter, then in one transaction move it from that value to the next, claim the
    // revision and write the release. A duplicate (S3 delivers events at least once) loses on the revision
    // claim and returns the winner; a concurrent other revision loses on the counter and tries again. So a
    // sequence is never burned (an ADD on the counter before the claim would skip one per duplicate).
    for (let attempt = 1; ; attempt++) {
      const existing = await this.#byRevision(input.stream, input.revision);
      if (existing) return { release: existing, created: false };
      const counter = await this.#db.send(
        new GetCommand({
          TableName: this.#table,
          Key: { pk: streamPk(input.stream), sk: 'COUNTER' },
          ConsistentRead: true,
        }),
      );
      const last = counter.Item ? Number(counter.Item.sequence) : 0;
      if (!Number.isInteger(last) || last < 0) {
        throw new Error(`release counter of stream ${input.stream} holds ${JSON.stringify(counter.Item)}`);
      }
      const release = this.#newRelease(input, last + 1);
      try {
        await this.#db.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Update: {
                  TableName: this.#table,
                  Key: { pk: streamPk(input.stream), sk: 'COUNTER' },
                  UpdateExpression: 'SET #seq = :next',
                  ConditionExpression: last === 0 ? 'attribute_not_exists(pk)' : '#seq = :last',
                  ExpressionAttributeNames: { '#seq': 'sequence' },
                  ExpressionAttributeValues:
                    last === 0 ? { ':next': 1 } : { ':next': last + 1, ':last': last },
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: {
                    pk: streamPk(input.stream),
                    sk: revisionSk(input.revision),
                    releaseId: release.releaseId,
                  },
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: {
                    pk: streamPk(input.stream),
                    sk: releaseSk(release.sequence),
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
        if (!isError(err, 'TransactionCanceledException') || attempt >= CREATE_ATTEMPTS) throw err;
        // Whoever won (the revision's duplicate or another revision), the next round reads it.
        await this.#sleep(Math.random() * Math.min(200, 10 * 2 ** attempt));
      }
    }
  }

  #newRelease(
    input: { stream: string; revision: string; source: SourceRef; regions: string[]; uploadedAt: string },
    sequence: number,
  ): Release {
    const now = new Date().toISOString();
    return {
      releaseId: formatReleaseId(input.stream, sequence),
      stream: input.stream,
      revision: input.revision,
      sequence,
      source: input.source,
      createdAt: now,
      uploadedAt: input.uploadedAt,
      regions: Object.fromEntries(input.regions.map((r) => [r, { state: 'queued', updatedAt: now }])),
      accounts: {},
    };
  }

  async get(releaseId: string): Promise<Release | undefined> {
    const parsed = parseReleaseId(releaseId);
    if (!parsed) return undefined;
    const sk = releaseSk(parsed.sequence);
    const pages = paginateQuery(
      { client: this.#db },
      {
        TableName: this.#table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :release)',
        ExpressionAttributeValues: { ':pk': streamPk(parsed.stream), ':release': sk },
        ConsistentRead: true,
      },
    );
    const items: Record<string, unknown>[] = [];
    for await (const page of pages) {
      // begins_with also matches a longer sequence (RELEASE#1234567890 for RELEASE#12345678): keep ours only.
      for (const item of page.Items ?? []) if (item.sk === sk || ownedBy(item, releaseId)) items.push(item);
    }
    return assemble(items)[0];
  }

  /** Releases oldest first; all streams when no stream is given (a Scan: `stemcell status` only). */
  async list(stream?: string): Promise<Release[]> {
    const items: Record<string, unknown>[] = [];
    if (stream) {
      const pages = paginateQuery(
        { client: this.#db },
        {
          TableName: this.#table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :release)',
          ExpressionAttributeValues: { ':pk': streamPk(stream), ':release': 'RELEASE#' },
        },
      );
      for await (const page of pages) items.push(...(page.Items ?? []));
    } else {
      const pages = paginateScan(
        { client: this.#db },
        {
          TableName: this.#table,
          FilterExpression: '#type IN (:release, :account)',
          ExpressionAttributeNames: { '#type': 'type' },
          ExpressionAttributeValues: { ':release': 'release', ':account': 'account' },
        },
      );
      for await (const page of pages) items.push(...(page.Items ?? []));
    }
    return assemble(items).sort((a, b) => a.stream.localeCompare(b.stream) || a.sequence - b.sequence);
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
      if (!release) throw missing(releaseId);
      const record = release.regions[region];
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
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (err) {
      if (!isError(err, 'ConditionalCheckFailedException')) throw err;
      if (!failedOnItem(err)) throw missing(releaseId);
      if (onlyIf) return false;
      // Not guarded and the region is new to this release: add its whole record (first writer wins).
      return this.#addRegion(releaseId, region, patch);
    }
  }

  async #addRegion(releaseId: string, region: string, patch: Partial<RegionRecord>): Promise<boolean> {
    if (!(await this.get(releaseId))) throw missing(releaseId);
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

  /**
   * One item per account and region, beside the release: a map inside the release item would hit DynamoDB's
   * 400 KB item limit near 2,900 records (1,000 accounts × 3 regions), and every write would be billed for
   * the whole, growing item. Releases are never deleted, so checking first and then writing is safe.
   */
  async recordAccount(releaseId: string, record: AccountRecord): Promise<void> {
    const key = this.#key(releaseId);
    const exists = await this.#db.send(
      new GetCommand({ TableName: this.#table, Key: key, ConsistentRead: true, ProjectionExpression: 'pk' }),
    );
    if (!exists.Item) throw missing(releaseId);
    // UpdateItem creates the item as PutItem would, with the grant every writer of the table already has.
    await this.#db.send(
      new UpdateCommand({
        TableName: this.#table,
        Key: { pk: key.pk, sk: `${key.sk}#ACCOUNT#${record.accountId}/${record.region}` },
        UpdateExpression: 'SET #type = :account, #release = :release, #record = :record',
        ExpressionAttributeNames: { '#type': 'type', '#release': 'releaseId', '#record': 'record' },
        ExpressionAttributeValues: { ':account': 'account', ':release': releaseId, ':record': plain(record) },
      }),
    );
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
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (err) {
      if (!isError(err, 'ConditionalCheckFailedException')) throw err;
      if (!failedOnItem(err)) throw missing(releaseId);
      return false;
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
