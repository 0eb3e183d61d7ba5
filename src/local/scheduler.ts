// EventBridge Scheduler, locally: one-time schedules kept as files under <root>/schedules/ (so a `stemcell release`
// command in another process can add one for the running `stemcell dev`), fired on the local clock by poll(),
// which hands each due schedule's input to its target and deletes the schedule once the target succeeded
// (ActionAfterCompletion DELETE). A failing target keeps the schedule and is retried on the next poll.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BakeTimer, Clock, RolloutTimerInput } from '#ports';
import { systemClock } from './clock.ts';
import { readJson, writeJsonAtomic } from './json-state.ts';

interface ScheduleFile {
  name: string;
  at: string;
  input: RolloutTimerInput;
  attempts: number;
}

export class LocalScheduler implements BakeTimer {
  readonly #dir: string;
  readonly #clock: Clock;

  constructor(root: string, options: { clock?: Clock } = {}) {
    this.#dir = join(root, 'schedules');
    this.#clock = options.clock ?? systemClock;
  }

  async schedule(name: string, at: Date, input: RolloutTimerInput): Promise<void> {
    const path = this.#path(name);
    // CreateSchedule with an existing name is a ConflictException: the first schedule stands.
    if (readJson<ScheduleFile | undefined>(path, undefined)) return;
    writeJsonAtomic(path, { name, at: at.toISOString(), input, attempts: 0 } satisfies ScheduleFile);
  }

  /** Schedules not yet fired, soonest first. */
  pending(): ScheduleFile[] {
    let names: string[];
    try {
      names = readdirSync(this.#dir).filter((n) => n.endsWith('.json'));
    } catch {
      return [];
    }
    return names
      .map((n) => readJson<ScheduleFile | undefined>(join(this.#dir, n), undefined))
      .filter((s): s is ScheduleFile => s !== undefined)
      .sort((a, b) => a.at.localeCompare(b.at));
  }

  /** Fires every due schedule at `target`; returns how many fired successfully. */
  async poll(target: (input: RolloutTimerInput) => Promise<void>): Promise<number> {
    const now = this.#clock.now().toISOString();
    let fired = 0;
    for (const schedule of this.pending()) {
      if (schedule.at > now) break;
      try {
        await target(schedule.input);
        rmSync(this.#path(schedule.name), { force: true });
        fired++;
      } catch (err) {
        writeJsonAtomic(this.#path(schedule.name), { ...schedule, attempts: schedule.attempts + 1 });
        if (schedule.attempts + 1 >= 185) rmSync(this.#path(schedule.name), { force: true });
        throw err;
      }
    }
    return fired;
  }

  #path(name: string): string {
    return join(this.#dir, `${name}.json`);
  }
}

/** CloudWatch alarm states, locally: a JSON map alarm ARN → state that a test or the operator sets. */
export class LocalAlarms {
  readonly #path: string;
  constructor(root: string) {
    this.#path = join(root, 'alarms.json');
  }
  async state(alarmArn: string): Promise<'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined> {
    return readJson<Record<string, 'OK' | 'ALARM' | 'INSUFFICIENT_DATA'>>(this.#path, {})[alarmArn];
  }
  set(alarmArn: string, state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA'): void {
    const all = readJson<Record<string, string>>(this.#path, {});
    all[alarmArn] = state;
    writeJsonAtomic(this.#path, all);
  }
}
