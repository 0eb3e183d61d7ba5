// A fake AWS for the scale test of sync-subscribers: EventBridge (buses, rules, targets, PutEvents) and
// Organizations (accounts in OUs) that enforce every default quota of src/core/members/quotas.ts and count every
// call. Time is simulated: a call's rate is judged against a clock that only the caller's sleeps advance, so a
// run of many simulated minutes takes seconds, and the run's simulated length is held to Lambda's 15 minutes.
import {
  CreateEventBusCommand,
  DeleteRuleCommand,
  EventBridgeClient,
  ListEventBusesCommand,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutPermissionCommand,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { EVENTBRIDGE, ORGANIZATIONS, putEventsPerSecond, rulesPerBus } from '#core/members/quotas.ts';
import { compileEventPattern, type EventPatternMatcher } from '#local/event-pattern.ts';
import { awsError, page } from './common.ts';

/** Simulated time: sleep() advances it. */
export class SimClock {
  ms = Date.parse('2026-12-01T00:00:00Z');
  readonly start = this.ms;
  now = (): Date => new Date(this.ms);
  nowMs = (): number => this.ms;
  sleep = async (ms: number): Promise<void> => {
    this.ms += ms;
  };
  get elapsedSeconds(): number {
    return (this.ms - this.start) / 1000;
  }
}

/** Counts calls per API and refuses, as ThrottlingException, a call past the API's rate in any 1-second window. */
class RateGate {
  readonly calls = new Map<string, number>();
  readonly #recent = new Map<string, number[]>();
  throttled = 0;
  readonly clock: SimClock;
  constructor(clock: SimClock) {
    this.clock = clock;
  }
  pass(api: string, perSecond: number): void {
    this.calls.set(api, (this.calls.get(api) ?? 0) + 1);
    const now = this.clock.nowMs();
    const recent = (this.#recent.get(api) ?? []).filter((t) => t > now - 1000);
    if (recent.length >= perSecond) {
      this.throttled++;
      throw awsError('ThrottlingException', `${api}: more than ${perSecond} requests in one second`);
    }
    recent.push(now);
    this.#recent.set(api, recent);
  }
  count(apis: string[]): number {
    return apis.reduce((n, api) => n + (this.calls.get(api) ?? 0), 0);
  }
}

interface FakeRule {
  pattern: string;
  matcher: EventPatternMatcher;
  targets: { Id: string; Arn: string }[];
}

export const EVENTBRIDGE_WRITES = [
  'CreateEventBus',
  'PutRule',
  'PutTargets',
  'RemoveTargets',
  'DeleteRule',
  'PutPermission',
];

export class QuotaEventBridge {
  readonly gate: RateGate;
  /** bus name → rule name → rule */
  readonly buses = new Map<string, Map<string, FakeRule>>();
  readonly policies = new Map<string, string[]>();
  /** Invocations (rule target deliveries) per PutEvents entry, and where they went. */
  readonly deliveries: { detailType: string; detail: Record<string, unknown>; targetArn: string }[] = [];
  readonly clock: SimClock;
  readonly region: string;
  readonly accountId: string;
  constructor(clock: SimClock, region: string, accountId: string) {
    this.clock = clock;
    this.region = region;
    this.accountId = accountId;
    this.gate = new RateGate(clock);
    this.buses.set('default', new Map());
  }

  addBus(name: string): void {
    this.buses.set(name, new Map());
  }

  #bus(name: string | undefined): Map<string, FakeRule> {
    const bus = this.buses.get(name ?? 'default');
    if (!bus) throw awsError('ResourceNotFoundException', `Event bus ${name} does not exist.`);
    return bus;
  }

  #rule(busName: string | undefined, ruleName: string): FakeRule {
    const rule = this.#bus(busName).get(ruleName);
    if (!rule) throw awsError('ResourceNotFoundException', `Rule ${ruleName} does not exist on ${busName}.`);
    return rule;
  }

  #control(api: string): void {
    this.gate.pass(api, EVENTBRIDGE.controlPlanePerSecond);
  }

  client(): EventBridgeClient {
    const client = new EventBridgeClient({
      region: this.region,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(ListEventBusesCommand).callsFake((input) => {
      this.#control('ListEventBuses');
      if ((input.Limit ?? 100) > 100) throw awsError('ValidationException', 'Limit is at most 100');
      const names = [...this.buses.keys()].filter((n) => n.startsWith(input.NamePrefix ?? '')).sort();
      const p = page(names, input.NextToken, input.Limit ?? 100);
      return { EventBuses: p.items.map((Name) => ({ Name })), NextToken: p.next };
    });
    mock.on(CreateEventBusCommand).callsFake((input) => {
      this.#control('CreateEventBus');
      if (this.buses.has(input.Name)) throw awsError('ResourceAlreadyExistsException');
      if (this.buses.size >= EVENTBRIDGE.busesPerAccount)
        throw awsError('LimitExceededException', `at most ${EVENTBRIDGE.busesPerAccount} event buses`);
      this.buses.set(input.Name, new Map());
      return { EventBusArn: `arn:aws:events:${this.region}:${this.accountId}:event-bus/${input.Name}` };
    });
    mock.on(PutPermissionCommand).callsFake((input) => {
      this.#control('PutPermission');
      const statements = this.policies.get(input.EventBusName ?? 'default') ?? [];
      const next = [...statements, input.Policy ?? JSON.stringify(input)];
      if (JSON.stringify(next).length > EVENTBRIDGE.busPolicyChars)
        throw awsError('LimitExceededException', 'policy too large');
      this.policies.set(input.EventBusName ?? 'default', next);
      return {};
    });
    mock.on(PutRuleCommand).callsFake((input) => {
      this.#control('PutRule');
      const bus = this.#bus(input.EventBusName);
      const pattern: string = input.EventPattern ?? '';
      if (pattern.length > EVENTBRIDGE.eventPatternChars)
        throw awsError('ValidationException', `pattern of ${pattern.length} characters`);
      const existing = bus.get(input.Name);
      if (!existing && bus.size >= rulesPerBus(this.region))
        throw awsError('LimitExceededException', `bus ${input.EventBusName} has ${bus.size} rules`);
      bus.set(input.Name, {
        pattern,
        matcher: compileEventPattern(pattern),
        targets: existing?.targets ?? [],
      });
      return {
        RuleArn: `arn:aws:events:${this.region}:${this.accountId}:rule/${input.EventBusName}/${input.Name}`,
      };
    });
    mock.on(ListRulesCommand).callsFake((input) => {
      this.#control('ListRules');
      if ((input.Limit ?? 100) > 100) throw awsError('ValidationException', 'Limit is at most 100');
      const bus = this.#bus(input.EventBusName);
      const names = [...bus.keys()].filter((n) => n.startsWith(input.NamePrefix ?? '')).sort();
      const p = page(names, input.NextToken, input.Limit ?? 100);
      return {
        Rules: p.items.map((n) => ({ Name: n, EventPattern: bus.get(n)?.pattern })),
        NextToken: p.next,
      };
    });
    mock.on(ListTargetsByRuleCommand).callsFake((input) => {
      this.#control('ListTargetsByRule');
      const rule = this.#rule(input.EventBusName, input.Rule);
      const p = page(rule.targets, input.NextToken, input.Limit ?? 100);
      return { Targets: p.items, NextToken: p.next };
    });
    mock.on(PutTargetsCommand).callsFake((input) => {
      this.#control('PutTargets');
      if (input.Targets.length > EVENTBRIDGE.entriesPerPutTargets)
        throw awsError('ValidationException', `${input.Targets.length} entries in one PutTargets`);
      const rule = this.#rule(input.EventBusName, input.Rule);
      const merged = rule.targets.filter((t) => !input.Targets.some((n: { Id: string }) => n.Id === t.Id));
      for (const t of input.Targets) merged.push({ Id: t.Id, Arn: t.Arn });
      if (merged.length > EVENTBRIDGE.targetsPerRule)
        throw awsError('LimitExceededException', `rule ${input.Rule} would have ${merged.length} targets`);
      rule.targets = merged;
      return { FailedEntryCount: 0, FailedEntries: [] };
    });
    mock.on(RemoveTargetsCommand).callsFake((input) => {
      this.#control('RemoveTargets');
      if (input.Ids.length > 100) throw awsError('ValidationException', 'at most 100 ids');
      const rule = this.#rule(input.EventBusName, input.Rule);
      rule.targets = rule.targets.filter((t) => !input.Ids.includes(t.Id));
      return { FailedEntryCount: 0, FailedEntries: [] };
    });
    mock.on(DeleteRuleCommand).callsFake((input) => {
      this.#control('DeleteRule');
      const bus = this.#bus(input.EventBusName);
      const rule = bus.get(input.Name);
      if (rule && rule.targets.length > 0)
        throw awsError('ValidationException', 'Rule can not be deleted since it has targets.');
      bus.delete(input.Name);
      return {};
    });
    mock.on(PutEventsCommand).callsFake((input) => {
      this.gate.pass('PutEvents', putEventsPerSecond(this.region));
      const entries = input.Entries ?? [];
      if (entries.length > EVENTBRIDGE.entriesPerPutEvents)
        throw awsError('ValidationException', `${entries.length} entries in one PutEvents`);
      const bytes = entries.reduce(
        (n: number, e: { Source?: string; DetailType?: string; Detail?: string; Resources?: string[] }) =>
          n +
          Buffer.byteLength(e.Source ?? '') +
          Buffer.byteLength(e.DetailType ?? '') +
          Buffer.byteLength(e.Detail ?? '') +
          (e.Resources ?? []).reduce((m, r) => m + Buffer.byteLength(r), 0),
        0,
      );
      if (bytes > EVENTBRIDGE.putEventsRequestBytes)
        throw awsError('ValidationException', `PutEvents of ${bytes} bytes`);
      for (const e of entries) {
        const detail = JSON.parse(e.Detail ?? '{}') as Record<string, unknown>;
        const event = { source: e.Source, 'detail-type': e.DetailType, detail, account: this.accountId };
        for (const rule of this.#bus(e.EventBusName).values()) {
          if (!rule.matcher(event)) continue;
          for (const t of rule.targets)
            this.deliveries.push({ detailType: e.DetailType ?? '', detail, targetArn: t.Arn });
        }
      }
      return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: 'ev' })) };
    });
    return client;
  }
}

