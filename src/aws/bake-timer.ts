// BakeTimer on EventBridge Scheduler: one one-time schedule (`at(...)`, UTC) per wave, whose target is the announce
// function with the RolloutTimerInput as its input, deleted by Scheduler after it ran (ActionAfterCompletion
// DELETE). No Lambda waits out a bake time. A name that exists already (a retried announce) is left as it is.
import { CreateScheduleCommand, type SchedulerClient } from '@aws-sdk/client-scheduler';
import type { BakeTimer, RolloutTimerInput } from '#ports';
import { isError } from './retry.ts';

/** Scheduler's at() wants yyyy-mm-ddThh:mm:ss; a timer never fires early, so round up to the second. */
export function atExpression(at: Date): string {
  const seconds = new Date(Math.ceil(at.getTime() / 1000) * 1000);
  return `at(${seconds.toISOString().slice(0, 19)})`;
}

export class SchedulerBakeTimer implements BakeTimer {
  readonly #client: SchedulerClient;
  readonly #targetArn: string;
  readonly #roleArn: string;
  readonly #groupName: string | undefined;
  readonly #deadLetterArn: string | undefined;

  constructor(options: {
    client: SchedulerClient;
    /** The announce function's ARN. */
    targetArn: string;
    /** Role Scheduler assumes to invoke it (lambda:InvokeFunction on the target only). */
    roleArn: string;
    groupName?: string;
    deadLetterArn?: string;
  }) {
    this.#client = options.client;
    this.#targetArn = options.targetArn;
    this.#roleArn = options.roleArn;
    this.#groupName = options.groupName;
    this.#deadLetterArn = options.deadLetterArn;
  }

  async schedule(name: string, at: Date, input: RolloutTimerInput): Promise<void> {
    try {
      await this.#client.send(
        new CreateScheduleCommand({
          Name: name,
          ...(this.#groupName ? { GroupName: this.#groupName } : {}),
          ScheduleExpression: atExpression(at),
          ScheduleExpressionTimezone: 'UTC',
          FlexibleTimeWindow: { Mode: 'OFF' },
          ActionAfterCompletion: 'DELETE',
          Description: `stemcell: bake time of wave ${input.wave} of ${input.releaseId} is over`,
          Target: {
            Arn: this.#targetArn,
            RoleArn: this.#roleArn,
            Input: JSON.stringify(input),
            RetryPolicy: { MaximumEventAgeInSeconds: 86_400, MaximumRetryAttempts: 185 },
            ...(this.#deadLetterArn ? { DeadLetterConfig: { Arn: this.#deadLetterArn } } : {}),
          },
        }),
      );
    } catch (err) {
      if (isError(err, 'ConflictException')) return;
      throw err;
    }
  }
}
