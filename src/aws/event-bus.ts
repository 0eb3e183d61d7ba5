// EventPublisher (PutEvents) and BusRules (rules and cross-account targets on the central bus) on EventBridge.

import {
  CreateEventBusCommand,
  DeleteRuleCommand,
  EventBridgeClient,
  ListEventBusesCommand,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  type PutEventsRequestEntry,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
  type Target,
} from '@aws-sdk/client-eventbridge';
import { type ApiPacer, EVENTBRIDGE, rulesPerBus } from '#core/members/quotas.ts';
import { DependencyError } from '#errors';
import type { BusEvent, BusRule, BusRules, EventPublisher, FanoutBuses, RuleTarget } from '#ports';
import { isError, realSleep, type Sleep } from './retry.ts';

/** PutEvents takes at most 10 entries per call, of at most 256 KiB together. */
const PUT_EVENTS_BATCH = EVENTBRIDGE.entriesPerPutEvents;
const PUT_EVENTS_BYTES = EVENTBRIDGE.putEventsRequestBytes;

/** An entry's size as EventBridge counts it ("Calculating PutEvents event entry size"). */
function entrySize(e: PutEventsRequestEntry): number {
  return (
    Buffer.byteLength(e.Source ?? '') +
    Buffer.byteLength(e.DetailType ?? '') +
    Buffer.byteLength(e.Detail ?? '') +
    (e.Resources ?? []).reduce((n, r) => n + Buffer.byteLength(r), 0)
  );
}

