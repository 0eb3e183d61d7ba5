// The batch processors of the SQS-fed functions (register, boot-check, subscriber): Powertools' own, with every
// failed record logged. A failed record otherwise only goes back to its queue; after maxReceiveCount it sits
// in the DLQ and nothing says why. The log line is written where Powertools records the failure, so records
// that never reach the record handler are logged too: a body the parser refused (a poison message) and, on a
// FIFO queue, the records failed unprocessed behind a failed one of their group.
import { BatchProcessor, EventType, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import type {
  BatchProcessorConfig,
  EventSourceDataClassTypes,
  FailureResponse,
} from '@aws-lambda-powertools/batch/types';
import type { Logger } from '@aws-lambda-powertools/logger';

export interface FailureLogOptions {
  logger: Logger;
  /**
   * Failures that are part of the design (a boot check still under way comes back later on purpose): logged at
   * INFO instead of ERROR.
   * @defaultValue none: every failure is an error
   */
  expected?: (error: Error) => boolean;
}

/** What a record is about, where its body says: the release, stream and region. */
export function recordSubject(body: string): { releaseId?: string; stream?: string; region?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return {};
  }
  if (!parsed || typeof parsed !== 'object') return {};
  const outer = parsed as Record<string, unknown>;
  const detail = (typeof outer.detail === 'object' && outer.detail ? outer.detail : {}) as Record<
    string,
    unknown
  >;
  const subject: { releaseId?: string; stream?: string; region?: string } = {};
  // The detail first: an event's own region (Image Ready's image region) beats its envelope's.
  for (const key of ['releaseId', 'stream', 'region'] as const) {
    const value = detail[key] ?? outer[key];
    if (typeof value === 'string' && value) subject[key] = value;
  }
  return subject;
}

/** One structured log line for one failed record: its message id, the error's name and message, its subject. */
export function logRecordFailure(
  options: FailureLogOptions,
  record: EventSourceDataClassTypes,
  error: Error,
): void {
  const sqs = 'messageId' in record ? record : undefined;
  const cause = error.cause instanceof Error ? error.cause : undefined;
  const fields = {
    messageId: sqs?.messageId,
    ...(sqs?.attributes?.MessageGroupId ? { messageGroupId: sqs.attributes.MessageGroupId } : {}),
    ...(sqs?.attributes?.ApproximateReceiveCount
      ? { receiveCount: Number(sqs.attributes.ApproximateReceiveCount) }
      : {}),
    ...(sqs ? recordSubject(sqs.body) : {}),
    errorName: error.name,
    errorMessage: error.message,
    ...(cause ? { causeName: cause.name, causeMessage: cause.message } : {}),
  };
  const expected = options.expected?.(error) ?? false;
  if (expected) options.logger.info('record failed, to be retried', fields);
  else options.logger.error('record failed', fields);
}

/** Powertools' BatchProcessor (SQS), logging each failed record. */
export class LoggedBatchProcessor extends BatchProcessor {
  readonly #log: FailureLogOptions;

  constructor(log: FailureLogOptions, parserConfig?: BatchProcessorConfig) {
    super(EventType.SQS, parserConfig);
    this.#log = log;
  }

  override failureHandler(record: EventSourceDataClassTypes, error: Error): FailureResponse {
    logRecordFailure(this.#log, record, error);
    return super.failureHandler(record, error);
  }
}

/** Powertools' SQS FIFO processor (a group stops at its first failure), logging each failed record. */
export class LoggedSqsFifoProcessor extends SqsFifoPartialProcessorAsync {
  readonly #log: FailureLogOptions;

  constructor(log: FailureLogOptions) {
    super();
    this.#log = log;
  }

  override failureHandler(record: EventSourceDataClassTypes, error: Error): FailureResponse {
    logRecordFailure(this.#log, record, error);
    return super.failureHandler(record, error);
  }
}
