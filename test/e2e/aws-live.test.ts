// Optional live suite: the port contracts against real AWS resources of a test deployment. Runs only when
// STEMCELL_LIVE_AWS=1 and AWS credentials are present; otherwise it says why it skips.
//   STEMCELL_LIVE_BUCKET     a scratch bucket (objects under streams/ are written)
//   STEMCELL_LIVE_TABLE      a scratch table with the release table's key schema (pk, sk)
//   STEMCELL_LIVE_QUEUE_URL  a scratch FIFO queue, empty
//   AWS_REGION               their region
import { it } from 'node:test';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SqsFifoQueue } from '#aws/fifo-queue.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { fifoQueueContract } from '#test/contract/fifo-queue.contract.ts';
import { objectStoreContract } from '#test/contract/object-store.contract.ts';
import { releaseStoreContract } from '#test/contract/release-store.contract.ts';

const env = process.env;
const credentials = Boolean(env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE);
const needed = ['STEMCELL_LIVE_BUCKET', 'STEMCELL_LIVE_TABLE', 'STEMCELL_LIVE_QUEUE_URL', 'AWS_REGION'];
const missing = needed.filter((name) => !env[name]);

if (env.STEMCELL_LIVE_AWS !== '1' || !credentials || missing.length > 0) {
  const reason =
    env.STEMCELL_LIVE_AWS !== '1'
      ? 'opt in with STEMCELL_LIVE_AWS=1'
      : !credentials
        ? 'no AWS credentials in the environment'
        : `missing ${missing.join(', ')}`;
  it('live AWS contract suite', (t) => t.skip(`live AWS suite skipped: ${reason}`));
} else {
  const region = env.AWS_REGION as string;
  const run = Date.now().toString(36);
  objectStoreContract('live S3', async () => ({
    store: new S3ObjectStore({
      bucket: env.STEMCELL_LIVE_BUCKET as string,
      client: new S3Client({ region }),
    }),
  }));
  fifoQueueContract('live SQS', async () => ({
    queue: new SqsFifoQueue({
      queueUrl: env.STEMCELL_LIVE_QUEUE_URL as string,
      client: new SQSClient({ region }),
    }),
  }));
  // Streams unique to this run: the table keeps earlier runs' sequences.
  releaseStoreContract('live DynamoDB', async () => {
    const store = new DynamoReleaseStore({
      tableName: env.STEMCELL_LIVE_TABLE as string,
      client: new DynamoDBClient({ region }),
    });
    return { store: prefixStreams(store, `live-${run}-${Math.random().toString(36).slice(2, 6)}-`) };
  });
}

/** Release streams namespaced per test, so a shared table starts every test from sequence 1. */
function prefixStreams(store: DynamoReleaseStore, prefix: string): DynamoReleaseStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'create') {
        return (input: Parameters<DynamoReleaseStore['create']>[0]) =>
          target.create({ ...input, stream: `${prefix}${input.stream}` });
      }
      if (prop === 'list') {
        return async (stream?: string) =>
          stream
            ? target.list(`${prefix}${stream}`)
            : (await target.list()).filter((r) => r.stream.startsWith(prefix));
      }
      if (prop === 'get') return (id: string) => target.get(id.startsWith(prefix) ? id : `${prefix}${id}`);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
