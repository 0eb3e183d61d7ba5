import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import { type SyncResult, syncSubscribers } from '#core/members/forwarding-rules.ts';
import { deliverLatestTo, type ReconcileReport } from '#core/release/reconcile.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

const STOP_MARGIN_MS = 60_000;

export function createHandler(deps: SyncSubscribersDeps, tools: Powertools = powertools) {
  return instrumented<unknown, SyncResult & { caughtUp: ReconcileReport['redelivered'] }>(tools).handler(
    async (_event, context) => {
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
    },
  );
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsRuntime().syncSubscribers()),
);
