// RolloutStore on the release table (see release-store.ts for its other items). Per stream, pk "STREAM#<stream>":
//   sk "ROLLOUT#<seq 8>"  a release's waves and halt, written with a version condition (optimistic concurrency:
//                         announce runs once per region and per report, concurrently)
//   sk "PIN"              the pin of the stream, if any
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { RolloutRecord, RolloutStore, StreamPin } from '#ports';
import { isError } from './retry.ts';

function keyOf(releaseId: string): { pk: string; sk: string } {
  const hash = releaseId.lastIndexOf('#');
  const sequence = Number(releaseId.slice(hash + 1));
  if (hash < 1 || !Number.isInteger(sequence)) throw new Error(`not a release id: ${releaseId}`);
  return { pk: `STREAM#${releaseId.slice(0, hash)}`, sk: `ROLLOUT#${String(sequence).padStart(8, '0')}` };
}

export class DynamoRolloutStore implements RolloutStore {
  readonly #db: DynamoDBDocumentClient;
  readonly #table: string;

  constructor(options: { tableName: string; client: DynamoDBClient | DynamoDBDocumentClient }) {
    this.#table = options.tableName;
    this.#db =
      options.client instanceof DynamoDBDocumentClient
        ? options.client
        : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
  }

  async get(releaseId: string): Promise<RolloutRecord | undefined> {
    const out = await this.#db.send(
      new GetCommand({ TableName: this.#table, Key: keyOf(releaseId), ConsistentRead: true }),
    );
    if (!out.Item) return undefined;
    const { pk: _pk, sk: _sk, type: _type, ...record } = out.Item;
    return record as RolloutRecord;
  }

  async put(record: RolloutRecord, expectedVersion: number): Promise<boolean> {
    try {
      await this.#db.send(
        new PutCommand({
          TableName: this.#table,
          Item: {
            ...keyOf(record.releaseId),
            type: 'rollout',
            ...JSON.parse(JSON.stringify(record)),
            version: expectedVersion + 1,
          },
          ...(expectedVersion === 0
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: '#v = :expected',
                ExpressionAttributeNames: { '#v': 'version' },
                ExpressionAttributeValues: { ':expected': expectedVersion },
              }),
        }),
      );
      return true;
    } catch (err) {
      if (isError(err, 'ConditionalCheckFailedException')) return false;
      throw err;
    }
  }

  async getPin(stream: string): Promise<StreamPin | undefined> {
    const out = await this.#db.send(
      new GetCommand({
        TableName: this.#table,
        Key: { pk: `STREAM#${stream}`, sk: 'PIN' },
        ConsistentRead: true,
      }),
    );
    if (!out.Item) return undefined;
    const { stream: s, revision, pinnedAt } = out.Item as StreamPin;
    return { stream: s, revision, pinnedAt };
  }

  async setPin(stream: string, pin: StreamPin | undefined): Promise<void> {
    const Key = { pk: `STREAM#${stream}`, sk: 'PIN' };
    if (!pin) await this.#db.send(new DeleteCommand({ TableName: this.#table, Key }));
    else
      await this.#db.send(new PutCommand({ TableName: this.#table, Item: { ...Key, type: 'pin', ...pin } }));
  }
}