/** Splits entries into requests of at most 10 entries and 256 KiB, in order. */
export function putEventsBatches(entries: PutEventsRequestEntry[]): PutEventsRequestEntry[][] {
  const batches: PutEventsRequestEntry[][] = [];
  let batch: PutEventsRequestEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entrySize(entry);
    if (batch.length > 0 && (batch.length === PUT_EVENTS_BATCH || bytes + size > PUT_EVENTS_BYTES)) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(entry);
    bytes += size;
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

export class PublishError extends DependencyError {
  readonly failures: { detailType: string; errorCode: string; errorMessage: string }[];
  constructor(failures: { detailType: string; errorCode: string; errorMessage: string }[], attempts: number) {
    super(
      `PutEvents: ${failures.length} event(s) still failing after ${attempts} attempts: ` +
        failures.map((f) => `${f.detailType}: ${f.errorCode} ${f.errorMessage}`).join('; '),
    );
    this.name = 'PublishError';
    this.failures = failures;
  }
}

export class EventBridgePublisher implements EventPublisher {
  readonly #events: EventBridgeClient;
  readonly #defaultBus: string | undefined;
  readonly #attempts: number;
  readonly #sleep: Sleep;

  constructor(
    options: { client?: EventBridgeClient; eventBusName?: string; attempts?: number; sleep?: Sleep } = {},
  ) {
    this.#events = options.client ?? new EventBridgeClient({ retryMode: 'adaptive' });
    this.#defaultBus = options.eventBusName;
    this.#attempts = options.attempts ?? 4;
    this.#sleep = options.sleep ?? realSleep;
  }

  async publish(events: BusEvent[]): Promise<void> {
    for (const batch of putEventsBatches(events.map((e) => this.#entry(e)))) await this.#publishBatch(batch);
  }

  #entry(e: BusEvent): PutEventsRequestEntry {
    const entry: PutEventsRequestEntry = {
      Source: e.source,
      DetailType: e.detailType,
      Detail: JSON.stringify(e.detail),
    };
    if (e.resources?.length) entry.Resources = e.resources;
    const bus = e.eventBusName ?? this.#defaultBus;
    if (bus) entry.EventBusName = bus;
    return entry;
  }

  /** Sends the batch; resends only the entries that failed (matched by index), a bounded number of times. */
  async #publishBatch(entries: PutEventsRequestEntry[]): Promise<void> {
    let pending = entries;
    let failures: { detailType: string; errorCode: string; errorMessage: string }[] = [];
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1) await this.#sleep(Math.random() * 200 * 2 ** attempt);
      const out = await this.#events.send(new PutEventsCommand({ Entries: pending }));
      if (!out.FailedEntryCount) return;
      const results = out.Entries ?? [];
      const retry: PutEventsRequestEntry[] = [];
      failures = [];
      pending.forEach((entry, i) => {
        const r = results[i];
        if (r?.ErrorCode || !r?.EventId) {
          retry.push(entry);
          failures.push({
            detailType: entry.DetailType ?? '',
            errorCode: r?.ErrorCode ?? 'Unknown',
            errorMessage: r?.ErrorMessage ?? '',
          });
        }
      });
      if (retry.length === 0) return;
      pending = retry;
    }
    throw new PublishError(failures, this.#attempts);
  }
}

export class EventBridgeBusRules implements BusRules {
  readonly maxTargetsPerRule = 5;
  readonly #events: EventBridgeClient;
  readonly #bus: string;
  readonly #targetRoleArn: string | undefined;
  readonly #deadLetterArn: string | undefined;
  readonly #pacer: ApiPacer | undefined;

  /**
   * pacer: keeps each API under EventBridge's control-plane rate (sync-subscribers makes thousands of calls).
   * targetRoleArn: member buses grant PutEvents to the Organization, not to our account id, and EventBridge
   * then requires a role on the target. deadLetterArn: an SQS queue for events a target never accepted.
   */
  constructor(options: {
    eventBusName: string;
    client?: EventBridgeClient;
    targetRoleArn?: string;
    deadLetterArn?: string;
    pacer?: ApiPacer;
  }) {
    this.#events = options.client ?? new EventBridgeClient({ retryMode: 'adaptive' });
    this.#bus = options.eventBusName;
    this.#targetRoleArn = options.targetRoleArn;
    this.#deadLetterArn = options.deadLetterArn;
    this.#pacer = options.pacer;
  }

  // EventBridge has no SDK paginators for these lists: follow NextToken by hand.
  async listRules(namePrefix: string): Promise<BusRule[]> {
    const rules: BusRule[] = [];
    let token: string | undefined;
    do {
      await this.#pacer?.take('ListRules');
      const out = await this.#events.send(
        new ListRulesCommand({
          EventBusName: this.#bus,
          NamePrefix: namePrefix,
          NextToken: token,
          Limit: 100,
        }),
      );
      for (const r of out.Rules ?? []) {
        if (!r.Name) continue;
        rules.push({
          name: r.Name,
          eventPattern: r.EventPattern ?? '',
          targets: await this.#targets(r.Name),
        });
      }
      token = out.NextToken;
    } while (token);
    return rules;
  }

  async #targets(rule: string): Promise<RuleTarget[]> {
    const targets: RuleTarget[] = [];
    let token: string | undefined;
    do {
      await this.#pacer?.take('ListTargetsByRule');
      const out = await this.#events.send(
        new ListTargetsByRuleCommand({ EventBusName: this.#bus, Rule: rule, NextToken: token }),
      );
      for (const t of out.Targets ?? []) if (t.Id && t.Arn) targets.push({ id: t.Id, arn: t.Arn });
      token = out.NextToken;
    } while (token);
    return targets;
  }

  async putRule(name: string, eventPattern: string, description: string): Promise<void> {
    await this.#pacer?.take('PutRule');
    await this.#events.send(
      new PutRuleCommand({
        Name: name,
        EventBusName: this.#bus,
        EventPattern: eventPattern,
        Description: description,
        State: 'ENABLED',
      }),
    );
  }

  async putTargets(ruleName: string, targets: RuleTarget[]): Promise<void> {
    if (targets.length === 0) return;
    await this.#pacer?.take('PutTargets');
    const out = await this.#events.send(
      new PutTargetsCommand({
        Rule: ruleName,
        EventBusName: this.#bus,
        Targets: targets.map((t) => {
          const target: Target = { Id: t.id, Arn: t.arn, RetryPolicy: { MaximumRetryAttempts: 185 } };
          if (this.#targetRoleArn) target.RoleArn = this.#targetRoleArn;
          if (this.#deadLetterArn) target.DeadLetterConfig = { Arn: this.#deadLetterArn };
          return target;
        }),
      }),
    );
    if (out.FailedEntryCount) {
      const failed = (out.FailedEntries ?? []).map((f) => `${f.TargetId}: ${f.ErrorCode} ${f.ErrorMessage}`);
      throw new Error(`PutTargets on rule ${ruleName}: ${failed.join('; ')}`);
    }
  }

  async removeTargets(ruleName: string, targetIds: string[]): Promise<void> {
    if (targetIds.length === 0) return;
    await this.#pacer?.take('RemoveTargets');
    const out = await this.#events.send(
      new RemoveTargetsCommand({ Rule: ruleName, EventBusName: this.#bus, Ids: targetIds }),
    );
    if (out.FailedEntryCount) {
      const failed = (out.FailedEntries ?? []).map((f) => `${f.TargetId}: ${f.ErrorCode} ${f.ErrorMessage}`);
      throw new Error(`RemoveTargets on rule ${ruleName}: ${failed.join('; ')}`);
    }
  }

  /** Removes what targets remain (EventBridge refuses to delete a rule that has targets), then the rule. */
  async deleteRule(ruleName: string): Promise<void> {
    try {
      const remaining = await this.#targets(ruleName);
      await this.removeTargets(
        ruleName,
        remaining.map((t) => t.id),
      );
      await this.#pacer?.take('DeleteRule');
      await this.#events.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: this.#bus }));
    } catch (err) {
      if (isError(err, 'ResourceNotFoundException')) return;
      throw err;
    }
  }
}

/**
 * The fan-out buses on EventBridge: `<prefix>1`, `<prefix>2`, ... in the home account and Region, created by
 * sync-subscribers as the Organization grows (CreateEventBus), listed by their prefix (ListEventBuses).
 */
export class EventBridgeFanoutBuses implements FanoutBuses {
  readonly maxRulesPerBus: number;
  readonly #events: EventBridgeClient;
  readonly #prefix: string;
  readonly #rules: Omit<ConstructorParameters<typeof EventBridgeBusRules>[0], 'eventBusName'>;
  readonly #pacer: ApiPacer | undefined;

  constructor(options: {
    /** Names are `<prefix><n>`, e.g. stemcell-fanout-1. */
    namePrefix: string;
    region: string;
    client?: EventBridgeClient;
    targetRoleArn?: string;
    deadLetterArn?: string;
    pacer?: ApiPacer;
    /** Default: the Region's rules-per-bus quota. */
    maxRulesPerBus?: number;
  }) {
    this.#events = options.client ?? new EventBridgeClient({ region: options.region, retryMode: 'adaptive' });
    this.#prefix = options.namePrefix;
    this.maxRulesPerBus = options.maxRulesPerBus ?? rulesPerBus(options.region);
    this.#pacer = options.pacer;
    this.#rules = {
      client: this.#events,
      ...(options.targetRoleArn ? { targetRoleArn: options.targetRoleArn } : {}),
      ...(options.deadLetterArn ? { deadLetterArn: options.deadLetterArn } : {}),
      ...(options.pacer ? { pacer: options.pacer } : {}),
    };
  }

  nameOf(n: number): string {
    return `${this.#prefix}${n}`;
  }

  async list(): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      await this.#pacer?.take('ListEventBuses');
      const out = await this.#events.send(
        new ListEventBusesCommand({ NamePrefix: this.#prefix, NextToken: token, Limit: 100 }),
      );
      for (const bus of out.EventBuses ?? []) {
        const n = Number(bus.Name?.slice(this.#prefix.length));
        if (bus.Name?.startsWith(this.#prefix) && Number.isInteger(n) && n > 0) names.push(bus.Name);
      }
      token = out.NextToken;
    } while (token);
    const order = (name: string) => Number(name.slice(this.#prefix.length));
    return names.sort((a, b) => order(a) - order(b));
  }

  async create(name: string): Promise<void> {
    try {
      await this.#pacer?.take('CreateEventBus');
      await this.#events.send(
        new CreateEventBusCommand({
          Name: name,
          Description: 'stemcell: fan-out of release events to member accounts (managed by sync-subscribers)',
          Tags: [{ Key: 'stemcell:managed-by', Value: 'sync-subscribers' }],
        }),
      );
    } catch (err) {
      if (isError(err, 'ResourceAlreadyExistsException')) return;
      throw err;
    }
  }

  rules(busName: string): BusRules {
    return new EventBridgeBusRules({ ...this.#rules, eventBusName: busName });
  }
}
