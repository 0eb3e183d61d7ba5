// The local fan-out buses (FanoutBuses): buses of the home account named <prefix><n>, each a LocalEventBus on
// disk, found again by their folders after a restart, and holding at most the Region's rules-per-bus quota as
// EventBridge does (the planner, not this adapter, keeps under it; LocalEventBus has no rule count limit).
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { rulesPerBus } from '#core/members/quotas.ts';
import type { BusRules, FanoutBuses } from '#ports';
import type { LocalEventBus } from './event-bus.ts';

export class LocalFanoutBuses implements FanoutBuses {
  readonly maxRulesPerBus: number;
  readonly #dir: string;
  readonly #prefix: string;
  readonly #open: (name: string) => LocalEventBus;
  readonly #buses = new Map<string, LocalEventBus>();

  /**
   * dir: the folder that holds one folder per bus of the account and Region; open: makes (and registers) the
   * LocalEventBus of a name, as the stack makes every bus.
   */
  constructor(options: {
    dir: string;
    namePrefix: string;
    region: string;
    open: (name: string) => LocalEventBus;
    maxRulesPerBus?: number;
  }) {
    this.#dir = options.dir;
    this.#prefix = options.namePrefix;
    this.#open = options.open;
    this.maxRulesPerBus = options.maxRulesPerBus ?? rulesPerBus(options.region);
  }

  nameOf(n: number): string {
    return `${this.#prefix}${n}`;
  }

  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = readdirSync(this.#dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const order = (name: string) => Number(name.slice(this.#prefix.length));
    const ours = names
      .filter((name) => name.startsWith(this.#prefix) && Number.isInteger(order(name)) && order(name) > 0)
      .sort((a, b) => order(a) - order(b));
    for (const name of ours) this.bus(name);
    return ours;
  }

  async create(name: string): Promise<void> {
    mkdirSync(join(this.#dir, name), { recursive: true });
    this.bus(name);
  }

  rules(busName: string): BusRules {
    return this.bus(busName);
  }

  /** The bus itself (local only: the bench and tests look at its rules and deliveries). */
  bus(name: string): LocalEventBus {
    let bus = this.#buses.get(name);
    if (!bus) {
      bus = this.#open(name);
      this.#buses.set(name, bus);
    }
    return bus;
  }
}
