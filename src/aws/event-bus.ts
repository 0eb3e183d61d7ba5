// EventPublisher (PutEvents) and BusRules (rules and cross-account targets on the central bus) on EventBridge.

import {
  DeleteRuleCommand,
  EventBridgeClient,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  type PutEventsRequestEntry,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
  type Target,
} from '@aws-sdk/client-eventbridge';
import { DependencyError } from '#errors';
import type { BusEvent, BusRule, BusRules, EventPublisher, RuleTarget } from '#ports';
import { isError, realSleep, type Sleep } from './retry.ts';

/** PutEvents takes at most 10 entries per call. */
const PUT_EVENTS_BATCH = 10;

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
    for (let i = 0; i < events.length; i += PUT_EVENTS_BATCH) {
      await this.#publishBatch(events.slice(i, i + PUT_EVENTS_BATCH).map((e) => this.#entry(e)));
    }
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

  /**
   * targetRoleArn: member buses grant PutEvents to the Organization, not to our account id, and EventBridge
   * then requires a role on the target. deadLetterArn: an SQS queue for events a target never accepted.
   */
  constructor(options: {
    eventBusName: string;
    client?: EventBridgeClient;
    targetRoleArn?: string;
    deadLetterArn?: string;
  }) {
    this.#events = options.client ?? new EventBridgeClient({ retryMode: 'adaptive' });
    this.#bus = options.eventBusName;
    this.#targetRoleArn = options.targetRoleArn;
    this.#deadLetterArn = options.deadLetterArn;
  }

  // EventBridge has no SDK paginators for these lists: follow NextToken by hand.
  async listRules(namePrefix: string): Promise<BusRule[]> {
    const rules: BusRule[] = [];
    let token: string | undefined;
    do {
      const out = await this.#events.send(
        new ListRulesCommand({ EventBusName: this.#bus, NamePrefix: namePrefix, NextToken: token }),
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
      const out = await this.#events.send(
        new ListTargetsByRuleCommand({ EventBusName: this.#bus, Rule: rule, NextToken: token }),
      );
      for (const t of out.Targets ?? []) if (t.Id && t.Arn) targets.push({ id: t.Id, arn: t.Arn });
      token = out.NextToken;
    } while (token);
    return targets;
  }

  async putRule(name: string, eventPattern: string, description: string): Promise<void> {
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
      await this.#events.send(new DeleteRuleCommand({ Name: ruleName, EventBusName: this.#bus }));
    } catch (err) {
      if (isError(err, 'ResourceNotFoundException')) return;
      throw err;
    }
  }
}
