// sync-subscribers: the rules that forward stemcell's events to every member account's bus (infra/member.yml).
// AWS allows at most 5 targets per rule and 300 rules per bus (100 in af-south-1 and eu-south-1), so accounts
// are spread over numbered rules, and the rules over fan-out buses (FanoutBuses; docs/architecture.md, "Fan-out
// at 10,000 accounts"). The grouping is stable: an account keeps its rule and a rule its bus, new accounts fill
// gaps first, then new rules go to the first bus with room, then to a new bus. Every run plans from what exists,
// so a run stopped before Lambda's time is up is resumed by the next one.
import { EVENT_SOURCE } from '#events/stemcell.ts';
import type { BusRule, BusRules, RuleTarget } from '#ports';
import type { SyncSubscribersDeps } from '../deps.ts';
import {
  memberBusArn,
  SUBSCRIBER_RULE_PREFIX,
  subscriberRuleName,
  subscriberRuleNumber,
} from '../model/naming.ts';

/** What member accounts receive: per-region image announcements and the end of a release. */
export const SUBSCRIBER_DETAIL_TYPES = ['Image Ready', 'Release Complete'] as const;

/** Accounts that receive the same streams share rules with the same pattern. */
export interface Audience {
  /** Streams these accounts receive; undefined means every stream (no stream filter in the pattern). */
  streams?: string[];
  accountIds: string[];
}

export function subscriberPattern(streams?: string[]): string {
  const pattern: Record<string, unknown> = {
    source: [EVENT_SOURCE],
    'detail-type': [...SUBSCRIBER_DETAIL_TYPES],
  };
  if (streams) pattern.detail = { stream: [...streams].sort() };
  return JSON.stringify(pattern);
}

/** Computes who should receive which streams from the stream configuration and the organization. */
export async function desiredAudiences(
  deps: Pick<SyncSubscribersDeps, 'config' | 'organization' | 'ownAccountId'>,
): Promise<Audience[]> {
  const active = (accounts: { id: string; status: string }[]) =>
    accounts.filter((a) => a.status === 'ACTIVE' && a.id !== deps.ownAccountId).map((a) => a.id);
  let organization: string[] | undefined;
  const byOu = new Map<string, string[]>();
  const streamsOf = new Map<string, Set<string>>();
  const allStreams = Object.keys(deps.config.streams).sort();
  for (const stream of allStreams) {
    const scope = deps.config.streams[stream]?.subscribers.scope ?? 'organization';
    let accounts: string[];
    if (scope === 'organization') {
      organization ??= active(await deps.organization.listAccounts());
      accounts = organization;
    } else {
      accounts = [];
      for (const ou of scope.ous) {
        if (!byOu.has(ou)) byOu.set(ou, active(await deps.organization.listAccountsInOu(ou)));
        accounts.push(...(byOu.get(ou) ?? []));
      }
    }
    for (const account of accounts) {
      const streams = streamsOf.get(account) ?? new Set<string>();
      streams.add(stream);
      streamsOf.set(account, streams);
    }
  }
  const audiences = new Map<string, Audience>();
  for (const [account, streams] of streamsOf) {
    const list = [...streams].sort();
    const key = list.join(',');
    const audience = audiences.get(key) ?? {
      ...(list.length === allStreams.length ? {} : { streams: list }),
      accountIds: [],
    };
    audience.accountIds.push(account);
    audiences.set(key, audience);
  }
  return [...audiences.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([, audience]) => ({ ...audience, accountIds: audience.accountIds.sort() }));
}

/** A rule as it exists, and where: `bus` is a fan-out bus's name, or '' for the rules of `deps.rules`. */
export interface PlacedRule extends BusRule {
  bus?: string;
  /** A rule on a bus that no longer holds subscriber rules (the central bus, once fan-out buses exist). */
  retire?: boolean;
}

export interface RulePlan {
  /** The bus the rule is on ('' for `deps.rules`). */
  bus: string;
  name: string;
  eventPattern: string;
  /** The rule does not exist yet. */
  create: boolean;
  add: RuleTarget[];
  remove: string[];
  /** Targets after the change. */
  targets: RuleTarget[];
}

