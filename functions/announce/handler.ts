// announce λ: "EC2 AMI State Change" (forwarded from every region) → share, "Image Ready", "Release Complete";
// the member accounts' "Launch Template Updated" reports → the release's per-account state; and the rollout's
// bake timers (EventBridge Scheduler one-time schedules whose input is a RolloutTimerInput) → the next wave.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import type { AnnounceDeps } from '#core/deps.ts';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import { amiStateChangeFromEvent, announceImage } from '#core/release/announce.ts';
import type { AnnounceResult } from '#core/release/image-ready.ts';
import { onRolloutTimer } from '#core/rollout/bake-timer.ts';
import type { TimerResult } from '#core/rollout/rollout.ts';
import { AmiStateChangeEvent } from '#events/aws.ts';
import { LaunchTemplateUpdatedEvent } from '#events/stemcell.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

/** The Scheduler target input of a wave's bake timer (src/core/rollout/rollout.ts schedules it). */
export const RolloutTimerEvent = z.strictObject({
  kind: z.literal('stemcell-rollout-timer'),
  releaseId: z.string().min(1),
  wave: z.number().int().nonnegative(),
  wait: z.number().int().positive().optional(),
});

export const AnnounceInput = z.union([
  z.discriminatedUnion('detail-type', [AmiStateChangeEvent, LaunchTemplateUpdatedEvent]),
  RolloutTimerEvent,
]);
export type AnnounceInput = z.input<typeof AnnounceInput>;

export type AnnounceResponse =
  | AnnounceResult
  | { outcome: 'account-recorded' | 'ignored'; releaseId: string; accountId: string }
  | (TimerResult & { releaseComplete: boolean });

export function createHandler(deps: AnnounceDeps, tools: Powertools = powertools) {
  return middy<AnnounceInput, AnnounceResponse>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .use(parser({ schema: AnnounceInput }))
    .handler(async (event): Promise<AnnounceResponse> => {
      if ('kind' in event) {
        if (!deps.rollouts || !deps.timer)
          throw new Error('rollout timer fired, but no rollout store is wired');
        const result = await onRolloutTimer({ ...deps, rollouts: deps.rollouts, timer: deps.timer }, event);
        tools.metrics.addMetric(`Rollout_${result.outcome}`, MetricUnit.Count, 1);
        return result;
      }
      if (event['detail-type'] === 'Launch Template Updated') {
        const record = await recordLaunchTemplateUpdate(deps, event.detail);
        tools.metrics.addMetric(`LaunchTemplates_${event.detail.outcome}`, MetricUnit.Count, 1);
        return {
          outcome: record ? 'account-recorded' : 'ignored',
          releaseId: event.detail.releaseId,
          accountId: event.detail.accountId,
        };
      }
      const result = await announceImage(deps, amiStateChangeFromEvent(event));
      tools.metrics.addMetric(`Images_${result.outcome}`, MetricUnit.Count, 1);
      if (result.outcome === 'announced' && result.releaseComplete) {
        tools.metrics.addMetric('ReleasesCompleted', MetricUnit.Count, 1);
      }
      return result;
    });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsAnnounceDeps()),
);
