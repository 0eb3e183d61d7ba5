// Errors the core raises for inputs it cannot act on. Each names the input at fault.

import type { StemcellConfig, StreamConfig } from '#config/schema.ts';
import { InputError } from '#errors';

export class UnknownStreamError extends InputError {
  readonly stream: string;
  constructor(stream: string, context: string) {
    super(
      `unknown stream ${JSON.stringify(stream)} (${context}): add it under streams: in stemcell.config.yml`,
    );
    this.name = 'UnknownStreamError';
    this.stream = stream;
  }
}

export class ReleaseNotFoundError extends InputError {
  readonly releaseId: string;
  constructor(releaseId: string, context: string) {
    super(`release ${JSON.stringify(releaseId)} not found in the release store (${context})`);
    this.name = 'ReleaseNotFoundError';
    this.releaseId = releaseId;
  }
}

/** A revision is immutable: the same stream/revision published again from a different object is refused. */
export class RevisionConflictError extends InputError {
  constructor(stream: string, revision: string, existingEtag: string, key: string, etag: string) {
    super(
      `revision ${revision} of stream ${stream} was already published from an object with etag ${existingEtag}; ` +
        `${key} (etag ${etag}) differs: publish it as a new revision`,
    );
    this.name = 'RevisionConflictError';
  }
}

export function streamConfig(config: StemcellConfig, stream: string, context: string): StreamConfig {
  const found = config.streams[stream];
  if (!found) throw new UnknownStreamError(stream, context);
  return found;
}
