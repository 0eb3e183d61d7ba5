import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { SweepDeps } from '#core/deps.ts';
import { WAIT_BUDGET_SECONDS } from '#core/release/boot-gate.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented } from '../commons/middleware.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

/** Older than the longest timeout allowed plus the waiting budget: no live check can own it. */
export const SWEEP_AFTER_SECONDS = 900 + WAIT_BUDGET_SECONDS + 600;

export function createHandler(deps: SweepDeps, tools: Powertools = powertools) {
  return instrumented<unknown, { terminated: Record<string, string[]> }>(tools).handler(async () => {
    const regions = [...new Set(Object.values(deps.config.streams).flatMap((s) => s.regions))];
    const terminated: Record<string, string[]> = {};
    for (const region of regions) {
      const ids = await deps.sweeper(region).sweep(SWEEP_AFTER_SECONDS);
      if (ids.length > 0) {
        terminated[region] = ids;
        tools.logger.warn('terminated stray smoke instances', { region, ids });
      }
      tools.metrics.addMetric('SmokeInstancesSwept', MetricUnit.Count, ids.length);
    }
    return { terminated };
  });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsSweepDeps()),
);
