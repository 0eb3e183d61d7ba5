// reconcile λ: on a schedule, finish what a crash interrupted (src/core/release/reconcile.ts): fail jobs whose
// attempts ran out (the build DLQs), register completed snapshots that have no image, announce available
// images that were never announced, and deliver "Image Ready" again to accounts that never reported.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { ReconcileDeps } from '#core/deps.ts';
import { type ReconcileOptions, type ReconcileReport, reconcile } from '#core/release/reconcile.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(
  deps: ReconcileDeps,
  tools: Powertools = powertools,
  options: ReconcileOptions = {},
) {
  return middy<unknown, ReconcileReport>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .handler(async () => {
      const report = await reconcile(deps, options);
      tools.metrics.addMetric('ReconcileFailed', MetricUnit.Count, report.failed.length);
      tools.metrics.addMetric('ReconcileRegistered', MetricUnit.Count, report.registered.length);
      tools.metrics.addMetric('ReconcileAnnounced', MetricUnit.Count, report.announced.length);
      tools.metrics.addMetric('ReconcileRedelivered', MetricUnit.Count, report.redelivered.length);
      return report;
    });
}

export const handler = lazyHandler(async () => {
  const { awsReconcileDeps } = await import('../commons/aws-deps.ts');
  return createHandler(await awsReconcileDeps());
});
