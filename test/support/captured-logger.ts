// A Powertools Logger whose printed lines are kept, parsed, instead of written: tests read what the function
// logs exactly as CloudWatch would receive it.
import { Logger } from '@aws-lambda-powertools/logger';

export type LogLine = Record<string, unknown> & { level: string; message: string };

export function capturedLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = new Logger({ serviceName: 'stemcell-test', logLevel: 'DEBUG' });
  const keep = (text: string) => lines.push(JSON.parse(text) as LogLine);
  // Powertools prints each line through its own Console instance (Logger.printLog).
  (logger as unknown as { console: Partial<Console> }).console = {
    debug: keep,
    info: keep,
    warn: keep,
    error: keep,
    trace: keep,
    log: keep,
  };
  return { logger, lines };
}
