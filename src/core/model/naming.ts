// Names, keys and tags: the one place that knows how stemcell spells things on AWS.

import { createHash } from 'node:crypto';
import { InputError } from '#errors';
import { Revision, StreamName } from '#events/stemcell.ts';
import type { Tags } from '#ports';

export const TAG = {
  stream: 'stemcell:stream',
  revision: 'stemcell:revision',
  sequence: 'stemcell:sequence',
  release: 'stemcell:release',
  region: 'stemcell:region',
  /** On an Auto Scaling group: start an instance refresh when its launch template moves. */
  refresh: 'stemcell:refresh',
  /**
   * On an Auto Scaling group: the instance refresh the subscriber started last, and for which launch template
   * version and revision (instanceRefreshTag). Auto Scaling's end event names only the group and the refresh;
   * this tag ties it to a release.
   */
  instanceRefresh: 'stemcell:instance-refresh',
  /**
   * SHA-256 of the source tarball, set by the builder on the snapshot (it hashes while it streams);
   * register copies it to the image, announce puts it in "Image Ready".
   */
  sha256: 'stemcell:sha256',
} as const;

/** S3 object metadata key (x-amz-meta-sha256) where `stemcell publish` records the tarball's SHA-256. */
export const SHA256_METADATA_KEY = 'sha256';

const KEY_PATTERN = /^streams\/([^/]+)\/([^/]+?)\.tar(\.gz|\.zst|\.xz)?$/;

export class InvalidObjectKeyError extends InputError {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidObjectKeyError';
    this.key = key;
  }
}

/** Parses `streams/<stream>/<revision>.tar[.gz|.zst|.xz]`. */
export function parseObjectKey(key: string): { stream: string; revision: string } {
  const match = KEY_PATTERN.exec(decodeEventKey(key));
  if (!match) {
    throw new InvalidObjectKeyError(key, 'expected streams/<stream>/<revision>.tar[.gz|.zst|.xz]');
  }
  const stream = StreamName.safeParse(match[1]);
  if (!stream.success) throw new InvalidObjectKeyError(key, `stream: ${stream.error.issues[0]?.message}`);
  const revision = Revision.safeParse(match[2]);
  if (!revision.success)
    throw new InvalidObjectKeyError(key, `revision: ${revision.error.issues[0]?.message}`);
  return { stream: stream.data, revision: revision.data };
}

/**
 * S3 event notifications percent-encode object keys ("a:b" arrives as "a%3Ab"). Valid stemcell keys never
 * contain '%' or spaces, so decoding percent escapes (and leaving '+' alone, which revisions may contain)
 * is right whether or not the delivery path encoded the key.
 */
export function decodeEventKey(key: string): string {
  if (!key.includes('%')) return key;
  try {
    return decodeURIComponent(key);
  } catch {
    return key;
  }
}

export function objectKey(stream: string, revision: string, extension = '.tar.zst'): string {
  return `streams/${stream}/${revision}${extension}`;
}

export function imageName(stream: string, revision: string): string {
  return `stemcell/${stream}/${revision}`;
}

export function releaseId(stream: string, sequence: number): string {
  return `${stream}#${String(sequence).padStart(8, '0')}`;
}

export function releaseTags(r: {
  stream: string;
  revision: string;
  sequence: number;
  releaseId: string;
}): Tags {
  return {
    [TAG.stream]: r.stream,
    [TAG.revision]: r.revision,
    [TAG.sequence]: String(r.sequence),
    [TAG.release]: r.releaseId,
  };
}

/** Reads release identity back from tags written by releaseTags; undefined if any is missing. */
export function releaseFromTags(
  tags: Tags,
): { stream: string; revision: string; sequence: number; releaseId: string } | undefined {
  const stream = tags[TAG.stream];
  const revision = tags[TAG.revision];
  const sequence = Number(tags[TAG.sequence]);
  const id = tags[TAG.release];
  if (!stream || !revision || !id || !Number.isInteger(sequence) || sequence < 1) return undefined;
  return { stream, revision, sequence, releaseId: id };
}

