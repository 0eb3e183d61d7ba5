// Names, keys and tags: the one place that knows how stemcell spells things on AWS.
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
} as const;

const KEY_PATTERN = /^streams\/([^/]+)\/([^/]+?)\.tar(\.gz|\.zst|\.xz)?$/;

export class InvalidObjectKeyError extends Error {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(`invalid object key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidObjectKeyError';
    this.key = key;
  }
}

/** Parses `streams/<stream>/<revision>.tar[.gz|.zst|.xz]`. */
export function parseObjectKey(key: string): { stream: string; revision: string } {
  const match = KEY_PATTERN.exec(key);
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
