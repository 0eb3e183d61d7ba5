// subscriber λ (member accounts): the account's FIFO queue of "Image Ready" events (the member bus rule's
// target; one message group) → launch templates tagged stemcell:stream=<stream> move to the new image (never
// backwards), SSM parameter, instance refresh, "Launch Template Updated" back to the centre. The same queue
// carries Auto Scaling's instance-refresh end events (their own message group): how a refresh the subscriber
// started ended goes back as a second report. The FIFO processor keeps the order: once a record fails, the
// rest of its group fails too and comes back in order.
import { processPartialResponse } from '@aws-lambda-powertools/batch';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { SubscriberDeps } from '#core/deps.ts';
import { applyImageReady } from '#core/members/subscriber.ts';
import { reportInstanceRefresh } from '#core/members/subscriber-refresh.ts';
import { InstanceRefreshEndedEvent } from '#events/aws.ts';
import { ImageReadyEvent } from '#events/stemcell.ts';
import { LoggedSqsFifoProcessor } from '../commons/batch.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented, withLogKeys } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: SubscriberDeps, tools: Powertools = powertools) {
  const record = async (record: SQSRecord) => {
    const body = JSON.parse(record.body) as { source?: unknown };
    if (body.source === 'aws.autoscaling') {
      const ended = InstanceRefreshEndedEvent.parse(body);
      const report = await withLogKeys(tools, { region: ended.region }, () =>
        reportInstanceRefresh(deps, ended),
      );
      tools.metrics.addMetric(`InstanceRefreshEnds_${report.outcome}`, MetricUnit.Count, 1);
      return report;
    }
    const event = ImageReadyEvent.parse(body);
    const { releaseId, stream, region } = event.detail;
    const result = await withLogKeys(tools, { releaseId, stream, region }, () =>
      applyImageReady(deps, event.detail),
    );
    for (const outcome of ['updated', 'already-current', 'skipped-older'] as const) {
      tools.metrics.addMetric(
        `LaunchTemplates_${outcome}`,
        MetricUnit.Count,
        result.templates.filter((t) => t.outcome === outcome).length,
      );
    }
    return result;
  };
  return instrumented<SQSEvent, SQSBatchResponse>(tools).handler(async (event, context) => {
    // One processor per invocation: it holds the batch's state, and the local runtime may invoke concurrently.
    const processor = new LoggedSqsFifoProcessor(tools);
    // Another group's records (another stream, in local mode) go on after one group fails.
    return processPartialResponse(event, record, processor, {
      context,
      skipGroupOnError: true,
      throwOnFullBatchFailure: false,
    });
  });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsSubscriberDeps()),
);
