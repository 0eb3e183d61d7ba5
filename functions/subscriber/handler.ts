// subscriber λ (member accounts): "Image Ready" → launch templates tagged stemcell:stream=<stream> move to the
// new image (never backwards), SSM parameter, instance refresh, "Launch Template Updated" back to the centre.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { SubscriberDeps } from '#core/deps.ts';
import { applyImageReady, type SubscriberResult } from '#core/subscriber.ts';
import { type ImageReadyEnvelope, ImageReadyEvent } from '#events/stemcell.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: SubscriberDeps, tools: Powertools = powertools) {
  return middy<ImageReadyEnvelope, SubscriberResult>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .use(parser({ schema: ImageReadyEvent }))
    .handler(async (event) => {
      const result = await applyImageReady(deps, event.detail);
      for (const outcome of ['updated', 'already-current', 'skipped-older'] as const) {
        tools.metrics.addMetric(
          `LaunchTemplates_${outcome}`,
          MetricUnit.Count,
          result.templates.filter((t) => t.outcome === outcome).length,
        );
      }
      return result;
    });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsSubscriberDeps()),
);
