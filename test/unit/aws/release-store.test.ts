import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
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
  it('takes the next sequence with an atomic ADD and claims the revision and release conditionally', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    mock.on(GetCommand).resolves({});
    mock.on(UpdateCommand).resolves({ Attributes: { sequence: 7 } });
    mock.on(TransactWriteCommand).resolves({});
    const store = new DynamoReleaseStore({ tableName: 't', client: db });
    // act
    const { release, created } = await store.create(input);
    // assess
    assert.equal(created, true);
    assert.equal(release.releaseId, 'web#00000007');
    assert.deepEqual(mock.commandCalls(UpdateCommand)[0]?.args[0].input, {
      TableName: 't',
      Key: { pk: 'STREAM#web', sk: 'COUNTER' },
      UpdateExpression: 'ADD #seq :one',
      ExpressionAttributeNames: { '#seq': 'sequence' },
      ExpressionAttributeValues: { ':one': 1 },
      ReturnValues: 'UPDATED_NEW',
    });
    const items = mock.commandCalls(TransactWriteCommand)[0]?.args[0].input.TransactItems ?? [];
    assert.deepEqual(items[0]?.Put?.Item, { pk: 'STREAM#web', sk: 'REVISION#r1', releaseId: 'web#00000007' });
    assert.equal(items[0]?.Put?.ConditionExpression, 'attribute_not_exists(pk)');
    assert.equal(items[1]?.Put?.Item?.sk, 'RELEASE#00000007');
    assert.equal(items[1]?.Put?.ConditionExpression, 'attribute_not_exists(pk)');
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
    mock.on(GetCommand, { Key: { pk: 'STREAM#web', sk: 'RELEASE#00000003' } }).resolves({ Item: winner });
    mock.on(UpdateCommand).resolves({ Attributes: { sequence: 4 } });
    mock.on(TransactWriteCommand).rejects(awsError('TransactionCanceledException'));
    const store = new DynamoReleaseStore({ tableName: 't', client: db });
    // act
    const out = await store.create(input);
    // assess
    assert.equal(out.created, false);
    assert.equal(out.release.releaseId, 'web#00000003');
    assert.equal('pk' in out.release, false, 'table keys stay out of the release');
  });

  it('updates a region with a single conditional UpdateItem and answers false when the guard fails', async () => {
    // prepare
    const db = docClient();
    const mock = mockClient(db);
    mock.on(UpdateCommand).resolvesOnce({}).rejects(awsError('ConditionalCheckFailedException'));
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
    });
  });

  it('refuses a malformed release id by name', async () => {
    const store = new DynamoReleaseStore({ tableName: 't', client: docClient() });
    await assert.rejects(store.markComplete('nonsense', 't'), /not a release id: "nonsense"/);
  });
});
