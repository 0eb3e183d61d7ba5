import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { awsError } from '#test/support/fake-aws/common.ts';

const docClient = () =>
  DynamoDBDocumentClient.from(
    new DynamoDBClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
  );
const input = {
  stream: 'web',
  revision: 'r1',
  source: { bucket: 'b', key: 'streams/web/r1.tar', etag: '"e"' },
  regions: ['eu-west-1'],
  uploadedAt: '2026-11-20T10:00:00.000Z',
};

describe('Class: DynamoReleaseStore', () => {
  it('moves the counter, claims the revision and writes the release in one conditional transaction', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    mock.on(GetCommand).resolves({});
    mock.on(GetCommand, { Key: { pk: 'STREAM#web', sk: 'COUNTER' } }).resolves({ Item: { sequence: 6 } });
    mock.on(TransactWriteCommand).resolves({});
    const store = new DynamoReleaseStore({ tableName: 't', client: db });
    // act
    const { release, created } = await store.create(input);
    // assess
    assert.equal(created, true);
    assert.equal(release.releaseId, 'web#00000007');
    const items = mock.commandCalls(TransactWriteCommand)[0]?.args[0].input.TransactItems ?? [];
    assert.deepEqual(items[0]?.Update, {
      TableName: 't',
      Key: { pk: 'STREAM#web', sk: 'COUNTER' },
      UpdateExpression: 'SET #seq = :next',
      ConditionExpression: '#seq = :last',
      ExpressionAttributeNames: { '#seq': 'sequence' },
      ExpressionAttributeValues: { ':next': 7, ':last': 6 },
    });
    assert.deepEqual(items[1]?.Put?.Item, { pk: 'STREAM#web', sk: 'REVISION#r1', releaseId: 'web#00000007' });
    assert.equal(items[1]?.Put?.ConditionExpression, 'attribute_not_exists(pk)');
    assert.equal(items[2]?.Put?.Item?.sk, 'RELEASE#00000007');
    assert.equal(items[2]?.Put?.ConditionExpression, 'attribute_not_exists(pk)');
  });

  it('returns the winner when a concurrent duplicate claimed the revision first', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    const winner = {
      pk: 'STREAM#web',
      sk: 'RELEASE#00000003',
      type: 'release',
      releaseId: 'web#00000003',
      sequence: 3,
    };
    mock
      .on(GetCommand, { Key: { pk: 'STREAM#web', sk: 'REVISION#r1' } })
      .resolvesOnce({})
      .resolves({ Item: { releaseId: 'web#00000003' } });
    mock.on(GetCommand, { Key: { pk: 'STREAM#web', sk: 'COUNTER' } }).resolves({ Item: { sequence: 2 } });
    mock.on(QueryCommand).resolves({ Items: [winner] });
    mock.on(TransactWriteCommand).rejects(awsError('TransactionCanceledException'));
    const store = new DynamoReleaseStore({ tableName: 't', client: db, sleep: async () => {} });
    // act
    const out = await store.create(input);
    // assess
    assert.equal(out.created, false);
    assert.equal(out.release.releaseId, 'web#00000003');
    assert.equal('pk' in out.release, false, 'table keys stay out of the release');
    assert.equal(mock.commandCalls(TransactWriteCommand).length, 1);
  });

  it('gives up with the error after its rounds when the counter keeps moving', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    mock.on(GetCommand).resolves({});
    mock.on(TransactWriteCommand).rejects(awsError('TransactionCanceledException', 'counter moved'));
    const store = new DynamoReleaseStore({ tableName: 't', client: db, sleep: async () => {} });
    // act + assess
    await assert.rejects(store.create(input), /counter moved/);
    assert.equal(mock.commandCalls(TransactWriteCommand).length, 30);
  });

  it('updates a region with a single conditional UpdateItem and answers false when the guard fails', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    mock
      .on(UpdateCommand)
      .resolvesOnce({})
      .rejects(
        Object.assign(awsError('ConditionalCheckFailedException'), { Item: { pk: { S: 'STREAM#web' } } }),
      );
    const store = new DynamoReleaseStore({ tableName: 't', client: db });
    // act
    const first = await store.updateRegion(
      'web#00000001',
      'eu-west-1',
      { state: 'building', updatedAt: 't1' },
      { stateIn: ['queued'] },
    );
    const second = await store.updateRegion(
      'web#00000001',
      'eu-west-1',
      { state: 'building' },
      { stateIn: ['queued'] },
    );
    // assess
    assert.equal(first, true);
    assert.equal(second, false);
    assert.deepEqual(mock.commandCalls(UpdateCommand)[0]?.args[0].input, {
      TableName: 't',
      Key: { pk: 'STREAM#web', sk: 'RELEASE#00000001' },
      UpdateExpression: 'SET #regions.#region.#f0 = :v0, #regions.#region.#f1 = :v1',
      ConditionExpression:
        'attribute_exists(pk) AND attribute_exists(#regions.#region) AND #regions.#region.#state IN (:s0)',
      ExpressionAttributeNames: {
        '#regions': 'regions',
        '#region': 'eu-west-1',
        '#f0': 'state',
        '#f1': 'updatedAt',
        '#state': 'state',
      },
      ExpressionAttributeValues: { ':v0': 'building', ':v1': 't1', ':s0': 'queued' },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('refuses a malformed release id by name', async () => {
    const store = new DynamoReleaseStore({ tableName: 't', client: docClient() });
    await assert.rejects(store.markComplete('nonsense', 't'), /not a release id: "nonsense"/);
  });
});
