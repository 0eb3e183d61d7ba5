// The local EventBridge: a bus with rules, real event-pattern matching, at most 5 targets per rule, retries with
// backoff and a dead-letter list. Targets are in-process handlers (a local Lambda) or other buses (the
// cross-account targets of the central bus); buses of other accounts are found through an EventBusRegistry by
// their ARN, as PutTargets names them on AWS.
// Durable like EventBridge once PutEvents succeeds: every delivery an accepted event owes (one per matching
// rule target) is written to the bus's deliveries/ folder before publish() returns, and removed only once the
// target took it or it went to the dead letters. After a crash, resumeDeliveries() (the stack calls it at start,
// once its rules are wired) delivers again what was in flight: at least once, never lost.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BusEvent, BusRule, BusRules, Clock, EventPublisher, RuleTarget } from '#ports';
import { awsTime, realSleep, type Sleep, systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import {
  assertRuleName,
  BUS_ARN,
  type DeadLetter,
  DeliveryTracker,
  eventBusArn,
  MAX_TARGETS_PER_RULE,
  TARGET_ID,
  validateEntry,
} from './event-bus-entries.ts';
import { compileEventPattern, type EventPatternMatcher } from './event-pattern.ts';
import { readJson, writeJsonAtomic } from './json-state.ts';
import type { ServiceEventEnvelope, ServiceEventSink } from './service-events.ts';

export { type DeadLetter, eventBusArn, MAX_TARGETS_PER_RULE } from './event-bus-entries.ts';

export type EventEnvelope = ServiceEventEnvelope;
export type EventHandler = (event: EventEnvelope) => unknown;
/** A local target: a handler, a named handler (its id shows in listRules), or another bus. */
export type LocalTarget = EventHandler | { id: string; handler: EventHandler } | LocalEventBus;

/** The buses of every account this process simulates, by ARN; cross-account rule targets resolve here. */
export class EventBusRegistry {
  readonly #buses = new Map<string, LocalEventBus>();
  readonly deliveries = new DeliveryTracker();

  register(bus: LocalEventBus): void {
    const existing = this.#buses.get(bus.arn);
    if (existing && existing !== bus) throw new Error(`event bus ${bus.arn} is already registered`);
    this.#buses.set(bus.arn, bus);
  }
  unregister(arn: string): void {
    this.#buses.delete(arn);
  }
  resolve(arn: string): LocalEventBus | undefined {
    return this.#buses.get(arn);
  }
  list(): LocalEventBus[] {
    return [...this.#buses.values()];
  }
  /** Resolves when no delivery on any registered bus is in flight. */
  drain(): Promise<void> {
    return this.deliveries.drain();
  }
}

export interface RetryPolicy {
  /** Attempts per target including the first (EventBridge allows up to 185 retries; locally a few suffice). */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface LocalEventBusOptions {
  /** Bus name; `default` when absent. */
  name?: string;
  accountId: string;
  region: string;
  registry?: EventBusRegistry;
  retry?: Partial<RetryPolicy>;
  sleep?: Sleep;
  clock?: Clock;
  /** Called for each delivery that exhausted its retries (besides being recorded). */
  onDeadLetter?: (letter: DeadLetter) => void;
}

interface TargetState {
  id: string;
  arn: string;
  handler?: EventHandler;
  bus?: LocalEventBus;
}
interface RuleState {
  name: string;
  eventPattern: string;
  description: string;
  matcher: EventPatternMatcher;
  /** Rules made through BusRules persist (with their ARN targets); local handler rules live in memory. */
  persisted: boolean;
  targets: TargetState[];
}
/** One delivery an accepted event owes a rule target, as deliveries/<id>.json holds it until it is done. */
interface PendingDelivery {
  id: string;
  ruleName: string;
  targetId: string;
  event: EventEnvelope;
  acceptedAt: string;
}
interface PersistedRules {
  rules: { name: string; eventPattern: string; description: string; targets: RuleTarget[] }[];
}

export class LocalEventBus implements EventPublisher, BusRules, ServiceEventSink {
  readonly name: string;
  readonly accountId: string;
  readonly region: string;
  readonly arn: string;
  readonly maxTargetsPerRule = MAX_TARGETS_PER_RULE;
  readonly #dir: string;
  readonly #rules = new Map<string, RuleState>();
  readonly #registry: EventBusRegistry | undefined;
  readonly #tracker: DeliveryTracker;
  readonly #retry: RetryPolicy;
  readonly #sleep: Sleep;
  readonly #clock: Clock;
  readonly #onDeadLetter: ((letter: DeadLetter) => void) | undefined;
  #localTargetCounter = 0;
  /** Buses this one delivered to, so drain() can wait for what they deliver in turn. */
  readonly #forwardedTo = new Set<LocalEventBus>();
  /** Ids of the pending deliveries this process is working on (resumeDeliveries skips them). */
  readonly #inFlight = new Set<string>();

  constructor(root: string, options: LocalEventBusOptions) {
    this.name = options.name ?? 'default';
    this.accountId = options.accountId;
    this.region = options.region;
    this.arn = eventBusArn(this.region, this.accountId, this.name);
    this.#dir = join(root, 'event-buses', this.accountId, this.region, this.name);
    this.#registry = options.registry;
    this.#tracker = options.registry?.deliveries ?? new DeliveryTracker();
    this.#retry = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 2000, ...options.retry };
    if (this.#retry.maxAttempts < 1) throw new Error('retry.maxAttempts must be at least 1');
    this.#sleep = options.sleep ?? realSleep;
    this.#clock = options.clock ?? systemClock;
    this.#onDeadLetter = options.onDeadLetter;
    for (const rule of readJson<PersistedRules>(this.#rulesPath, { rules: [] }).rules) {
      this.#rules.set(rule.name, {
        name: rule.name,
        eventPattern: rule.eventPattern,
        description: rule.description,
        matcher: compileEventPattern(rule.eventPattern),
        persisted: true,
        targets: rule.targets.map((t) => ({ id: t.id, arn: t.arn })),
      });
    }
    this.#registry?.register(this);
  }

  // ---------------------------------------------------------------- EventPublisher

  /** PutEvents. Entries with source "stemcell" are validated against events/stemcell.ts first; none is put if one fails. */
  async publish(events: BusEvent[]): Promise<void> {
    const accepted = events.map((entry, index) => {
      validateEntry(entry, index);
      const bus = this.#resolveBus(entry.eventBusName, index);
      const envelope: EventEnvelope = {
        version: '0',
        id: crypto.randomUUID(),
        'detail-type': entry.detailType,
        source: entry.source,
        account: this.accountId,
        time: awsTime(this.#clock.now()),
        region: this.region,
        resources: entry.resources ?? [],
        detail: entry.detail as Record<string, unknown>,
      };
      return { bus, envelope };
    });
    for (const { bus, envelope } of accepted) {
      if (bus !== this) this.#forwardedTo.add(bus);
      bus.accept(envelope);
    }
  }

  // ---------------------------------------------------------------- ServiceEventSink

  /**
   * An AWS service (S3, EBS, EC2 stand-ins) puts its event on this bus. The service's own call has already
   * succeeded: when the deliveries cannot be stored (a full data folder) they still run, from memory only, and
   * the reconciler covers a crash meanwhile, as it covers a lost notification on AWS.
   */
  emit(envelope: ServiceEventEnvelope): void {
    try {
      this.accept(envelope);
    } catch {
      this.accept(envelope, { store: false });
    }
  }

  /**
   * Takes an envelope as it is (another bus forwarding, a service emitting), stores the deliveries it owes and
   * schedules them. Throws, with nothing stored, if a delivery cannot be stored (a full disk): not accepted.
   */
  accept(envelope: EventEnvelope, options: { store?: boolean } = {}): void {
    const store = options.store ?? true;
    // Targets receive JSON, as on AWS: a copy per delivery, so no handler sees another's mutations.
    const json = JSON.stringify(envelope);
    const event = JSON.parse(json) as EventEnvelope;
    const owed: { rule: RuleState; target: TargetState; pending: PendingDelivery }[] = [];
    try {
      for (const rule of this.#rules.values()) {
        if (!rule.matcher(event)) continue;
        for (const target of rule.targets) {
          const pending: PendingDelivery = {
            id: crypto.randomUUID(),
            ruleName: rule.name,
            targetId: target.id,
            event: JSON.parse(json) as EventEnvelope,
            acceptedAt: this.#clock.now().toISOString(),
          };
          if (store) writeJsonAtomic(this.#pendingPath(pending.id), pending);
          owed.push({ rule, target, pending });
        }
      }
    } catch (err) {
      for (const { pending } of owed) this.#forget(pending.id);
      throw err;
    }
    for (const { rule, target, pending } of owed) this.#schedule(rule, target, pending);
  }

  /**
   * Delivers again every stored delivery this process is not already working on: what a crashed process had
   * accepted and not finished. Call it once the bus's rules and local targets are wired again. A delivery
   * whose rule or target is gone goes to the dead letters. Returns how many were resumed.
   */
  resumeDeliveries(): number {
    let names: string[];
    try {
      names = readdirSync(this.#deliveriesDir).filter((n) => n.endsWith('.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    let resumed = 0;
    for (const name of names) {
      const pending = readJson<PendingDelivery | undefined>(join(this.#deliveriesDir, name), undefined);
      if (!pending || this.#inFlight.has(pending.id)) continue;
      const rule = this.#rules.get(pending.ruleName);
      const target = rule?.targets.find((t) => t.id === pending.targetId);
      if (!rule || !target) {
        this.#deadLetter(
          { name: pending.ruleName },
          { id: pending.targetId, arn: '' },
          pending.event,
          new LocalServiceError(
            'ResourceNotFoundException',
            `rule ${pending.ruleName} or its target ${pending.targetId} no longer exists on EventBus ${this.name}`,
            404,
          ),
          0,
        );
        this.#forget(pending.id);
        continue;
      }
      this.#schedule(rule, target, pending);
      resumed++;
    }
    return resumed;
  }

  /** Deliveries accepted and not yet finished (stored in deliveries/). */
  pendingDeliveries(): number {
    try {
      return readdirSync(this.#deliveriesDir).filter((n) => n.endsWith('.json')).length;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  /**
   * Resolves when every delivery in flight, including deliveries those deliveries caused, has finished: on this
   * bus, the buses of its registry, and any bus it forwarded to.
   */
  async drain(): Promise<void> {
    for (;;) {
      const trackers = this.#trackers(new Set());
      if ([...trackers].every((t) => t.size === 0)) return;
      await Promise.all([...trackers].map((t) => t.drain()));
    }
  }

  // ---------------------------------------------------------------- BusRules

  async listRules(namePrefix: string): Promise<BusRule[]> {
    return [...this.#rules.values()]
      .filter((r) => r.name.startsWith(namePrefix))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((r) => ({
        name: r.name,
        eventPattern: r.eventPattern,
        targets: r.targets.map((t) => ({ id: t.id, arn: t.arn })),
      }));
  }

  async putRule(name: string, eventPattern: string, description: string): Promise<void> {
    assertRuleName(name);
    const matcher = compileEventPattern(eventPattern);
    const existing = this.#rules.get(name);
    if (existing) {
      existing.eventPattern = eventPattern;
      existing.description = description;
      existing.matcher = matcher;
      existing.persisted = true;
    } else {
      this.#rules.set(name, { name, eventPattern, description, matcher, persisted: true, targets: [] });
    }
    this.#persist();
  }

  /** Adds or updates targets by id; refuses (changing nothing) past 5 targets, like LimitExceededException. */
  async putTargets(ruleName: string, targets: RuleTarget[]): Promise<void> {
    const rule = this.#requireRule(ruleName);
    for (const t of targets) {
      if (!TARGET_ID.test(t.id)) {
        throw new LocalServiceError('ValidationException', `target id ${JSON.stringify(t.id)} is not valid`);
      }
      if (!BUS_ARN.test(t.arn)) {
        throw new LocalServiceError(
          'ValidationException',
          `target ${t.id}: ${JSON.stringify(t.arn)} is not an event bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>), the only target the local bus takes by ARN`,
        );
      }
    }
    this.#mergeTargets(
      rule,
      targets.map((t) => ({ id: t.id, arn: t.arn })),
    );
    this.#persist();
  }

  async removeTargets(ruleName: string, targetIds: string[]): Promise<void> {
    const rule = this.#requireRule(ruleName);
    rule.targets = rule.targets.filter((t) => !targetIds.includes(t.id));
    this.#persist();
  }

  /**
   * Removes what targets remain, then the rule (EventBridge itself refuses to delete a rule with targets; the
   * port's deleteRule does both, as the AWS adapter does). Deleting a missing rule succeeds.
   */
  async deleteRule(ruleName: string): Promise<void> {
    if (!this.#rules.delete(ruleName)) return;
    this.#persist();
  }

  // ---------------------------------------------------------------- local-only

  /**
   * Creates the rule if needed and adds local targets (handlers or buses). Such rules are not persisted:
   * handlers exist only in this process. Throws LimitExceededException past 5 targets.
   */
  addRule(name: string, pattern: string | object, targets: LocalTarget | LocalTarget[]): void {
    assertRuleName(name);
    const eventPattern = typeof pattern === 'string' ? pattern : JSON.stringify(pattern);
    const matcher = compileEventPattern(eventPattern);
    const existing = this.#rules.get(name);
    if (existing && existing.eventPattern !== eventPattern) {
      throw new LocalServiceError('ValidationException', `rule ${name} already exists with another pattern`);
    }
    const list = (Array.isArray(targets) ? targets : [targets]).map((t) => this.#localTarget(name, t));
    const rule = existing ?? { name, eventPattern, description: '', matcher, persisted: false, targets: [] };
    this.#mergeTargets(rule, list); // throws past the limit before a new rule is kept
    if (!existing) this.#rules.set(name, rule);
  }

  /** Deliveries that exhausted their retries, oldest first (the rule target's DLQ). */
  deadLetters(): DeadLetter[] {
    return readJson<DeadLetter[]>(this.#deadLettersPath, []);
  }

  clearDeadLetters(): void {
    writeJsonAtomic(this.#deadLettersPath, []);
  }

  // ---------------------------------------------------------------- internals

  get #rulesPath(): string {
    return join(this.#dir, 'rules.json');
  }
  get #deadLettersPath(): string {
    return join(this.#dir, 'dead-letters.json');
  }
  get #deliveriesDir(): string {
    return join(this.#dir, 'deliveries');
  }
  #pendingPath(id: string): string {
    return join(this.#deliveriesDir, `${id}.json`);
  }

  /** No longer owed. A file that cannot be removed only means one more delivery after a restart. */
  #forget(id: string): void {
    try {
      rmSync(this.#pendingPath(id), { force: true });
    } catch {
      // at least once: a later resumeDeliveries() delivers it again
    }
  }

  #schedule(rule: RuleState, target: TargetState, pending: PendingDelivery): void {
    this.#inFlight.add(pending.id);
    const delivery = this.#deliver(rule, target, pending.event).then(
      () => {
        // Done (taken, or a dead letter): no longer owed. A crash before this line delivers it again.
        this.#forget(pending.id);
        this.#inFlight.delete(pending.id);
      },
      (err: unknown) => {
        // Not even its dead letter could be written: it stays owed, for the next resumeDeliveries().
        this.#inFlight.delete(pending.id);
        throw err;
      },
    );
    this.#tracker.track(delivery);
  }

  #persist(): void {
    const rules = [...this.#rules.values()]
      .filter((r) => r.persisted)
      .map((r) => ({
        name: r.name,
        eventPattern: r.eventPattern,
        description: r.description,
        targets: r.targets.filter((t) => !t.handler && !t.bus).map((t) => ({ id: t.id, arn: t.arn })),
      }));
    writeJsonAtomic(this.#rulesPath, { rules } satisfies PersistedRules);
  }

  #trackers(seen: Set<LocalEventBus>, into = new Set<DeliveryTracker>()): Set<DeliveryTracker> {
    if (seen.has(this)) return into;
    seen.add(this);
    into.add(this.#tracker);
    for (const bus of this.#forwardedTo) bus.#trackers(seen, into);
    return into;
  }

  #requireRule(name: string): RuleState {
    const rule = this.#rules.get(name);
    if (!rule) {
      throw new LocalServiceError(
        'ResourceNotFoundException',
        `Rule ${name} does not exist on EventBus ${this.name}.`,
        404,
      );
    }
    return rule;
  }

  #mergeTargets(rule: RuleState, incoming: TargetState[]): void {
    const merged = [...rule.targets];
    for (const t of incoming) {
      const at = merged.findIndex((m) => m.id === t.id);
      if (at === -1) merged.push(t);
      else merged[at] = t;
    }
    if (merged.length > MAX_TARGETS_PER_RULE) {
      throw new LocalServiceError(
        'LimitExceededException',
        `The requested resource exceeds the maximum number allowed: rule ${rule.name} would have ${merged.length} targets, at most ${MAX_TARGETS_PER_RULE} are allowed.`,
      );
    }
    rule.targets = merged;
  }

  #localTarget(ruleName: string, target: LocalTarget): TargetState {
    if (target instanceof LocalEventBus) {
      const id = `bus-${target.accountId}-${target.region}-${target.name}`
        .replace(/[^.\-_A-Za-z0-9]/g, '_')
        .slice(0, 64);
      return { id, arn: target.arn, bus: target };
    }
    const id = typeof target === 'function' ? `${ruleName}-${++this.#localTargetCounter}` : target.id;
    if (!TARGET_ID.test(id))
      throw new LocalServiceError('ValidationException', `target id ${JSON.stringify(id)} is not valid`);
    const handler = typeof target === 'function' ? target : target.handler;
    return { id, arn: `arn:aws:lambda:${this.region}:${this.accountId}:function:${id}`, handler };
  }

  #resolveBus(nameOrArn: string | undefined, index: number): LocalEventBus {
    if (!nameOrArn || nameOrArn === this.name || nameOrArn === this.arn) return this;
    const arn = BUS_ARN.test(nameOrArn) ? nameOrArn : eventBusArn(this.region, this.accountId, nameOrArn);
    const bus = this.#registry?.resolve(arn);
    if (!bus) {
      throw new LocalServiceError(
        'ResourceNotFoundException',
        `PutEvents entry ${index}: event bus ${nameOrArn} does not exist`,
        404,
      );
    }
    return bus;
  }

  async #deliver(rule: RuleState, target: TargetState, event: EventEnvelope): Promise<void> {
    // EventBridge delivers asynchronously: never inside the publisher's call.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#retry.maxAttempts; attempt++) {
      try {
        if (target.handler) {
          await target.handler(event);
        } else {
          const bus = target.bus ?? this.#registry?.resolve(target.arn);
          if (!bus) {
            throw new LocalServiceError(
              'ResourceNotFoundException',
              `event bus ${target.arn} does not exist`,
              404,
            );
          }
          this.#forwardedTo.add(bus);
          bus.accept(event);
        }
        return;
      } catch (err) {
        lastError = err;
        if (attempt < this.#retry.maxAttempts) {
          await this.#sleep(Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (attempt - 1)));
        }
      }
    }
    this.#deadLetter(rule, target, event, lastError, this.#retry.maxAttempts);
  }

  #deadLetter(
    rule: Pick<RuleState, 'name'>,
    target: Pick<TargetState, 'id' | 'arn'>,
    event: EventEnvelope,
    failure: unknown,
    attempts: number,
  ): void {
    const error = failure instanceof Error ? failure : new Error(String(failure));
    const letter: DeadLetter = {
      ruleName: rule.name,
      ruleArn: `arn:aws:events:${this.region}:${this.accountId}:rule/${this.name === 'default' ? '' : `${this.name}/`}${rule.name}`,
      targetId: target.id,
      targetArn: target.arn,
      event,
      errorCode: error.name,
      errorMessage: error.message,
      attempts,
      failedAt: this.#clock.now().toISOString(),
    };
    writeJsonAtomic(this.#deadLettersPath, [...this.deadLetters(), letter]);
    try {
      this.#onDeadLetter?.(letter);
    } catch {
      // A failing observer must not turn a recorded dead letter into an unhandled rejection.
    }
  }
}