/**
 * Launch-template versions carry no tags, so the version description records which release it holds;
 * the subscriber reads it back to refuse moving to a lower sequence.
 */
export function launchTemplateVersionDescription(r: {
  stream: string;
  sequence: number;
  releaseId: string;
}): string {
  return `stemcell stream=${r.stream} sequence=${r.sequence} release=${r.releaseId}`;
}

export function sequenceFromVersionDescription(
  description: string | undefined,
  stream: string,
): number | undefined {
  if (!description) return undefined;
  const match = /^stemcell stream=(\S+) sequence=(\d+) /.exec(description);
  if (!match || match[1] !== stream) return undefined;
  return Number(match[2]);
}

/** The release a version description written by launchTemplateVersionDescription names; undefined if none. */
export function releaseFromVersionDescription(
  description: string | undefined,
): { stream: string; sequence: number; releaseId: string } | undefined {
  const match = /^stemcell stream=(\S+) sequence=(\d+) release=(\S+)$/.exec(description ?? '');
  if (!match?.[1] || !match[2] || !match[3]) return undefined;
  return { stream: match[1], sequence: Number(match[2]), releaseId: match[3] };
}

export interface InstanceRefreshTag {
  instanceRefreshId: string;
  launchTemplateId: string;
  versionNumber: number;
  revision: string;
}

/**
 * The value of TAG.instanceRefresh: "<refresh id> <launch template id>:<version> <revision>". Auto Scaling tag
 * values hold 256 characters: 255 for a refresh id would not fit, but Auto Scaling's are UUIDs (36), launch
 * template ids are 20, revisions at most 128.
 */
export function instanceRefreshTag(t: InstanceRefreshTag): string {
  return `${t.instanceRefreshId} ${t.launchTemplateId}:${t.versionNumber} ${t.revision}`;
}

export function parseInstanceRefreshTag(value: string | undefined): InstanceRefreshTag | undefined {
  const match = /^(\S+) (lt-[^\s:]+):([1-9]\d*) (\S+)$/.exec(value ?? '');
  if (!match?.[1] || !match[2] || !match[3] || !match[4]) return undefined;
  return {
    instanceRefreshId: match[1],
    launchTemplateId: match[2],
    versionNumber: Number(match[3]),
    revision: match[4],
  };
}

/** The FIFO build queue of one region. */
export function buildQueueName(region: string): string {
  return `build-${region}.fifo`;
}

/** SQS FIFO deduplication id of a build job: resending the same release to the same region is a no-op. */
export function buildJobDeduplicationId(id: string, region: string): string {
  return `${id}:${region}`;
}

/**
 * A deterministic idempotency token (EC2 ClientToken: at most 64 ASCII characters) from the parts that
 * identify one operation, so a retried request presents the same token.
 */
export function clientToken(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

/** Rules on the central bus that fan "Image Ready" out to member accounts, numbered from 1. */
export const SUBSCRIBER_RULE_PREFIX = 'stemcell-subscribers-';
export function subscriberRuleName(n: number): string {
  return `${SUBSCRIBER_RULE_PREFIX}${n}`;
}
export function subscriberRuleNumber(name: string): number | undefined {
  if (!name.startsWith(SUBSCRIBER_RULE_PREFIX)) return undefined;
  const n = Number(name.slice(SUBSCRIBER_RULE_PREFIX.length));
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** The event bus of a member account (its default bus unless named), the target of the subscriber rules. */
export function memberBusArn(homeRegion: string, accountId: string, busName = 'default'): string {
  return `arn:aws:events:${homeRegion}:${accountId}:event-bus/${busName}`;
}

/** Expands {stream} and {region} in a configured SSM parameter name. */
export function expandParameterName(template: string, stream: string, region: string): string {
  return template.replaceAll('{stream}', stream).replaceAll('{region}', region);
}
