// The part of Lambda and EventBridge Scheduler the local stack needs: an SQS event source (one polling loop for
// every queue-triggered function), a Scheduler that fires due bake timers and rate schedules, and the count of
// invocations in progress that `settle()` waits on. The handlers it invokes are the modules Lambda runs.
import type { Context } from 'aws-lambda';
import type { Logger } from '#core/deps.ts';
import type { RolloutTimerInput } from '#ports';
import { realSleep } from '../clock.ts';
import type { LocalFifoQueue, LocalQueueMessage } from '../fifo-queue.ts';
import { toLambdaSqsEvent } from '../fifo-queue.ts';
import type { LocalScheduler } from '../scheduler.ts';

/** What Lambda passes a handler beside the event; the handlers read the function name and request id. */
export const lambdaContext = (functionName: string): Context =>
  ({
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => 300_000,
    done() {},
    fail() {},
    succeed() {},
  }) as Context;

export type SqsHandler = (
  event: never,
  context: Context,
) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;

export interface EventSourceOptions {
  /** How long a received batch stays hidden (the function's timeout on AWS). */
  visibilityTimeoutSeconds: number;
  /**
   * Seconds before a failed record is visible again. Absent: it stays hidden for the visibility timeout, as
   * Lambda leaves it. The boot check sets a short one: a record it fails is a boot still under way.
   */
  retryAfterSeconds?: number;
}

/** Operator lines (volume backend, grows, failures); `once` does not repeat a line while it persists. */
export class OperatorLog {
  readonly line: (line: string) => void;
  #last: string | undefined;

  constructor(line: (line: string) => void) {
    this.line = line;
  }

  once(line: string): void {
    if (this.#last === line) return;
    this.#last = line;
    this.line(line);
  }
}

const RETRY_PAUSE_MS = 1000;

export class LambdaHost {
  readonly #logger: Logger;
  readonly #log: OperatorLog;
  readonly #loops: Promise<void>[] = [];
  readonly #timers: NodeJS.Timeout[] = [];
  #running = false;
  #busy = 0;

  constructor(options: { logger: Logger; log: OperatorLog }) {
    this.#logger = options.logger;
    this.#log = options.log;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Invocations (and builds) in progress: `settle()` waits for none. */
  get busy(): number {
    return this.#busy;
  }

  start(): void {
    this.#running = true;
  }

  /** Stops every loop and schedule; resolves once the invocations in progress have returned. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const timer of this.#timers) clearInterval(timer);
    await Promise.allSettled(this.#loops);
  }

  /** Runs `work` counted as busy. */
  async invoke<T>(work: () => Promise<T>): Promise<T> {
    this.#busy++;
    try {
      return await work();
    } finally {
      this.#busy--;
    }
  }

  /** Keeps a loop that runs while the runtime does; stop() waits for it. */
  spawn(loop: Promise<void>): void {
    this.#loops.push(loop);
  }

  /**
   * Lambda's SQS event source: batches of up to 10 in, records the handler reports as failed stay queued (partial
   * batch response), the others are deleted. A queue that cannot be read (a full data folder fails the queue's
   * own writes) is reported once and tried again, never a crash.
   */
  eventSource(
    queue: LocalFifoQueue,
    functionName: string,
    handler: SqsHandler,
    options: EventSourceOptions,
  ): void {
    this.spawn(this.#consume(queue, functionName, handler, options));
  }

  async #consume(
    queue: LocalFifoQueue,
    functionName: string,
    handler: SqsHandler,
    options: EventSourceOptions,
  ): Promise<void> {
    while (this.#running) {
      let messages: LocalQueueMessage[];
      try {
        messages = await queue.receive({
          max: 10,
          visibilityTimeoutSeconds: options.visibilityTimeoutSeconds,
          waitSeconds: 1,
        });
      } catch (err) {
        this.#log.once(`${queue.name}: receive failed: ${(err as Error).message}`);
        await realSleep(RETRY_PAUSE_MS);
        continue;
      }
      if (messages.length === 0) continue;
      await this.invoke(async () => {
        try {
          const response = await handler(
            toLambdaSqsEvent(
              { arn: queue.arn, region: queue.region, accountId: queue.accountId },
              messages,
            ) as never,
            lambdaContext(functionName),
          );
          const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
          for (const message of messages) {
            if (!failed.has(message.messageId)) await queue.delete(message.receiptHandle);
            else if (options.retryAfterSeconds !== undefined)
              await queue.changeVisibility(message.receiptHandle, options.retryAfterSeconds);
          }
        } catch (err) {
          this.#logger.error(`${functionName} invocation failed`, { err });
        }
      });
    }
  }

  /** EventBridge Scheduler's one-time schedules: due bake timers invoke `target` with their input. */
  bakeTimers(scheduler: LocalScheduler, target: (input: RolloutTimerInput) => Promise<void>): void {
    this.spawn(
      (async () => {
        while (this.#running) {
          await this.invoke(async () => {
            try {
              await scheduler.poll(target);
            } catch (err) {
              this.#logger.error('bake timer target failed', { err });
            }
          });
          await realSleep(100);
        }
      })(),
    );
  }

  /** A rate schedule: `work` every `ms`, never two at once; stop() ends it. */
  every(ms: number, work: () => Promise<void>): void {
    let working = false;
    const timer = setInterval(() => {
      if (working) return;
      working = true;
      void work().finally(() => {
        working = false;
      });
    }, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  /** A service's own background work (not an invocation: settle() does not wait for it). */
  poll(ms: number, work: () => void, what: string): void {
    this.spawn(
      (async () => {
        while (this.#running) {
          try {
            work();
          } catch (err) {
            this.#logger.error(`${what} failed`, { err });
          }
          await realSleep(ms);
        }
      })(),
    );
  }
}