export interface SubscriberPlan {
  rules: RulePlan[];
  /** Rules left without targets, or whose audience no longer exists. */
  deleteRules: string[];
  /** Fan-out buses to create before the rules that go on them. */
  createBuses: string[];
}

/** Where new rules may go: fan-out buses and their capacity. Absent: every rule on one bus ('' ). */
export interface BusCapacity {
  /** Fan-out buses that exist, in order. */
  existing: string[];
  maxRulesPerBus: number;
  /** Name of the n-th fan-out bus (from 1). */
  nameOf(n: number): string;
}

/** A planned change that would break a quota no run can fix: the message names the quota and the numbers. */
export class FanoutQuotaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FanoutQuotaError';
  }
}

/** Canonical form of an event pattern, so a pattern AWS hands back reformatted still compares equal. */
function canonical(pattern: string): string {
  const sort = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sort);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => [k, sort(v)]),
      );
    }
    return value;
  };
  try {
    return JSON.stringify(sort(JSON.parse(pattern)));
  } catch {
    return pattern;
  }
}

/** Pure planning: which targets move where, given the rules that exist and the audiences wanted. */
export function planSubscriberRules(
  existing: PlacedRule[],
  audiences: Audience[],
  opts: {
    homeRegion: string;
    maxTargetsPerRule: number;
    memberBusName?: string;
    buses?: BusCapacity;
    /** Characters an event pattern may have (EventBridge: 2,048). */
    maxPatternChars?: number;
  },
): SubscriberPlan {
  const ours = existing
    .map((rule) => ({ rule, n: subscriberRuleNumber(rule.name) }))
    .filter((r): r is { rule: PlacedRule; n: number } => r.n !== undefined)
    .sort((a, b) => a.n - b.n);
  const usedNumbers = new Set(ours.map((r) => r.n));
  const nextNumber = () => {
    let n = 1;
    while (usedNumbers.has(n)) n++;
    usedNumbers.add(n);
    return n;
  };
  const target = (accountId: string): RuleTarget => ({
    id: accountId,
    arn: memberBusArn(opts.homeRegion, accountId, opts.memberBusName),
  });
  const placement = busPlacement(ours, opts.buses);

  const plans: RulePlan[] = [];
  const claimed = new Set<string>();
  const key = (rule: PlacedRule) => `${rule.bus ?? ''}/${rule.name}`;
  for (const audience of audiences) {
    const eventPattern = subscriberPattern(audience.streams);
    if (opts.maxPatternChars !== undefined && eventPattern.length > opts.maxPatternChars) {
      throw new FanoutQuotaError(
        `the event pattern for the ${audience.accountIds.length} accounts that receive streams ${audience.streams?.join(', ')} has ${eventPattern.length} characters; EventBridge takes at most ${opts.maxPatternChars}`,
      );
    }
    const wanted = new Set(audience.accountIds);
    const assigned = new Set<string>();
    const rulePlans: RulePlan[] = [];
    for (const { rule } of ours) {
      if (rule.retire || claimed.has(key(rule))) continue;
      if (canonical(rule.eventPattern) !== canonical(eventPattern)) continue;
      claimed.add(key(rule));
      const plan: RulePlan = {
        bus: rule.bus ?? '',
        name: rule.name,
        eventPattern,
        create: false,
        add: [],
        remove: [],
        targets: [],
      };
      for (const t of rule.targets) {
        // Keep an account where it is, unless the rule is over the limit or holds it twice.
        if (wanted.has(t.id) && !assigned.has(t.id) && plan.targets.length < opts.maxTargetsPerRule) {
          assigned.add(t.id);
          const desired = target(t.id);
          plan.targets.push(desired);
          if (t.arn !== desired.arn) plan.add.push(desired);
        } else {
          plan.remove.push(t.id);
        }
      }
      rulePlans.push(plan);
    }
    const remaining = audience.accountIds.filter((id) => !assigned.has(id));
    for (const plan of rulePlans) {
      while (remaining.length > 0 && plan.targets.length < opts.maxTargetsPerRule) {
        const t = target(remaining.shift() as string);
        plan.targets.push(t);
        plan.add.push(t);
      }
    }
    while (remaining.length > 0) {
      const targets = remaining.splice(0, opts.maxTargetsPerRule).map(target);
      rulePlans.push({
        bus: placement.place(),
        name: subscriberRuleName(nextNumber()),
        eventPattern,
        create: true,
        add: targets,
        remove: [],
        targets,
      });
    }
    plans.push(...rulePlans);
  }

  for (const { rule } of ours) {
    if (!claimed.has(key(rule))) {
      plans.push({
        bus: rule.bus ?? '',
        name: rule.name,
        eventPattern: rule.eventPattern,
        create: false,
        add: [],
        remove: rule.targets.map((t) => t.id),
        targets: [],
      });
    }
  }
  const deleteRules: string[] = [];
  for (const plan of plans) if (plan.targets.length === 0) deleteRules.push(plan.name);
  return {
    rules: plans.sort((a, b) => ruleOrder(a.name) - ruleOrder(b.name)),
    deleteRules,
    createBuses: placement.created,
  };
}

