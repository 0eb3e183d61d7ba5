// Alarms on CloudWatch: a wave's alarm (by ARN) must be OK for the wave to count as healthy.
import { type CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import type { Alarms } from '#ports';

export class CloudWatchAlarms implements Alarms {
  readonly #client: (region: string) => CloudWatchClient;

  /** `client(region)`: alarms live in the region their ARN names. */
  constructor(options: { client: (region: string) => CloudWatchClient }) {
    this.#client = options.client;
  }

  async state(alarmArn: string): Promise<'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined> {
    const [, , , region, , , ...name] = alarmArn.split(':');
    if (!region || name.length === 0) throw new Error(`not a CloudWatch alarm ARN: ${alarmArn}`);
    const out = await this.#client(region).send(
      new DescribeAlarmsCommand({
        AlarmNames: [name.join(':')],
        AlarmTypes: ['MetricAlarm', 'CompositeAlarm'],
      }),
    );
    const alarm = out.MetricAlarms?.[0] ?? out.CompositeAlarms?.[0];
    return alarm?.StateValue as 'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined;
  }
}
