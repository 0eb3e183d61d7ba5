// One base for stemcell's own errors, which says whose fault an error is, as the AWS SDK's `$fault` does: the
// input (a bad tarball, an unknown stream, a command in the wrong state; retrying will not help, the caller must
// change something) or a dependency (a tool, a service, the host's disk; a retry may succeed). Callers classify
// with `fault` or `instanceof`, never by comparing names, and every wrap keeps its `cause`.

export type Fault = 'input' | 'dependency';

export abstract class StemcellError extends Error {
  abstract readonly fault: Fault;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The input is wrong: the message names it and what to change. */
export class InputError extends StemcellError {
  readonly fault = 'input';
}

/** Something stemcell depends on failed: a tool, a service, the host. */
export class DependencyError extends StemcellError {
  readonly fault = 'dependency';
}

/** True for an error whose fault is the input (a stemcell error that says so). */
export function isInputError(err: unknown): err is InputError {
  return err instanceof StemcellError && err.fault === 'input';
}
