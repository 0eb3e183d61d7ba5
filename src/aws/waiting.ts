// SDK waiters with explicit limits. A waiter that times out has not seen a failure: the caller re-checks
// the resource's state once before deciding.

import { DependencyError } from '#errors';
export interface WaitLimits {
  /** Seconds before the waiter gives up and we re-check. */
  maxWaitTime: number;
  minDelay?: number;
  maxDelay?: number;
}

export const DEFAULT_WAIT: WaitLimits = { maxWaitTime: 300, minDelay: 2, maxDelay: 15 };

export class WaitTimeoutError extends DependencyError {
  constructor(what: string, seconds: number, lastState: string | undefined) {
    super(`${what}: still ${lastState ?? 'in an unknown state'} after waiting ${seconds}s`);
    this.name = 'WaitTimeoutError';
  }
}

/**
 * Runs a `waitUntil…` waiter; when it times out (TimeoutError), asks `recheck` once whether the state was
 * reached after all. A waiter failure (the resource reached a terminal bad state) is rethrown as-is.
 */
export async function waitWithRecheck(
  what: string,
  limits: WaitLimits,
  wait: (limits: WaitLimits) => Promise<unknown>,
  recheck: () => Promise<{ reached: boolean; state: string | undefined }>,
): Promise<void> {
  try {
    await wait(limits);
    return;
  } catch (err) {
    if ((err as Error).name !== 'TimeoutError') throw err;
  }
  const again = await recheck();
  if (!again.reached) throw new WaitTimeoutError(what, limits.maxWaitTime, again.state);
}
