// boot-check λ: the boot gate's worker. An SQS queue of BootCheckJobs (one per release and region); each
// invocation takes one short look at each boot (start the machine if needed, observe it once, decide). A boot
// still under way fails its record on purpose, so SQS hands it back after the queue's visibility timeout: the
// poll interval. No invocation ever waits for a boot.
import { processPartialResponse } from '@aws-lambda-powertools/batch';
import { parser as batchParser } from '@aws-lambda-powertools/batch/parser';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import type { BootCheckDeps } from '#core/deps.ts';
import { advanceBootCheck } from '#core/release/boot-check.ts';
import { BootCheckJob } from '#events/aws.ts';
import { LoggedBatchProcessor } from '../commons/batch.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented, withLogKeys } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

/** Thrown for a boot still under way: the record goes back to the queue to be looked at again. */
export class BootCheckPending extends Error {
  constructor(releaseId: string, region: string, state: string) {
    super(`boot check of ${releaseId} in ${region} is ${state}; looking again later`);
    this.name = 'BootCheckPending';
  }
}

export function createHandler(deps: BootCheckDeps, tools: Powertools = powertools) {
  const record = async (record: { body: BootCheckJob }) => {
    const { releaseId, region } = record.body;
    const result = await withLogKeys(tools, { releaseId, region }, () => advanceBootCheck(deps, record.body));
    tools.metrics.addMetric(`BootChecks_${result.outcome}`, MetricUnit.Count, 1);
    if (result.outcome === 'pending')
      throw new BootCheckPending(result.releaseId, result.region, result.state);
    return result;
  };
  return instrumented<SQSEvent, SQSBatchResponse>(tools).handler(async (event, context) => {
    // A boot still under way is logged at INFO: its record comes back on purpose.
    const processor = new LoggedBatchProcessor(
      { logger: tools.logger, expected: (err) => err instanceof BootCheckPending },
      {
        parser: batchParser,
        innerSchema: BootCheckJob,
        transformer: 'json',
        logger: tools.logger,
      },
    );
    // A batch of boots that are all still under way is normal, not an error of the function.
    return processPartialResponse(event, record, processor, { context, throwOnFullBatchFailure: false });
  });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsBootCheckDeps()),
);
