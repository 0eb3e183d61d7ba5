// Every failed SQS record of every batch-fed function is logged with its message id, the error's name and
// message, and the release, stream and region where its body names them: a poison message that ends in a DLQ
// must leave a trace in the logs of each attempt.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context, SQSEvent, SQSRecord } from 'aws-lambda';
import { sample } from '#events/samples/index.ts';
import { createHandler as bootCheckHandler } from '#functions/boot-check/handler.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as registerHandler } from '#functions/register/handler.ts';
import { createHandler as subscriberHandler } from '#functions/subscriber/handler.ts';
import { capturedLogger, type LogLine } from '#test/support/captured-logger.ts';

class StoreUnreachable extends Error {
  override name = 'StoreUnreachable';
}

/** Dependencies that fail on first use: whatever a record needs, its processing fails. */
const failingDeps = <T>() =>
  new Proxy({} as object, {
    get: (_, key) => {
      throw new StoreUnreachable(`dependency ${String(key)} is unreachable`);
    },
  }) as T;

function tools() {
  const { logger, lines } = capturedLogger();
  return { tools: { ...createPowertools({ serviceName: 'stemcell-test', quiet: true }), logger }, lines };
}

function context(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:111111111111:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'test',
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

function sqsRecord(messageId: string, body: unknown, groupId?: string): SQSRecord {
  const template = sample<SQSEvent>('sqs-ebs-snapshot-notification').Records[0] as SQSRecord;
  return {
    ...template,
    messageId,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: { ...template.attributes, ...(groupId ? { MessageGroupId: groupId } : {}) },
  };
}

const failuresOf = (lines: LogLine[]) =>
  lines
    .filter((l) => l.message.startsWith('record failed'))
    .map((l) => ({
      level: l.level,
      messageId: l.messageId,
      errorName: l.errorName,
      errorMessage: String(l.errorMessage).slice(0, 60),
      ...(l.releaseId ? { releaseId: l.releaseId } : {}),
      ...(l.stream ? { stream: l.stream } : {}),
      ...(l.region ? { region: l.region } : {}),
    }));

describe('Failed SQS records are logged', () => {
  it('register: a poison body and a failed registration, each with its id, error and region', async () => {
    // prepare
    const { tools: t, lines } = tools();
    const notification = JSON.parse(
      (sample<SQSEvent>('sqs-ebs-snapshot-notification').Records[0] as SQSRecord).body,
    );
    const event = {
      Records: [sqsRecord('poison', '{"not": "an EBS event"'), sqsRecord('down', notification)],
    };
    // act: the whole batch failed, which Powertools reports by throwing (Lambda retries the batch)
    await assert.rejects(
      registerHandler(failingDeps(), t)(event as never, context('register')),
      /All records failed processing/,
    );
    // assess
    const failures = failuresOf(lines);
    assert.equal(failures.length, 2, JSON.stringify(lines));
    assert.deepEqual(failures[0]?.messageId, 'poison');
    assert.equal(failures[0]?.level, 'ERROR');
    assert.ok(failures[0]?.errorName && failures[0].errorMessage, 'the parse error is named');
    assert.deepEqual(failures[1], {
      level: 'ERROR',
      messageId: 'down',
      errorName: 'StoreUnreachable',
      errorMessage: 'dependency imaging is unreachable',
      region: 'eu-west-1',
    });
  });

  it('boot-check: release and region of the job; a boot still under way at INFO, a failure at ERROR', async () => {
    // prepare
    const { tools: t, lines } = tools();
    const job = {
      version: 1,
      releaseId: 'web#00000007',
      region: 'us-east-1',
      imageId: 'ami-0123456789abcdef0',
    };
    const event = { Records: [sqsRecord('job', job)] };
    // act
    const out = await bootCheckHandler(failingDeps(), t)(event as never, context('boot-check'));
    // assess
    assert.deepEqual(
      out.batchItemFailures.map((f) => f.itemIdentifier),
      ['job'],
    );
    const [failure] = failuresOf(lines);
    assert.equal(failure?.messageId, 'job');
    assert.equal(failure?.level, 'ERROR');
    assert.equal(failure?.errorName, 'StoreUnreachable');
    assert.equal(failure?.releaseId, 'web#00000007');
    assert.equal(failure?.region, 'us-east-1');
  });

  it('subscriber: the failed record and the rest of its group, with release, stream and image region', async () => {
    // prepare
    const { tools: t, lines } = tools();
    const ready = sample<{ detail: { releaseId: string; stream: string; region: string } }>(
      'stemcell-image-ready',
    );
    const event = { Records: [sqsRecord('first', ready, 'web'), sqsRecord('second', ready, 'web')] };
    // act
    const out = await subscriberHandler(failingDeps(), t)(event as never, context('subscriber'));
    // assess
    assert.deepEqual(
      out.batchItemFailures.map((f) => f.itemIdentifier),
      ['first', 'second'],
    );
    const failures = failuresOf(lines);
    assert.deepEqual(
      failures.map((f) => [f.messageId, f.errorName, f.releaseId, f.stream, f.region]),
      [
        ['first', 'StoreUnreachable', ready.detail.releaseId, ready.detail.stream, ready.detail.region],
        [
          'second',
          'SqsFifoMessageGroupShortCircuitError',
          ready.detail.releaseId,
          ready.detail.stream,
          ready.detail.region,
        ],
      ],
    );
  });
});

describe('Function: logRecordFailure()', () => {
  it('logs a failure the design expects at INFO, with the cause of a wrapped error', async () => {
    // prepare
    const { logger, lines } = capturedLogger();
    const { logRecordFailure } = await import('#functions/commons/batch.ts');
    const cause = new StoreUnreachable('DynamoDB timed out');
    // act
    logRecordFailure({ logger, expected: (e) => e.name === 'Later' }, sqsRecord('a', '{}'), {
      name: 'Later',
      message: 'still booting',
    });
    logRecordFailure({ logger }, sqsRecord('b', '{}'), new Error('wrapped', { cause }));
    // assess
    assert.deepEqual(
      lines.map((l) => [l.level, l.messageId, l.errorName, l.causeName ?? null]),
      [
        ['INFO', 'a', 'Later', null],
        ['ERROR', 'b', 'Error', 'StoreUnreachable'],
      ],
    );
  });
});
