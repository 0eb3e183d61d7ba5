// Bounded retries for the errors AWS asks us to wait out, and the error-name test every adapter shares.

/** The error code an SDK v3 exception carries (name), or the code of a plain object thrown by a fake. */
export function errorName(err: unknown): string | undefined {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; Code?: unknown; code?: unknown };
    for (const v of [e.name, e.Code, e.code]) if (typeof v === 'string' && v !== 'Error') return v;
  }
  return undefined;
}

export function isError(err: unknown, ...names: string[]): boolean {
  const name = errorName(err);
  return name !== undefined && names.includes(name);
}

export type Sleep = (ms: number) => Promise<void>;
export const realSleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryOptions {
  /** Error names that mean "try again later". */
  on: string[];
  /** Total attempts, the first included. */
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  sleep?: Sleep;
}

/** Throttling codes EC2 uses; the SDK's adaptive mode retries them too, but only a few times. */
export const THROTTLING = ['RequestLimitExceeded', 'ThrottlingException', 'Throttling'];

/** Runs fn, retrying the named errors with full-jitter exponential backoff; rethrows the last error. */
export async function retrying<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const attempts = opts.attempts ?? 6;
  const base = opts.baseDelayMs ?? 500;
  const max = opts.maxDelayMs ?? 20_000;
  const sleep = opts.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= attempts || !isError(err, ...opts.on)) throw err;
      await sleep(Math.random() * Math.min(max, base * 2 ** (attempt - 1)));
    }
  }
}
