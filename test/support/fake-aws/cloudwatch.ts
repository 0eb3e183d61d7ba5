// Fake of CloudWatch DescribeAlarms by name: the alarms a test sets, with their state.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';

export class FakeCloudWatch {
  /** Alarm name → state value. */
  readonly alarms = new Map<string, 'OK' | 'ALARM' | 'INSUFFICIENT_DATA'>();

  client(): CloudWatchClient {
    const client = new CloudWatchClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(DescribeAlarmsCommand).callsFake((input) => ({
      MetricAlarms: (input.AlarmNames ?? [])
        .filter((name: string) => this.alarms.has(name))
        .map((name: string) => ({ AlarmName: name, StateValue: this.alarms.get(name) })),
      CompositeAlarms: [],
    }));
    return client;
  }
}
