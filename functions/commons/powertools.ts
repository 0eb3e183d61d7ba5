// The Powertools instances every handler shares: structured logs, CloudWatch metrics (EMF) and X-Ray traces.
// Outside Lambda (local mode, tests) they stay quiet: no EMF blobs or info logs on the CLI's stdout.
import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { FunctionEnv } from './env.ts';

/** The variables read here, through the functions' one environment schema (env.ts). */
const env = FunctionEnv.pick({
  AWS_LAMBDA_FUNCTION_NAME: true,
  POWERTOOLS_SERVICE_NAME: true,
  STEMCELL_LOG_LEVEL: true,
}).parse(process.env);

export const onLambda = Boolean(env.AWS_LAMBDA_FUNCTION_NAME);

export const METRICS_NAMESPACE = 'stemcell';

export interface Powertools {
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
}

/** Metrics that are recorded but never printed: local runs keep stdout for the CLI's own output. */
class QuietMetrics extends Metrics {
  override publishStoredMetrics(): this {
    this.clearMetrics();
    this.clearDimensions();
    this.clearMetadata();
    return this;
  }
}

export function createPowertools(options: { serviceName?: string; quiet?: boolean } = {}): Powertools {
  const serviceName = options.serviceName ?? env.POWERTOOLS_SERVICE_NAME ?? 'stemcell';
  const quiet = options.quiet ?? !onLambda;
  const logLevel = quiet ? (env.STEMCELL_LOG_LEVEL ?? 'SILENT') : undefined;
  const metricsOptions = { namespace: METRICS_NAMESPACE, serviceName };
  return {
    logger: new Logger({ serviceName, ...(logLevel ? { logLevel: logLevel as LogLevel } : {}) }),
    metrics: quiet ? new QuietMetrics(metricsOptions) : new Metrics(metricsOptions),
    tracer: new Tracer({ serviceName, enabled: !quiet }),
  };
}

/** The default instances, created once per Lambda container. */
export const powertools: Powertools = createPowertools();