/** An Organization: a root, `ous` OUs under it, accounts spread evenly, plus the management account. */
export class QuotaOrganizations {
  readonly gate: RateGate;
  readonly root = 'r-ab12';
  readonly ous: string[];
  readonly accountsIn = new Map<string, { Id: string; Name: string; Status: string }[]>();
  readonly clock: SimClock;
  constructor(clock: SimClock, opts: { accounts: number; ous: number; managementAccountId: string }) {
    this.clock = clock;
    this.gate = new RateGate(clock);
    this.ous = Array.from({ length: opts.ous }, (_, i) => `ou-ab12-${String(i).padStart(8, '0')}`);
    for (const ou of this.ous) this.accountsIn.set(ou, []);
    this.accountsIn.set(this.root, [{ Id: opts.managementAccountId, Name: 'management', Status: 'ACTIVE' }]);
    for (let i = 0; i < opts.accounts; i++) {
      const id = String(300_000_000_000 + i);
      this.accountsIn
        .get(this.ous[i % opts.ous] as string)
        ?.push({ Id: id, Name: `acct-${i}`, Status: 'ACTIVE' });
    }
  }

  #pageSize(max: number | undefined): number {
    const size = max ?? ORGANIZATIONS.pageSize;
    if (size > ORGANIZATIONS.pageSize)
      throw awsError('InvalidInputException', `MaxResults ${size} is more than ${ORGANIZATIONS.pageSize}`);
    return size;
  }

  client(): OrganizationsClient {
    const client = new OrganizationsClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(ListAccountsCommand).callsFake((input) => {
      this.gate.pass('ListAccounts', ORGANIZATIONS.requestsPerSecond);
      const all = [...this.accountsIn.values()].flat();
      const p = page(all, input.NextToken, this.#pageSize(input.MaxResults));
      return { Accounts: p.items, NextToken: p.next };
    });
    mock.on(ListAccountsForParentCommand).callsFake((input) => {
      this.gate.pass('ListAccountsForParent', ORGANIZATIONS.requestsPerSecond);
      const p = page(
        this.accountsIn.get(input.ParentId) ?? [],
        input.NextToken,
        this.#pageSize(input.MaxResults),
      );
      return { Accounts: p.items, NextToken: p.next };
    });
    mock.on(ListOrganizationalUnitsForParentCommand).callsFake((input) => {
      this.gate.pass('ListOrganizationalUnitsForParent', ORGANIZATIONS.requestsPerSecond);
      const children = input.ParentId === this.root ? this.ous.map((Id) => ({ Id })) : [];
      const p = page(children, input.NextToken, this.#pageSize(input.MaxResults));
      return { OrganizationalUnits: p.items, NextToken: p.next };
    });
    return client;
  }
}