/**
 * Which bus a new rule goes to: the first fan-out bus with room, else a new one. Rules about to be deleted
 * still count, so a bus is never over its quota between the writes of one run.
 */
function busPlacement(ours: { rule: PlacedRule }[], buses: BusCapacity | undefined) {
  const created: string[] = [];
  if (!buses) return { created, place: () => '' };
  const names = [...buses.existing];
  const used = new Map(names.map((name) => [name, 0]));
  for (const { rule } of ours) if (rule.bus) used.set(rule.bus, (used.get(rule.bus) ?? 0) + 1);
  let n = 1;
  return {
    created,
    place(): string {
      const free = names.find((name) => (used.get(name) ?? 0) < buses.maxRulesPerBus);
      const name = free ?? newBus();
      used.set(name, (used.get(name) ?? 0) + 1);
      return name;
    },
  };
  function newBus(): string {
    while (used.has(buses?.nameOf(n) ?? '')) n++;
    const name = buses?.nameOf(n) as string;
    names.push(name);
    created.push(name);
    used.set(name, 0);
    return name;
  }
}

const ruleOrder = (name: string) => subscriberRuleNumber(name) ?? 0;

export interface SyncResult {
  rules: Array<{ name: string; accountIds: string[] }>;
  /** Accounts no rule targeted before this run: they get the newest images (the reconciler's deliverLatestTo). */
  joined: string[];
  added: number;
  removed: number;
  createdRules: string[];
  deletedRules: string[];
  /** Fan-out buses created by this run, and how many rules each bus holds after it. */
  createdBuses: string[];
  rulesPerBus: Record<string, number>;
  /** False when the run stopped at `stopBy` with writes left: the next run resumes from what exists. */
  complete: boolean;
}

/** Says which rules hold the subscribers: the fan-out buses when the deployment has them, else `deps.rules`. */
async function existingRules(deps: SyncSubscribersDeps): Promise<{ rules: PlacedRule[]; buses: string[] }> {
  const central = await deps.rules.listRules(SUBSCRIBER_RULE_PREFIX);
  if (!deps.fanout) return { rules: central, buses: [] };
  const buses = await deps.fanout.list();
  const rules: PlacedRule[] = central.map((r) => ({ ...r, bus: '', retire: true }));
  for (const bus of buses) {
    for (const r of await deps.fanout.rules(bus).listRules(SUBSCRIBER_RULE_PREFIX)) rules.push({ ...r, bus });
  }
  return { rules, buses };
}

/**
 * Reconciles the rules with the Organization. Writes in an order that never breaks a quota and never leaves an
 * account that stays in scope without a rule: targets leaving a kept rule first (room in the rule), then new
 * buses, rules and targets, then the rules no longer wanted. With `stopBy`, stops writing at that instant
 * (Lambda's timeout less a margin) and says so; the next run finds what is left by planning again.
 */
