// Sample events as AWS delivers them (and as stemcell emits them), for tests and for local invocations.
import { readFileSync } from 'node:fs';

export const SAMPLE_NAMES = [
  's3-object-created',
  'ebs-snapshot-notification',
  'ebs-snapshot-notification-failed',
  // The older documented createSnapshot sample: StartTime/EndTime capitalised.
  'ebs-snapshot-notification-legacy',
  'ec2-ami-state-change',
  // Auto Scaling's documented instance-refresh end events (the user guide's samples, placeholders filled in).
  'autoscaling-instance-refresh-succeeded',
  'autoscaling-instance-refresh-failed',
  'autoscaling-instance-refresh-cancelled',
  'autoscaling-instance-refresh-rollback-succeeded',
  'autoscaling-instance-refresh-rollback-failed',
  'sqs-build-job',
  'sqs-ebs-snapshot-notification',
  'stemcell-release-started',
  'stemcell-image-ready',
  'stemcell-release-complete',
  'stemcell-build-failed',
  // What a builder sends register after a direct-API snapshot (EBS sends nothing for those).
  'stemcell-snapshot-completed',
  'stemcell-release-rejected',
  'stemcell-launch-template-updated',
  // The subscriber's second report for one template: how the instance refresh it started ended.
  'stemcell-launch-template-updated-refresh',
  // The subscriber's report for a template it did not move: the member could not launch the image.
  'stemcell-launch-template-updated-refused',
  'stemcell-release-halted',
] as const;
export type SampleName = (typeof SAMPLE_NAMES)[number];

/** A fresh, mutable copy of a sample event. */
export function sample<T = Record<string, unknown>>(name: SampleName): T {
  return JSON.parse(readFileSync(new URL(`./${name}.json`, import.meta.url), 'utf8')) as T;
}
