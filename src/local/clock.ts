// Clocks and sleeps the local adapters take, so tests drive time instead of waiting for it.
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from '#ports';

// One wall clock for the whole project: the core's.
export { systemClock } from '#core/deps.ts';

/** Resolves after `ms`, or early (without error) when `signal` aborts. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = async (ms, signal) => {
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (err) {
    if ((err as Error).name !== 'AbortError') throw err;
  }
};

/** A clock that only moves when told to. */
export class ManualClock implements Clock {
  #current: number;
  constructor(start: Date | string = '2026-01-01T00:00:00.000Z') {
    this.#current = new Date(start).getTime();
  }
  now(): Date {
    return new Date(this.#current);
  }
  advance(ms: number): void {
    this.#current += ms;
  }
  set(at: Date | string): void {
    this.#current = new Date(at).getTime();
  }
}

/** A sleep for tests: moves `clock` forward by the requested time and returns at once. */
export function advancingSleep(clock: ManualClock): Sleep {
  return async (ms) => {
    clock.advance(ms);
  };
}

/** EventBridge/S3 style timestamp: ISO-8601 UTC without milliseconds. */
export function awsTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
