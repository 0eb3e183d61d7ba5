// expire λ: on a schedule, keep the newest images per stream and region and retire the rest (never the newest,
// never one anything can still launch from). EXPIRE_GRACE_HOURS: how long an image stays deprecated before it is
// deregistered (default 168: 7 days; 0: both in one run).
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { ExpireDeps } from '#core/deps.ts';
import {
  DEFAULT_EXPIRE_GRACE_MS,
  type ExpireOptions,
  type ExpireResult,
  expireImages,
} from '#core/images/expire.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: ExpireDeps, tools: Powertools = powertools, options: ExpireOptions = {}) {
  return middy<unknown, ExpireResult>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .handler(async () => {
      const result = await expireImages(deps, options);
      tools.metrics.addMetric(
        'ImagesDeregistered',
        MetricUnit.Count,
        result.expired.filter((e) => e.action === 'deregistered').length,
      );
      tools.metrics.addMetric('ImagesKeptInUse', MetricUnit.Count, result.keptInUse.length);
      return result;
    });
}

export const handler = lazyHandler(async () => {
  const { awsExpireDeps, awsExpireGraceMs } = await import('../commons/aws-deps.ts');
  const deps = await awsExpireDeps();
  return createHandler(deps, powertools, { graceMs: awsExpireGraceMs() ?? DEFAULT_EXPIRE_GRACE_MS });
});
