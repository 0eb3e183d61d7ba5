import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { ReconcileDeps } from '#core/deps.ts';
import { type ReconcileOptions, type ReconcileReport, reconcile } from '#core/release/reconcile.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(
  deps: ReconcileDeps,
  tools: Powertools = powertools,
  options: ReconcileOptions = {},
) {
  return instrumented<unknown, ReconcileReport>(tools).handler(async () => {
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
