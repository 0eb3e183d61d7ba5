// Errors of the local stand-ins carry the AWS error code as `name`, like AWS SDK v3 exceptions do, so core code
// can branch on `err.name` the same way against either adapter.

import { DependencyError } from '#errors';
export class LocalServiceError extends DependencyError {
  /** The service's HTTP-ish status, to mirror `$metadata.httpStatusCode` where callers care. */
  readonly statusCode: number;
  constructor(code: string, message: string, statusCode = 400, options?: { cause?: unknown }) {
    super(message, options);
    this.name = code;
    this.statusCode = statusCode;
  }
}

export function isServiceError(err: unknown, code: string): boolean {
  return err instanceof Error && err.name === code;
}
