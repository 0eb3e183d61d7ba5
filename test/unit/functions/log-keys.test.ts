// Every line a function logs about a release carries its release, stream and region, for the record at hand
// only: the next record of the batch, and the next invocation, start without them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import type { RegisterDeps } from '#core/deps.ts';
import { sample } from '#events/samples/index.ts';
import { withLogKeys } from '#functions/commons/middleware.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as registerHandler } from '#functions/register/handler.ts';
import { capturedLogger } from '#test/support/captured-logger.ts';

function tools() {
  const { logger, lines } = capturedLogger();
  return { tools: { ...createPowertools({ serviceName: 'stemcell-test', quiet: true }), logger }, lines };
}

const context = { functionName: 'register', awsRequestId: 'req-1' } as Context;

describe('log keys per record', () => {
  it('withLogKeys puts the keys on every line of the work, and takes them off after, even when it fails', async () => {
    const { tools: t, lines } = tools();
    await withLogKeys(t, { releaseId: 'web#00000002', stream: 'web', region: undefined }, async () => {
      t.logger.info('inside');
    });
    await assert.rejects(
      withLogKeys(t, { region: 'eu-west-1' }, async () => {
        t.logger.info('failing');
        throw new Error('boom');
      }),
    );
    t.logger.info('after');
    assert.deepEqual(
      lines.map((l) => [l.message, l.releaseId, l.stream, l.region]),
      [
        ['inside', 'web#00000002', 'web', undefined],
        ['failing', undefined, undefined, 'eu-west-1'],
        ['after', undefined, undefined, undefined],
      ],
    );
  });

  it('register: each record’s lines name its own region, and the next record does not inherit it', async () => {
    const { tools: t, lines } = tools();
    const template = sample<SQSEvent>('sqs-ebs-snapshot-notification').Records[0] as SQSRecord;
    const body = (region: string) => JSON.stringify({ ...JSON.parse(template.body), region });
    const deps = {
      logger: t.logger,
      // An adapter's own line, which names no region: the key must come from the record.
      imaging: () => ({
        snapshots: {
          get: async () => {
            t.logger.debug('DescribeSnapshots');
            return undefined;
          },
        },
      }),
    } as unknown as RegisterDeps;
    await registerHandler(deps, t)(
      {
        Records: [
          { ...template, messageId: 'a', body: body('eu-west-1') },
          { ...template, messageId: 'b', body: body('us-east-1') },
        ],
      },
      context,
    );
    const adapterLines = lines.filter((l) => l.message === 'DescribeSnapshots');
    assert.deepEqual(
      adapterLines.map((l) => l.region),
      ['eu-west-1', 'us-east-1'],
    );
    t.logger.info('next invocation');
    assert.equal(lines.at(-1)?.region, undefined);
  });
});
