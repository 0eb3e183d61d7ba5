// Stateful fake of EventBridge Scheduler one-time schedules: CreateSchedule keeps the schedule (a name taken in
// its group is a ConflictException, as AWS answers), so a test can fire what is due as Scheduler would.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import { CreateScheduleCommand, SchedulerClient } from '@aws-sdk/client-scheduler';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError } from './common.ts';

export interface FakeSchedule {
  name: string;
  group: string;
  expression: string;
  target: { Arn: string; RoleArn: string; Input?: string; DeadLetterConfig?: { Arn?: string } };
}

export class FakeScheduler {
  readonly schedules = new Map<string, FakeSchedule>();

  client(): SchedulerClient {
    const client = new SchedulerClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(CreateScheduleCommand).callsFake((input) => {
      const group = input.GroupName ?? 'default';
      const key = `${group}/${input.Name}`;
      if (this.schedules.has(key)) throw awsError('ConflictException', `schedule ${key} exists`);
      if (!/^at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\)$/.test(input.ScheduleExpression ?? ''))
        throw awsError('ValidationException', `not a one-time expression: ${input.ScheduleExpression}`);
      this.schedules.set(key, {
        name: input.Name,
        group,
        expression: input.ScheduleExpression,
        target: input.Target,
      });
      return { ScheduleArn: `arn:aws:scheduler:eu-west-1:111111111111:schedule/${key}` };
    });
    return client;
  }

  /** Takes the schedules out (ActionAfterCompletion DELETE): Scheduler fires each once. */
  take(): FakeSchedule[] {
    const all = [...this.schedules.values()];
    this.schedules.clear();
    return all;
  }
}
