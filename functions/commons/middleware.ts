// The one place the Powertools middlewares are applied, in the same order for every handler: X-Ray around the
// whole invocation, the Lambda context (and a fresh set of log keys) on the logger, metrics flushed at the end.
// withLogKeys() puts the release, stream and region on every log line of the work at hand — one record of a
// batch, or the whole invocation — and takes them off again, so the next record never inherits them.
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import middy from '@middy/core';
import type { Powertools } from './powertools.ts';

export function instrumented<TEvent, TResult>(tools: Powertools) {
  return middy<TEvent, TResult>()
    .use(captureLambdaHandler(tools.tracer))
    .use(injectLambdaContext(tools.logger, { resetKeys: true }))
    .use(logMetrics(tools.metrics));
}

/** The keys a log line about a release carries; absent ones are left out. */
export interface ReleaseLogKeys {
  releaseId?: string | undefined;
  stream?: string | undefined;
  region?: string | undefined;
}

export async function withLogKeys<T>(
  tools: Powertools,
  keys: ReleaseLogKeys,
  work: () => Promise<T>,
): Promise<T> {
  const present = Object.fromEntries(Object.entries(keys).filter(([, v]) => v !== undefined)) as Record<
    string,
    string
  >;
  tools.logger.appendKeys(present);
  try {
    return await work();
  } finally {
    tools.logger.removeKeys(Object.keys(present));
  }
}
