// ingest λ: S3 "Object Created" (via EventBridge) for streams/<stream>/<revision>.tar* → release + build jobs.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { IngestDeps } from '#core/deps.ts';
import { ingest, objectCreatedFromEvent } from '#core/release/ingest.ts';
import { type ObjectCreatedEnvelope, ObjectCreatedEvent } from '#events/aws.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { type Powertools, powertools } from '../commons/powertools.ts';

export interface IngestResponse {
  releaseId: string;
  stream: string;
  revision: string;
  sequence: number;
  created: boolean;
  enqueued: string[];
}

export function createHandler(deps: IngestDeps, tools: Powertools = powertools) {
  return middy<ObjectCreatedEnvelope, IngestResponse>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger))
    .use(logMetrics(tools.metrics))
    .use(parser({ schema: ObjectCreatedEvent }))
    .handler(async (event) => {
      const { release, created, enqueued } = await ingest(deps, objectCreatedFromEvent(event));
      tools.metrics.addMetric('ReleasesCreated', MetricUnit.Count, created ? 1 : 0);
      tools.metrics.addMetric('BuildJobsSent', MetricUnit.Count, enqueued.length);
      return {
        releaseId: release.releaseId,
        stream: release.stream,
        revision: release.revision,
        sequence: release.sequence,
        created,
        enqueued,
      };
    });
}

export const handler = lazyHandler(async () =>
  createHandler(await (await import('../commons/aws-deps.ts')).awsIngestDeps()),
);
