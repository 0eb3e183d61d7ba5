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

const STOP_MARGIN_MS = 60_000;

export function createHandler(deps: SyncSubscribersDeps, tools: Powertools = powertools) {
  return middy<unknown, SyncResult & { caughtUp: ReconcileReport['redelivered'] }>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .handler(async (_event, context) => {
      // Stop writing before Lambda's timeout (a minute, or a tenth of the time left when that is shorter): the
      // next run plans from what exists and resumes.
      const remaining = context?.getRemainingTimeInMillis?.();
      const stopBy =
        remaining === undefined
          ? undefined
          : new Date(deps.clock.now().getTime() + remaining - Math.min(STOP_MARGIN_MS, remaining / 10));
      const result = await syncSubscribers(deps, stopBy ? { stopBy } : {});
      if (!result.complete) {
        tools.logger.warn('stopped before Lambda timeout with writes left; the next run resumes', {
          added: result.added,
          removed: result.removed,
        });
      }
      tools.metrics.addMetric('SubscriberSyncIncomplete', MetricUnit.Count, result.complete ? 0 : 1);
      tools.metrics.addMetric('FanoutBuses', MetricUnit.Count, Object.keys(result.rulesPerBus).length);
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
