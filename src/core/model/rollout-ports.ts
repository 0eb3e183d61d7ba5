// The rollout-state ports (the rollout record in the release table, the bake timer, wave alarms), beside the
// core's plain types so src/ports.ts stays within its size; src/ports.ts re-exports them.
import type { ImageReady } from '#events/stemcell.ts';

export type WaveState = 'pending' | 'announcing' | 'baking' | 'healthy' | 'halted' | 'aborted';
export interface WaveRecord {
  name: string;
  /** Accounts of the wave, resolved from OUs and account ids when the release first announced. */
  accounts: string[];
  bakeMinutes: number;
  alarmArn?: string;
  state: WaveState;
  /** Per region: when this wave was sent that region's "Image Ready". */
  announcedAt: Record<string, string>;
  /** When the bake timer fires (set once the wave has every region). */
  bakeUntil?: string;
  finishedAt?: string;
  /** Set when an operator resumed the release past this (halted) wave. */
  resumedAt?: string;
}
export interface HaltRecord {
  wave: string;
  reason: string;
  accounts: { accountId: string; region: string }[];
  at: string;
}
export interface RolloutRecord {
  releaseId: string;
  stream: string;
  state: 'rolling' | 'halted' | 'aborted' | 'complete';
  waves: WaveRecord[];
  halted?: HaltRecord;
  /** Halts an operator resumed past, oldest first. */
  resumed?: HaltRecord[];
  /** Set on a rollback release: the earlier revision whose images it points at (it has no waves). */
  rollbackOf?: string;
  /** Each region's "Image Ready" detail (without audience) as first announced: later waves get the same. */
  images: Record<string, ImageReady>;
  /** Bumped by every write; put() succeeds only against the version that was read. */
  version: number;
}
export interface StreamPin {
  stream: string;
  revision: string;
  pinnedAt: string;
}
export interface RolloutStore {
  get(releaseId: string): Promise<RolloutRecord | undefined>;
  /** Writes `record` (with version expectedVersion + 1) if the stored one has expectedVersion (0: none). */
  put(record: RolloutRecord, expectedVersion: number): Promise<boolean>;
  getPin(stream: string): Promise<StreamPin | undefined>;
  /** Pins the stream, or unpins it with undefined. */
  setPin(stream: string, pin: StreamPin | undefined): Promise<void>;
}

/** What a bake timer delivers to announce when it fires (EventBridge Scheduler's target input). */
export interface RolloutTimerInput {
  kind: 'stemcell-rollout-timer';
  releaseId: string;
  /** Index of the wave whose bake time is over. */
  wave: number;
  /** Set on a re-check of a wave whose instance refreshes were still running: how many waits so far. */
  wait?: number;
}
/** One-time timers: EventBridge Scheduler `at()` schedules on AWS, the local clock locally. */
export interface BakeTimer {
  /** Idempotent by name: scheduling the same name again keeps the first. */
  schedule(name: string, at: Date, input: RolloutTimerInput): Promise<void>;
}

/** CloudWatch alarm states, for a wave's optional alarm. */
export interface Alarms {
  state(alarmArn: string): Promise<'OK' | 'ALARM' | 'INSUFFICIENT_DATA' | undefined>;
}
