// RolloutStore over JSON files: <root>/rollouts/<releaseId>.json per release and <root>/rollouts/pins/<stream>.json
// per pinned stream. put() is a version-checked write (the DynamoDB adapter uses a condition expression), done
// synchronously in one tick so writers in this process cannot interleave.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RolloutRecord, RolloutStore, StreamPin } from '#ports';
import { readJson, readJsonDir, writeJsonAtomic } from './json-state.ts';

export class LocalRolloutStore implements RolloutStore {
  readonly #dir: string;

  constructor(root: string) {
    this.#dir = join(root, 'rollouts');
  }

  async get(releaseId: string): Promise<RolloutRecord | undefined> {
    return readJson<RolloutRecord | undefined>(this.#path(releaseId), undefined);
  }

  async put(record: RolloutRecord, expectedVersion: number): Promise<boolean> {
    const path = this.#path(record.releaseId);
    const current = readJson<RolloutRecord | undefined>(path, undefined);
    if ((current?.version ?? 0) !== expectedVersion) return false;
    writeJsonAtomic(path, { ...record, version: expectedVersion + 1 });
    return true;
  }

  async list(): Promise<RolloutRecord[]> {
    return readJsonDir<RolloutRecord>(this.#dir);
  }

  async getPin(stream: string): Promise<StreamPin | undefined> {
    return readJson<StreamPin | undefined>(this.#pinPath(stream), undefined);
  }

  async setPin(stream: string, pin: StreamPin | undefined): Promise<void> {
    if (pin) writeJsonAtomic(this.#pinPath(stream), pin);
    else rmSync(this.#pinPath(stream), { force: true });
  }

  #path(releaseId: string): string {
    return join(this.#dir, `${encodeURIComponent(releaseId)}.json`);
  }

  #pinPath(stream: string): string {
    return join(this.#dir, 'pins', `${stream}.json`);
  }
}
