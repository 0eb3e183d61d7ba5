// sync-subscribers λ: on a schedule (and on Organizations account changes) reconcile the central bus's rules
// so that every account in scope, and only those, receives stemcell's events; then the reconciler brings the
// accounts no rule targeted before (late joiners) to the newest announced image of each of their streams. The
// event's content is not used: every run computes the whole desired state.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import { type SyncResult, syncSubscribers } from '#core/members/forwarding-rules.ts';
import { deliverLatestTo, type ReconcileReport } from '#core/release/reconcile.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: SyncSubscribersDeps, tools: Powertools = powertools) {
  return middy<unknown, SyncResult & { caughtUp: ReconcileReport['redelivered'] }>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .handler(async () => {
      const result = await syncSubscribers(deps);
      tools.metrics.addMetric(
        'SubscriberAccounts',
        MetricUnit.Count,
        result.rules.reduce((n, r) => n + r.accountIds.length, 0),
      );
      tools.metrics.addMetric('SubscriberRules', MetricUnit.Count, result.rules.length);
      const caughtUp = deps.catchUp ? await deliverLatestTo(deps.catchUp, result.joined) : [];
      tools.metrics.addMetric('LateJoinerDeliveries', MetricUnit.Count, caughtUp.length);
      return { ...result, caughtUp };
    });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsSyncSubscribersDeps()),
);
