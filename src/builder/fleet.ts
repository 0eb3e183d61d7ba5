// The builder as a member of an Auto Scaling group that follows its queue (infra/region.yml):
// - it publishes the backlog per builder (visible messages ÷ builders in service), the metric the group's
//   target-tracking policy follows;
// - it protects itself from scale-in while it holds a job (a stream's volume, a snapshot being written), and
//   lifts the protection after;
// - told it is being terminated (the group's termination lifecycle hook: Spot interruption, rebalancing, a
//   scale-in of an unprotected builder), it takes no new job and either finishes the job in hand or hands it
//   back at the next step boundary: before the snapshot starts the message goes back to the queue at once for
//   another builder; once the snapshot has started it is finished, so no snapshot is ever left half-written.
//   Then it completes the lifecycle action.
import type { BuildJob } from '#events/aws.ts';
import type { BuilderDeps, BuildStep } from './worker.ts';

/** What the builder asks of Auto Scaling, CloudWatch and SQS for its own instance (src/aws adapters on EC2). */
export interface FleetControl {
  /** SetInstanceProtection (ProtectedFromScaleIn) on this instance. */
  protect(on: boolean): Promise<void>;
  /** RecordLifecycleActionHeartbeat: the hook waits longer while a job is finished. */
  heartbeat(): Promise<void>;
  /** CompleteLifecycleAction CONTINUE: the instance may go. */
  complete(): Promise<void>;
  /** ChangeMessageVisibility 0: the job is visible again at once, for another builder. */
  handBack(receiptHandle: string): Promise<void>;
  /** ApproximateNumberOfMessagesVisible of the build queue, and the group's InService builders. */
  backlog(): Promise<{ visible: number; inService: number }>;
  /** PutMetricData stemcell/Builders BacklogPerBuilder. */
  publishBacklogPerBuilder(value: number): Promise<void>;
}

/** Thrown at a step boundary when the builder is draining and the job has not reached its snapshot. */
export class HandedBackError extends Error {
  constructor(job: Pick<BuildJob, 'stream' | 'revision'>, step: BuildStep) {
    super(`handed back ${job.stream} ${job.revision} before ${step}: this builder is terminating`);
    this.name = 'HandedBackError';
  }
}

/** Visible messages per builder in service; with none in service, the whole backlog (scale out from zero). */
export function backlogPerBuilder(visible: number, inService: number): number {
  return inService > 0 ? visible / inService : visible;
}

export class BuilderLifecycle {
  readonly #control: FleetControl;
  readonly #log: (line: string) => void;
  #draining = false;
  #job: { job: BuildJob; step?: BuildStep; receiptHandle: string } | undefined;
  #done: Promise<void> | undefined;
  #jobEnded: (() => void) | undefined;
  #completed = false;
  #handedBack = false;

  constructor(control: FleetControl, log: (line: string) => void) {
    this.#control = control;
    this.#log = log;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The worker's step hook: hands the job back at a boundary before the snapshot while draining. */
  onStep(job: BuildJob, step: BuildStep): void {
    if (!this.#job || this.#job.job.releaseId !== job.releaseId) return;
    this.#job.step = step;
    if (this.#draining && step !== 'snapshot') {
      this.#handedBack = true;
      throw new HandedBackError(job, step);
    }
  }

  /** Wraps the message handler: protection around each job, the hand-back when draining. */
  wrap<M extends { receiptHandle: string; body: string }>(
    handle: (message: M) => Promise<void>,
  ): (message: M) => Promise<void> {
    return async (message) => {
      if (this.#draining) {
        // Received while the consumer stopped: not ours to start.
        await this.#control.handBack(message.receiptHandle);
        throw new Error('builder is terminating: job handed back unstarted');
      }
      const job = JSON.parse(message.body) as BuildJob;
      await this.#control.protect(true);
      this.#job = { job, receiptHandle: message.receiptHandle };
      this.#handedBack = false;
      try {
        await handle(message);
      } catch (err) {
        // The worker may wrap it (the agent's RetryLater): the step hook says whether it was a hand-back.
        if (this.#handedBack) {
          await this.#control.handBack(message.receiptHandle);
          this.#log(`builder: handed back ${job.stream} ${job.revision}: this builder is terminating`);
        }
        throw err;
      } finally {
        this.#job = undefined;
        await this.#control.protect(false).catch((e: Error) => this.#log(`builder: unprotect: ${e.message}`));
        this.#jobEnded?.();
      }
    };
  }

  /**
   * The instance is terminating: take no new job, let the job in hand finish or hand itself back, beat the
   * hook's heartbeat meanwhile, then complete the lifecycle action. Idempotent.
   */
  terminating(heartbeatMs = 60_000): Promise<void> {
    this.#done ??= (async () => {
      this.#draining = true;
      if (this.#job) {
        this.#log(
          `builder: terminating with ${this.#job.job.stream} ${this.#job.job.revision} at ${this.#job.step ?? 'start'}: ` +
            (this.#job.step === 'snapshot' ? 'finishing its snapshot' : 'handing it back at the next step'),
        );
        const ended = new Promise<void>((resolve) => {
          this.#jobEnded = resolve;
        });
        const beat = setInterval(() => {
          this.#control.heartbeat().catch((e: Error) => this.#log(`builder: heartbeat: ${e.message}`));
        }, heartbeatMs);
        try {
          await ended;
        } finally {
          clearInterval(beat);
        }
      }
      if (!this.#completed) {
        this.#completed = true;
        await this.#control.complete();
        this.#log('builder: lifecycle action completed; the instance may go');
      }
    })();
    return this.#done;
  }

  /** One beat of the backlog metric (every minute on each builder; the policy averages them). */
  async publishBacklog(): Promise<number> {
    const { visible, inService } = await this.#control.backlog();
    const value = backlogPerBuilder(visible, inService);
    await this.#control.publishBacklogPerBuilder(value);
    return value;
  }
}

/** BuilderDeps whose step hook also reports to the lifecycle (the worker's own hook still runs first). */
export function withLifecycle(deps: BuilderDeps, lifecycle: BuilderLifecycle): BuilderDeps {
  return {
    ...deps,
    onStep: (job, step, detail) => {
      deps.onStep?.(job, step, detail);
      lifecycle.onStep(job, step);
    },
  };
}
