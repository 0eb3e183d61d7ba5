import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { parser } from '@aws-lambda-powertools/parser/middleware';
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
import { instrumented, withLogKeys } from '../commons/middleware.ts';
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
  return instrumented<AnnounceInput, AnnounceResponse>(tools)
    .use(parser({ schema: AnnounceInput }))
    .handler(async (event): Promise<AnnounceResponse> => {
      if ('kind' in event) {
        if (!deps.rollouts || !deps.timer)
          throw new Error('rollout timer fired, but no rollout store is wired');
        const timer = { ...deps, rollouts: deps.rollouts, timer: deps.timer };
        const result = await withLogKeys(tools, { releaseId: event.releaseId }, () =>
          onRolloutTimer(timer, event),
        );
        tools.metrics.addMetric(`Rollout_${result.outcome}`, MetricUnit.Count, 1);
        return result;
      }
      if (event['detail-type'] === 'Launch Template Updated') {
        const { releaseId, stream, region } = event.detail;
        const record = await withLogKeys(tools, { releaseId, stream, region }, () =>
          recordLaunchTemplateUpdate(deps, event.detail),
        );
        tools.metrics.addMetric(`LaunchTemplates_${event.detail.outcome}`, MetricUnit.Count, 1);
        return {
          outcome: record ? 'account-recorded' : 'ignored',
          releaseId: event.detail.releaseId,
          accountId: event.detail.accountId,
        };
      }
      const result = await withLogKeys(tools, { region: event.region }, () =>
        announceImage(deps, amiStateChangeFromEvent(event)),
      );
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
