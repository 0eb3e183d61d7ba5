import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import type { IngestDeps } from '#core/deps.ts';
import { ingest, objectCreatedFromEvent } from '#core/release/ingest.ts';
import { type ObjectCreatedEnvelope, ObjectCreatedEvent } from '#events/aws.ts';
import { lazyHandler } from '../commons/lazy.ts';
import { instrumented, withLogKeys } from '../commons/middleware.ts';
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
  return instrumented<ObjectCreatedEnvelope, IngestResponse>(tools)
    .use(parser({ schema: ObjectCreatedEvent }))
    .handler(async (event) => {
      const stream = /^streams\/([^/]+)\//.exec(event.detail.object.key)?.[1];
      const { release, created, enqueued } = await withLogKeys(tools, { stream, region: event.region }, () =>
        ingest(deps, objectCreatedFromEvent(event)),
      );
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
