import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import { type SyncResult, syncSubscribers } from '#core/members/forwarding-rules.ts';
import { deliverLatestTo, type ReconcileReport } from '#core/release/reconcile.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export function createHandler(deps: SyncSubscribersDeps, tools: Powertools = powertools) {
  return instrumented<unknown, SyncResult & { caughtUp: ReconcileReport['redelivered'] }>(tools).handler(
    async () => {
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
    },
  );
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsSyncSubscribersDeps()),
);
