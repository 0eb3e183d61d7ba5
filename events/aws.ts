// The AWS events stemcell consumes, as AWS delivers them, and the build job carried by SQS.
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import { S3EventNotificationEventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/s3';
import { SqsRecordSchema, SqsSchema } from '@aws-lambda-powertools/parser/schemas/sqs';
import { z } from 'zod';
import {
  Architecture,
  BootMode,
  Region,
  Revision,
  SnapshotMethod,
  SourceObject,
  StreamName,
} from './stemcell.ts';

/** S3 "Object Created" delivered through EventBridge (bucket with EventBridge notifications on). */
export const ObjectCreatedEvent = S3EventNotificationEventBridgeSchema;
export type ObjectCreatedEnvelope = z.infer<typeof ObjectCreatedEvent>;

/**
 * EBS "EBS Snapshot Notification" for createSnapshot (the rule's pattern selects event = createSnapshot).
 * Only what register reads is parsed: which snapshot (snapshot_id, an ARN), the result and its cause. The
 * rest (source volume, request-id, start and end times) is not: AWS's documented samples spell it
 * differently (startTime/endTime, or StartTime/EndTime in an older one) and nothing here needs it.
 */
export const SnapshotNotificationEvent = EventBridgeSchema.extend({
  source: z.literal('aws.ec2'),
  'detail-type': z.literal('EBS Snapshot Notification'),
  detail: z.object({
    result: z.enum(['succeeded', 'failed']),
    cause: z.string().optional().default(''),
    snapshot_id: z.string().min(1),
  }),
});
export type SnapshotNotificationEnvelope = z.infer<typeof SnapshotNotificationEvent>;

/** EC2 "EC2 AMI State Change". */
export const AmiStateChangeEvent = EventBridgeSchema.extend({
  source: z.literal('aws.ec2'),
  'detail-type': z.literal('EC2 AMI State Change'),
  detail: z.object({
    RequestId: z.string().optional(),
    ImageId: z.string().min(1),
    State: z.enum(['pending', 'available', 'failed', 'deregistered', 'disabled']),
    ErrorMessage: z.string().optional().default(''),
  }),
});
export type AmiStateChangeEnvelope = z.infer<typeof AmiStateChangeEvent>;

/**
 * Auto Scaling's instance-refresh end events, as the EC2 Auto Scaling user guide documents them: the detail
 * names the group and the refresh, nothing else (no status, no launch template). The detail-type says how it
 * ended; INSTANCE_REFRESH_END maps it to the refresh outcome "Launch Template Updated" reports.
 */
export const INSTANCE_REFRESH_END = {
  'EC2 Auto Scaling Instance Refresh Succeeded': 'succeeded',
  'EC2 Auto Scaling Instance Refresh Failed': 'failed',
  'EC2 Auto Scaling Instance Refresh Cancelled': 'cancelled',
  'EC2 Auto Scaling Instance Refresh Rollback Succeeded': 'rolled-back',
  'EC2 Auto Scaling Instance Refresh Rollback Failed': 'failed',
} as const;
export type InstanceRefreshEndType = keyof typeof INSTANCE_REFRESH_END;
export const INSTANCE_REFRESH_END_TYPES = Object.keys(INSTANCE_REFRESH_END) as InstanceRefreshEndType[];

export const InstanceRefreshEndedEvent = EventBridgeSchema.extend({
  source: z.literal('aws.autoscaling'),
  'detail-type': z.enum(INSTANCE_REFRESH_END_TYPES),
  detail: z.object({
    InstanceRefreshId: z.string().min(1),
    AutoScalingGroupName: z.string().min(1),
  }),
});
export type InstanceRefreshEndedEnvelope = z.infer<typeof InstanceRefreshEndedEvent>;

/** The member rules' pattern for those events (infra/member.yml deploys it; the local stack uses it as is). */
export const INSTANCE_REFRESH_END_PATTERN = {
  source: ['aws.autoscaling'],
  'detail-type': INSTANCE_REFRESH_END_TYPES,
};
/** Their FIFO message group on the subscriber's queue (EventBridge sets one static group per target). */
export const INSTANCE_REFRESH_MESSAGE_GROUP = 'instance-refresh';

/** One build of one release in one region; the body of a message on build-<region>.fifo. */
export const BuildJob = z.object({
  version: z.literal(1),
  releaseId: z.string().min(1),
  stream: StreamName,
  revision: Revision,
  sequence: z.number().int().positive(),
  region: Region,
  architecture: Architecture,
  bootMode: BootMode,
  volumeSizeGiB: z.number().int().positive(),
  /**
   * How the builder takes the snapshot: `direct` (EBS direct APIs, only the changed blocks, on the stream's
   * previous snapshot) or `create-snapshot` (CreateSnapshot of the stream's EBS volume). Jobs queued before the
   * field existed are `direct`, the default.
   */
  snapshots: SnapshotMethod.default('direct'),
  source: SourceObject,
});
export type BuildJob = z.infer<typeof BuildJob>;

/** One region's image to boot before it may be announced (boot-checks.fifo, MessageGroupId = release/region). */
export const BootCheckJob = z.object({
  version: z.literal(1),
  releaseId: z.string().min(1),
  region: Region,
  imageId: z.string().regex(/^ami-[0-9a-f]{8,17}$/),
});
export type BootCheckJob = z.infer<typeof BootCheckJob>;

export { SqsRecordSchema, SqsSchema };
export type SqsRecord = z.infer<typeof SqsRecordSchema>;

/** Snapshot-id from the ARN EBS puts in snapshot_id ("arn:aws:ec2::<region>:snapshot/snap-…"). */
export function snapshotIdFromArn(arnOrId: string): string {
  const slash = arnOrId.lastIndexOf('/');
  return slash === -1 ? arnOrId : arnOrId.slice(slash + 1);
}
