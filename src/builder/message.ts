// One received build message, to its end, for the EC2 agent (agent.ts, over SQS) and the local builder fleet
// (src/local/stack/builders.ts) alike: parse the job, build it, and on failure decide with handleBuildFailure()
// whether the message is deleted, waits for the builder's disk, or comes back after a backoff. Each transport
// applies the answer to its own queue and keeps the message in flight (heartbeat) while this runs.
import { BuildJob } from '#events/aws.ts';
import type { QueueMessage } from '#ports';
import { requireHostSpace } from './space.ts';
import {
  type BuilderDeps,
  type BuildOutcome,
  handleBuildFailure,
  type MessageVerdict,
  runBuild,
} from './worker.ts';

/** delete: the job is finished (built, skipped, or failed for good); retry: visible again after `afterSeconds`. */
export type BuildMessageEnd = { kind: 'delete' } | { kind: 'retry'; afterSeconds: number; error: Error };

/**
 * Seconds before a failed attempt is tried again: `baseSeconds` doubling with the receive count, capped at 15
 * minutes. A transient cause (throttling, a builder restarting) then does not spend every attempt at once.
 */
export function retryDelaySeconds(receiveCount: number, baseSeconds = 30): number {
  return Math.min(900, baseSeconds * 2 ** Math.max(0, receiveCount - 1));
}

export interface BuildMessageOptions {
  /** The queue's redrive maxReceiveCount: the attempt that reaches it is the last. */
  maxReceiveCount: number;
  /** The backoff's first delay (seconds). @defaultValue 30 */
  retryBaseSeconds?: number;
  log(line: string): void;
  /** False once the builder is stopping: a job waiting for space goes back to the queue. @defaultValue always */
  running?(): boolean;
  /** How often a job waiting for the builder's disk looks again (ms). @defaultValue 1000 */
  spacePollMs?: number;
  /** Runs before each attempt; a throw fails the attempt as a builder crash would (local test hook). */
  beforeBuild?(job: BuildJob): void | Promise<void>;
  onStart?(job: BuildJob, attempt: number): void;
  onBuilt?(job: BuildJob, outcome: BuildOutcome): void;
  /** After an attempt failed; `final` when no attempt follows. */
  onFailed?(job: BuildJob, reason: string, verdict: MessageVerdict, final: boolean): void;
}

export async function handleBuildMessage(
  deps: BuilderDeps,
  message: QueueMessage,
  options: BuildMessageOptions,
): Promise<BuildMessageEnd> {
  const retry = (error: Error): BuildMessageEnd => ({
    kind: 'retry',
    afterSeconds: retryDelaySeconds(message.receiveCount, options.retryBaseSeconds),
    error,
  });
  let job: BuildJob;
  try {
    job = BuildJob.parse(JSON.parse(message.body));
  } catch (err) {
    // Not a BuildJob: it cannot succeed; the queue's receive count moves it to the DLQ.
    options.log(`unreadable build job ${message.messageId}: ${(err as Error).message}`);
    return retry(err as Error);
  }
  options.onStart?.(job, message.receiveCount);
  for (;;) {
    try {
      await options.beforeBuild?.(job);
      const outcome = await runBuild(deps, job);
      options.onBuilt?.(job, outcome);
      return { kind: 'delete' };
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      const verdict = await handleBuildFailure(deps, job, err, {
        receiveCount: message.receiveCount,
        maxReceiveCount: options.maxReceiveCount,
      });
      const final =
        verdict === 'done' || (verdict === 'retry' && message.receiveCount >= options.maxReceiveCount);
      options.onFailed?.(job, error.message, verdict, final);
      if (verdict === 'wait' && deps.hostSpace) {
        // The builder's disk, not the build: the job waits (in flight) until there is room again.
        options.log(
          `build ${job.stream} ${job.revision} in ${job.region}: ${error.message}; waiting for space`,
        );
        if (!(await waitForSpace(deps, options))) return { kind: 'retry', afterSeconds: 0, error };
        continue;
      }
      return verdict === 'done' ? { kind: 'delete' } : retry(error);
    }
  }
}

/** True once the builder's data folder has room again; false when the builder stops first. */
async function waitForSpace(deps: BuilderDeps, options: BuildMessageOptions): Promise<boolean> {
  for (;;) {
    if (options.running && !options.running()) return false;
    try {
      requireHostSpace(deps.hostSpace);
      return true;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, options.spacePollMs ?? 1000));
    }
  }
}
