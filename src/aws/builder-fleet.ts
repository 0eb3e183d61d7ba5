// FleetControl on AWS: the builder's own instance in its Auto Scaling group (scale-in protection, the termination
// lifecycle hook), its queue's backlog, and the BacklogPerBuilder metric the group's target tracking follows.
import {
  type AutoScalingClient,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetInstanceProtectionCommand,
} from '@aws-sdk/client-auto-scaling';
import { type CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import {
  ChangeMessageVisibilityCommand,
  GetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { FleetControl } from '#builder/fleet.ts';

/** Namespace and name of the metric (infra/region.yml BuilderScaling follows the same). */
export const BACKLOG_METRIC = { namespace: 'stemcell/Builders', name: 'BacklogPerBuilder' } as const;

export class AwsFleetControl implements FleetControl {
  readonly #asg: AutoScalingClient;
  readonly #cloudwatch: CloudWatchClient;
  readonly #sqs: SQSClient;
  readonly #o: {
    instanceId: string;
    groupName: string;
    hookName: string;
    queueUrl: string;
    queueName: string;
  };

  constructor(options: {
    autoScaling: AutoScalingClient;
    cloudwatch: CloudWatchClient;
    sqs: SQSClient;
    instanceId: string;
    groupName: string;
    hookName: string;
    queueUrl: string;
  }) {
    this.#asg = options.autoScaling;
    this.#cloudwatch = options.cloudwatch;
    this.#sqs = options.sqs;
    this.#o = { ...options, queueName: options.queueUrl.split('/').pop() ?? options.queueUrl };
  }

  async protect(on: boolean): Promise<void> {
    await this.#asg.send(
      new SetInstanceProtectionCommand({
        AutoScalingGroupName: this.#o.groupName,
        InstanceIds: [this.#o.instanceId],
        ProtectedFromScaleIn: on,
      }),
    );
  }

  async heartbeat(): Promise<void> {
    await this.#asg.send(
      new RecordLifecycleActionHeartbeatCommand({
        AutoScalingGroupName: this.#o.groupName,
        LifecycleHookName: this.#o.hookName,
        InstanceId: this.#o.instanceId,
      }),
    );
  }

  async complete(): Promise<void> {
    await this.#asg.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: this.#o.groupName,
        LifecycleHookName: this.#o.hookName,
        InstanceId: this.#o.instanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
  }

  async handBack(receiptHandle: string): Promise<void> {
    await this.#sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: this.#o.queueUrl,
        ReceiptHandle: receiptHandle,
        VisibilityTimeout: 0,
      }),
    );
  }

  async backlog(): Promise<{ visible: number; inService: number }> {
    const [queue, groups] = await Promise.all([
      this.#sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: this.#o.queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      ),
      this.#asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [this.#o.groupName] })),
    ]);
    const visible = Number(queue?.Attributes?.ApproximateNumberOfMessages ?? 0);
    const inService = (groups?.AutoScalingGroups?.[0]?.Instances ?? []).filter(
      (i) => i.LifecycleState === 'InService',
    ).length;
    return { visible, inService };
  }

  async publishBacklogPerBuilder(value: number): Promise<void> {
    await this.#cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: BACKLOG_METRIC.namespace,
        MetricData: [
          {
            MetricName: BACKLOG_METRIC.name,
            Dimensions: [{ Name: 'QueueName', Value: this.#o.queueName }],
            Value: value,
            Unit: 'Count',
          },
        ],
      }),
    );
  }
}
