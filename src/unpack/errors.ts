import { InputError } from '#errors';
/**
 * The archive (or one of its entries) is refused. The whole apply stops: an entry is never skipped
 * silently. The CLI maps this error to exit code 2.
 */
export class RejectedArchiveError extends InputError {
  readonly entryPath: string;
  readonly reason: string;
  constructor(entryPath: string, reason: string, options?: { cause?: unknown }) {
    super(`rejected: ${entryPath}: ${reason}`, options);
    this.name = 'RejectedArchiveError';
    this.entryPath = entryPath;
    this.reason = reason;
  }
}

/** Stands for the archive as a whole where no entry is at fault (compression, end-of-archive). */
export const ARCHIVE = '<archive>';
