// In-memory RolloutStore and BakeTimer for unit tests of the rollout core.
import type { BakeTimer, RolloutRecord, RolloutStore, RolloutTimerInput, StreamPin } from '#ports';

export class MemoryRolloutStore implements RolloutStore {
  readonly records = new Map<string, RolloutRecord>();
  readonly pins = new Map<string, StreamPin>();
  async get(releaseId: string): Promise<RolloutRecord | undefined> {
    const found = this.records.get(releaseId);
    return found && structuredClone(found);
  }
  async put(record: RolloutRecord, expectedVersion: number): Promise<boolean> {
    if ((this.records.get(record.releaseId)?.version ?? 0) !== expectedVersion) return false;
    this.records.set(record.releaseId, structuredClone({ ...record, version: expectedVersion + 1 }));
    return true;
  }
  async getPin(stream: string): Promise<StreamPin | undefined> {
    return this.pins.get(stream);
  }
  async setPin(stream: string, pin: StreamPin | undefined): Promise<void> {
    if (pin) this.pins.set(stream, pin);
    else this.pins.delete(stream);
  }
}

export class RecordingTimer implements BakeTimer {
  readonly scheduled: { name: string; at: Date; input: RolloutTimerInput }[] = [];
  async schedule(name: string, at: Date, input: RolloutTimerInput): Promise<void> {
    if (!this.scheduled.some((s) => s.name === name)) this.scheduled.push({ name, at, input });
  }
}
