// The ReleaseStore contract over the AWS adapter on DynamoDB Local: AWS's own engine evaluates every condition,
// update path and transaction, where the unit run (test/unit/contract-aws.test.ts) uses our in-memory fake.
// Each factory call gets a fresh table created from serverless.yml's ReleaseTable definition, so the key
// schema the code relies on is the one that gets deployed.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CreateTableCommand, DeleteTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { releaseStoreContract } from '#test/contract/release-store.contract.ts';
import { loadCfnYaml, type Template } from '#test/support/cfn.ts';
import { type DynamoDbLocal, dynamoDbLocalJar, startDynamoDbLocal } from '#test/support/dynamodb-local.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const jar = dynamoDbLocalJar();
const skip = 'missing' in jar ? `DynamoDB Local unavailable: ${jar.missing}` : false;

describe('DynamoDB Local: release table', { skip }, () => {
  let db: DynamoDbLocal | undefined;
  let client: DynamoDBClient | undefined;
  let tables = 0;
  // serverless.yml keeps its CloudFormation under `resources:`.
  const sls = loadCfnYaml(`${ROOT}serverless.yml`) as unknown as { resources: Template };
  const table = sls.resources.Resources.ReleaseTable?.Properties;
  if (!table) throw new Error('serverless.yml has no ReleaseTable');

  before(async () => {
    db = await startDynamoDbLocal();
    client = db.client();
  });
  after(async () => {
    client?.destroy();
    await db?.stop();
  });

  const fresh = async () => {
    if (!client) throw new Error('DynamoDB Local did not start');
    const c = client;
    const tableName = `stemcell-releases-${++tables}`;
    await c.send(
      new CreateTableCommand({
        TableName: tableName,
        BillingMode: table.BillingMode,
        AttributeDefinitions: table.AttributeDefinitions,
        KeySchema: table.KeySchema,
      }),
    );
    return {
      store: new DynamoReleaseStore({ tableName, client: c }),
      cleanup: async () => {
        await c.send(new DeleteTableCommand({ TableName: tableName }));
      },
    };
  };

  releaseStoreContract('AWS DynamoDB on DynamoDB Local', fresh);

  it("records an Organization's worth of account outcomes, past DynamoDB's 400 KB item limit", async () => {
    const { store, cleanup } = await fresh();
    try {
      // prepare: 1,000 accounts × 3 regions; as a map inside the release item this fails near 2,900
      const regions = ['eu-west-1', 'us-east-1', 'ap-southeast-2'];
      const { release } = await store.create({
        stream: 'web',
        revision: 'r1',
        source: { bucket: 'b', key: 'streams/web/r1.tar', etag: '"e"' },
        regions,
        uploadedAt: '2026-11-20T10:00:00.000Z',
      });
      const records = regions.flatMap((region) =>
        Array.from({ length: 1000 }, (_, i) => ({
          accountId: String(100000000000 + i),
          region,
          outcome: 'already-current' as const,
          launchTemplates: 3,
          updatedAt: '2026-11-20T10:00:00.000Z',
        })),
      );
      // act
      for (let i = 0; i < records.length; i += 50) {
        await Promise.all(records.slice(i, i + 50).map((r) => store.recordAccount(release.releaseId, r)));
      }
      const got = await store.get(release.releaseId);
      const listed = await store.list('web');
      const all = await store.list();
      // assess
      assert.equal(Object.keys(got?.accounts ?? {}).length, 3000);
      assert.deepEqual(got?.accounts['100000000999/ap-southeast-2'], records[2999]);
      assert.equal(Object.keys(listed[0]?.accounts ?? {}).length, 3000);
      assert.equal(all.length, 1);
      assert.equal(Object.keys(all[0]?.accounts ?? {}).length, 3000);
    } finally {
      await cleanup();
    }
  });
});