export async function syncSubscribers(
  deps: SyncSubscribersDeps,
  opts: { stopBy?: Date } = {},
): Promise<SyncResult> {
  const [existing, audiences] = await Promise.all([existingRules(deps), desiredAudiences(deps)]);
  const fanout = deps.fanout;
  const plan = planSubscriberRules(existing.rules, audiences, {
    homeRegion: deps.config.homeRegion,
    maxTargetsPerRule: deps.rules.maxTargetsPerRule,
    maxPatternChars: 2048,
    ...(deps.memberBusName ? { memberBusName: deps.memberBusName } : {}),
    ...(fanout
      ? {
          buses: {
            existing: existing.buses,
            maxRulesPerBus: fanout.maxRulesPerBus,
            nameOf: (n: number) => fanout.nameOf(n),
          },
        }
      : {}),
  });
  const rulesOn = (bus: string): BusRules => (bus && fanout ? fanout.rules(bus) : deps.rules);
  const deleting = new Set(plan.deleteRules);
  const before = new Set(existing.rules.flatMap((r) => r.targets.map((t) => t.id)));
  let added = 0;
  let removed = 0;
  const createdRules: string[] = [];
  const createdBuses: string[] = [];
  const deletedRules: string[] = [];
  const addedIds: string[] = [];
  const outOfTime = () => opts.stopBy !== undefined && deps.clock.now() >= opts.stopBy;
  let complete = true;
  const steps: Array<() => Promise<void>> = [];
  // 1. Room in kept rules.
  for (const rule of plan.rules) {
    if (deleting.has(rule.name) || rule.create || rule.remove.length === 0) continue;
    steps.push(async () => {
      await rulesOn(rule.bus).removeTargets(rule.name, rule.remove);
      removed += rule.remove.length;
    });
  }
  // 2. New buses, new rules, new targets.
  for (const bus of plan.createBuses) {
    steps.push(async () => {
      await fanout?.create(bus);
      createdBuses.push(bus);
    });
  }
  for (const rule of plan.rules) {
    if (deleting.has(rule.name)) continue;
    if (rule.create) {
      steps.push(async () => {
        await rulesOn(rule.bus).putRule(
          rule.name,
          rule.eventPattern,
          'stemcell: forwards release events to member accounts (managed by sync-subscribers)',
        );
        createdRules.push(rule.name);
      });
    }
    if (rule.add.length > 0) {
      steps.push(async () => {
        // One PutTargets per rule: a rule holds at most 5 targets, within the 10 entries a request takes.
        await rulesOn(rule.bus).putTargets(rule.name, rule.add);
        added += rule.add.length;
        addedIds.push(...rule.add.map((t) => t.id));
      });
    }
  }
  // 3. Rules no longer wanted (their accounts have their new rule by now).
  for (const rule of plan.rules) {
    if (!deleting.has(rule.name) || rule.create) continue;
    steps.push(async () => {
      if (rule.remove.length > 0) await rulesOn(rule.bus).removeTargets(rule.name, rule.remove);
      removed += rule.remove.length;
      await rulesOn(rule.bus).deleteRule(rule.name);
      deletedRules.push(rule.name);
    });
  }
  for (const step of steps) {
    if (outOfTime()) {
      complete = false;
      break;
    }
    await step();
  }
  const rules = plan.rules
    .filter((r) => !deleting.has(r.name))
    .map((r) => ({ name: r.name, accountIds: r.targets.map((t) => t.id) }));
  const rulesPerBus: Record<string, number> = {};
  for (const r of plan.rules)
    if (r.bus && !deleting.has(r.name)) rulesPerBus[r.bus] = (rulesPerBus[r.bus] ?? 0) + 1;
  const result: SyncResult = {
    rules,
    joined: [...new Set(addedIds)].filter((id) => !before.has(id)).sort(),
    added,
    removed,
    createdRules,
    deletedRules: complete ? plan.deleteRules : deletedRules,
    createdBuses,
    rulesPerBus,
    complete,
  };
  deps.logger.info('subscriber rules reconciled', {
    ...result,
    // At 10,000 accounts the lists pass CloudWatch's 256 KB per log event: counts only, past a size.
    rules: result.rules.length > 50 ? result.rules.length : result.rules,
    joined: result.joined.length > 250 ? result.joined.length : result.joined,
  });
  return result;
}
