import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { ExpireDeps } from '#core/deps.ts';
import {
  DEFAULT_EXPIRE_GRACE_MS,
  type ExpireOptions,
  type ExpireResult,
  expireImages,
} from '#core/images/expire.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: ExpireDeps, tools: Powertools = powertools, options: ExpireOptions = {}) {
  return instrumented<unknown, ExpireResult>(tools).handler(async () => {
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
