import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';

let generation = 0;
/** aws-deps keeps its clients and parsed environment per module instance: each test gets its own. */
async function freshAwsDeps(): Promise<typeof import('#functions/commons/aws-deps.ts')> {
  const url = new URL('../../../functions/commons/aws-deps.ts', import.meta.url);
  url.search = `t=${++generation}`;
  return import(url.href);
}

const ENV = {
  STEMCELL_CONFIG: JSON.stringify({ homeRegion: 'eu-west-1', streams: { web: { regions: ['eu-west-1'] } } }),
  STEMCELL_BUCKET: 'stemcell-prod-tarballs-1x2y',
  STEMCELL_BUS_NAME: 'stemcell-prod',
  STEMCELL_TABLE: 'stemcell-releases',
  STEMCELL_BUILD_QUEUE_PREFIX: 'stemcell-build-',
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'secret',
};

describe('Module: functions/commons/aws-deps', () => {
  const saved = { ...process.env };
  beforeEach(() => Object.assign(process.env, ENV));
  afterEach(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });

  it('reads the config from STEMCELL_CONFIG and lets the deployment name the bucket and bus', async () => {
    // prepare
    const { awsIngestDeps } = await freshAwsDeps();
    // act
    const deps = await awsIngestDeps();
    // assess
    assert.equal(deps.config.bucket, 'stemcell-prod-tarballs-1x2y');
    assert.equal(deps.config.busName, 'stemcell-prod');
    assert.equal(deps.config.streams.web?.keep, 3);
    assert.equal(deps.objects?.bucket, 'stemcell-prod-tarballs-1x2y');
    assert.equal(deps.buildQueue('us-east-1').name, 'stemcell-build-us-east-1.fifo');
  });

  it('sends build jobs to the endpoint AWS_ENDPOINT_URL names, at the queue URL SQS gives (GetQueueUrl)', async () => {
    // prepare: an SQS endpoint on 127.0.0.1 (JSON protocol) that answers GetQueueUrl and SendMessage
    const seen: { target: string; body: Record<string, string>; host: string }[] = [];
    const server = createServer(async (req: IncomingMessage, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      const body = JSON.parse(text || '{}');
      const target = String(req.headers['x-amz-target'] ?? '').replace('AmazonSQS.', '');
      seen.push({ target, body, host: String(req.headers.host) });
      res.setHeader('content-type', 'application/x-amz-json-1.0');
      if (target === 'GetQueueUrl') {
        res.end(JSON.stringify({ QueueUrl: `${endpoint}/000000000000/${body.QueueName}` }));
      } else if (target === 'SendMessage') {
        const md5 = createHash('md5').update(body.MessageBody).digest('hex');
        res.end(JSON.stringify({ MessageId: 'm-1', MD5OfMessageBody: md5 }));
      } else {
        res.statusCode = 400;
        res.end(JSON.stringify({ __type: 'InvalidAction', message: target }));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      process.env.AWS_ENDPOINT_URL = endpoint;
      process.env.AWS_MAX_ATTEMPTS = '1';
      const { awsIngestDeps } = await freshAwsDeps();
      const deps = await awsIngestDeps();
      // act: two jobs to one region's queue
      const queue = deps.buildQueue('us-east-1');
      await queue.send('{"job":1}', 'web', 'd1');
      await queue.send('{"job":2}', 'web', 'd2');
      // assess: the URL is asked for once, and every request went to the endpoint
      assert.deepEqual(
        seen.map((s) => [s.target, s.body.QueueName ?? s.body.QueueUrl]),
        [
          ['GetQueueUrl', 'stemcell-build-us-east-1.fifo'],
          ['SendMessage', `${endpoint}/000000000000/stemcell-build-us-east-1.fifo`],
          ['SendMessage', `${endpoint}/000000000000/stemcell-build-us-east-1.fifo`],
        ],
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses to start with every missing or bad variable named in one error', async () => {
    // prepare
    delete process.env.STEMCELL_TABLE;
    delete process.env.STEMCELL_CONFIG;
    delete process.env.STEMCELL_BUILD_QUEUE_PREFIX;
    process.env.AWS_ENDPOINT_URL = 'localhost:4566';
    process.env.AWS_MAX_ATTEMPTS = 'many';
    const { awsIngestDeps } = await freshAwsDeps();
    // act
    const error = await awsIngestDeps().then(
      () => undefined,
      (err: Error) => err,
    );
    // assess
    assert.ok(error, 'ingest starts without its table');
    for (const line of [
      'AWS_ENDPOINT_URL: not an http(s) URL (got "localhost:4566")',
      'AWS_MAX_ATTEMPTS:',
      'STEMCELL_TABLE: not set',
      'STEMCELL_BUILD_QUEUE_PREFIX: not set',
      'STEMCELL_CONFIG_KEY: not set',
    ])
      assert.ok(error.message.includes(line), `${line} in:\n${error.message}`);
    assert.match(error.message, /^function ingest: bad environment/);
  });

  it('reads the expire grace period as hours, and refuses a negative one by name', async () => {
    const { parseFunctionEnv } = await import('#functions/commons/env.ts');
    assert.equal(parseFunctionEnv('expire', { ...ENV, EXPIRE_GRACE_HOURS: '36' }).EXPIRE_GRACE_HOURS, 36);
    assert.throws(
      () => parseFunctionEnv('expire', { ...ENV, EXPIRE_GRACE_HOURS: '-1' }),
      /EXPIRE_GRACE_HOURS: must be a number of hours ≥ 0 \(got "-1"\)/,
    );
  });
});
