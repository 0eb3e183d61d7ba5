// announce λ: "EC2 AMI State Change" (forwarded from every region) → share, "Image Ready", "Release Complete";
// and the member accounts' "Launch Template Updated" reports → the release's per-account state.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import { z } from 'zod';
import {
  type AnnounceResult,
  amiStateChangeFromEvent,
  announceImage,
  recordLaunchTemplateUpdate,
} from '#core/announce.ts';
import type { AnnounceDeps } from '#core/deps.ts';
import { AmiStateChangeEvent } from '#events/aws.ts';
import { LaunchTemplateUpdatedEvent } from '#events/stemcell.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export const AnnounceInput = z.discriminatedUnion('detail-type', [
  AmiStateChangeEvent,
  LaunchTemplateUpdatedEvent,
]);
export type AnnounceInput = z.input<typeof AnnounceInput>;

export type AnnounceResponse =
  | AnnounceResult
  | { outcome: 'account-recorded' | 'ignored'; releaseId: string; accountId: string };

export function createHandler(deps: AnnounceDeps, tools: Powertools = powertools) {
  return middy<AnnounceInput, AnnounceResponse>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .use(parser({ schema: AnnounceInput }))
    .handler(async (event): Promise<AnnounceResponse> => {
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
