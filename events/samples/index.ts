// Sample events as AWS delivers them (and as stemcell emits them), for tests and for local invocations.
import { readFileSync } from 'node:fs';

export const SAMPLE_NAMES = [
  's3-object-created',
  'ebs-snapshot-notification',
  'ebs-snapshot-notification-failed',
  // The older documented createSnapshot sample: StartTime/EndTime capitalised.
  'ebs-snapshot-notification-legacy',
  'ec2-ami-state-change',
  'sqs-build-job',
  'sqs-ebs-snapshot-notification',
  'stemcell-release-started',
  'stemcell-image-ready',
  'stemcell-release-complete',
  'stemcell-build-failed',
  'stemcell-release-rejected',
  'stemcell-launch-template-updated',
  'stemcell-release-halted',
] as const;
export type SampleName = (typeof SAMPLE_NAMES)[number];

/** A fresh, mutable copy of a sample event. */
export function sample<T = Record<string, unknown>>(name: SampleName): T {
  return JSON.parse(readFileSync(new URL(`./${name}.json`, import.meta.url), 'utf8')) as T;
}
