// register λ: an SQS queue of EventBridge "EBS Snapshot Notification" events (forwarded from every region) →
// encrypted AMIs. Records fail one by one: only the failed ones return to the queue.
import { processPartialResponse } from '@aws-lambda-powertools/batch';
import { parser as batchParser } from '@aws-lambda-powertools/batch/parser';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { RegisterDeps } from '#core/deps.ts';
import { registerSnapshot, snapshotNotificationFromEvent } from '#core/release/register.ts';
import { type SnapshotNotificationEnvelope, SnapshotNotificationEvent } from '#events/aws.ts';
import { LoggedBatchProcessor } from '../commons/batch.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented, withLogKeys } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: RegisterDeps, tools: Powertools = powertools) {
  const record = async (record: { body: SnapshotNotificationEnvelope }) => {
    const result = await withLogKeys(tools, { region: record.body.region }, () =>
      registerSnapshot(deps, snapshotNotificationFromEvent(record.body)),
    );
    tools.metrics.addMetric(
      result.outcome === 'registered' ? 'ImagesRegistered' : `Snapshots_${result.outcome}`,
      MetricUnit.Count,
      1,
    );
    return result;
  };
  return instrumented<SQSEvent, SQSBatchResponse>(tools).handler(async (event, context) => {
    // One processor per invocation: it holds the batch's state, and the local runtime may invoke concurrently.
    const processor = new LoggedBatchProcessor(tools, {
      parser: batchParser,
      innerSchema: SnapshotNotificationEvent,
      transformer: 'json',
      logger: tools.logger,
    });
    return processPartialResponse(event, record, processor, { context });
  });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsRegisterDeps()),
);
