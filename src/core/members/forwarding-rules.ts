// sync-subscribers: the rules on the central bus that forward stemcell's events to every member account's
// bus (infra/member.yml). AWS allows at most 5 targets per rule, so accounts are spread over numbered rules; the grouping
// is stable: an account keeps its rule, new accounts fill gaps first, then new rules are appended.
import { EVENT_SOURCE } from '#events/stemcell.ts';
import type { BusRule, RuleTarget } from '#ports';
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

export interface RulePlan {
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
  existing: BusRule[],
  audiences: Audience[],
  opts: { homeRegion: string; maxTargetsPerRule: number; memberBusName?: string },
): SubscriberPlan {
  const ours = existing
    .map((rule) => ({ rule, n: subscriberRuleNumber(rule.name) }))
    .filter((r): r is { rule: BusRule; n: number } => r.n !== undefined)
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

  const plans: RulePlan[] = [];
  const claimed = new Set<string>();
  for (const audience of audiences) {
    const eventPattern = subscriberPattern(audience.streams);
    const wanted = new Set(audience.accountIds);
    const assigned = new Set<string>();
    const rulePlans: RulePlan[] = [];
    for (const { rule } of ours) {
      if (claimed.has(rule.name) || canonical(rule.eventPattern) !== canonical(eventPattern)) continue;
      claimed.add(rule.name);
      const plan: RulePlan = {
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

  const deleteRules: string[] = [];
  for (const { rule } of ours) {
    if (!claimed.has(rule.name)) {
      plans.push({
        name: rule.name,
        eventPattern: rule.eventPattern,
        create: false,
        add: [],
        remove: rule.targets.map((t) => t.id),
        targets: [],
      });
    }
  }
  for (const plan of plans) if (plan.targets.length === 0) deleteRules.push(plan.name);
  return { rules: plans.sort((a, b) => ruleOrder(a.name) - ruleOrder(b.name)), deleteRules };
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
}

export async function syncSubscribers(deps: SyncSubscribersDeps): Promise<SyncResult> {
  const [existing, audiences] = await Promise.all([
    deps.rules.listRules(SUBSCRIBER_RULE_PREFIX),
    desiredAudiences(deps),
  ]);
  const plan = planSubscriberRules(existing, audiences, {
    homeRegion: deps.config.homeRegion,
    maxTargetsPerRule: deps.rules.maxTargetsPerRule,
    ...(deps.memberBusName ? { memberBusName: deps.memberBusName } : {}),
  });
  const deleting = new Set(plan.deleteRules);
  let added = 0;
  let removed = 0;
  const createdRules: string[] = [];
  for (const rule of plan.rules) {
    // Remove first, so a rule never holds more targets than AWS allows mid-way.
    if (rule.remove.length > 0) {
      await deps.rules.removeTargets(rule.name, rule.remove);
      removed += rule.remove.length;
    }
    if (deleting.has(rule.name)) {
      if (!rule.create) await deps.rules.deleteRule(rule.name);
      continue;
    }
    if (rule.create) {
      await deps.rules.putRule(
        rule.name,
        rule.eventPattern,
        'stemcell: forwards release events to member accounts (managed by sync-subscribers)',
      );
      createdRules.push(rule.name);
    }
    if (rule.add.length > 0) {
      await deps.rules.putTargets(rule.name, rule.add);
      added += rule.add.length;
    }
  }
  const before = new Set(existing.flatMap((r) => r.targets.map((t) => t.id)));
  const rules = plan.rules
    .filter((r) => !deleting.has(r.name))
    .map((r) => ({ name: r.name, accountIds: r.targets.map((t) => t.id) }));
  const result: SyncResult = {
    rules,
    joined: [...new Set(rules.flatMap((r) => r.accountIds))].filter((id) => !before.has(id)).sort(),
    added,
    removed,
    createdRules,
    deletedRules: plan.deleteRules,
  };
  deps.logger.info('subscriber rules reconciled', { ...result });
  return result;
}
