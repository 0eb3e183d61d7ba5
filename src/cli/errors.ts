import { InputError } from '#errors';
/** An error the CLI reports as a plain message with a chosen exit code (2 = rejected input, 1 = other). */
export class CliError extends InputError {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
