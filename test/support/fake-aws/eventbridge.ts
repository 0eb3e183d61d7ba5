// Stateful fake of EventBridge: PutEvents (recorded, with injectable per-entry failures), rules and targets
// on one bus, the 5-targets-per-rule limit, and NextToken pagination.
import {
  CreateEventBusCommand,
  DeleteRuleCommand,
  EventBridgeClient,
  ListEventBusesCommand,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutRuleCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { awsError, fakeId, page } from './common.ts';

export interface PutEntry {
  Source?: string;
  DetailType?: string;
  Detail?: string;
  EventBusName?: string;
  Resources?: string[];
}

export class FakeEventBridge {
  readonly delivered: PutEntry[] = [];
  readonly rules = new Map<
    string,
    { pattern: string; description?: string; targets: { Id: string; Arn: string }[] }
  >();
  /** Buses made with CreateEventBus, with their own rules (rules of any other bus are in `rules`). */
  readonly buses = new Map<string, FakeEventBridge['rules']>();
  /** Entries to fail on their next send, by DetailType, with how many times. */
  readonly failNext = new Map<string, number>();
  readonly pageSize: number;

  constructor(options: { pageSize?: number } = {}) {
    this.pageSize = options.pageSize ?? 2;
  }

  client(): EventBridgeClient {
    const client = new EventBridgeClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(PutEventsCommand).callsFake((input) => {
      const entries: PutEntry[] = input.Entries ?? [];
      if (entries.length > 10) throw awsError('ValidationException', 'at most 10 entries');
      let failed = 0;
      const results = entries.map((e) => {
        const left = this.failNext.get(e.DetailType ?? '') ?? 0;
        if (left > 0) {
          this.failNext.set(e.DetailType ?? '', left - 1);
          failed++;
          return { ErrorCode: 'InternalFailure', ErrorMessage: 'try again' };
        }
        this.delivered.push(e);
        return { EventId: fakeId('ev') };
      });
      return { FailedEntryCount: failed, Entries: results };
    });
    mock.on(PutRuleCommand).callsFake((input) => {
      const rule = this.rulesOf(input.EventBusName).get(input.Name) ?? { pattern: '', targets: [] };
      rule.pattern = input.EventPattern;
      rule.description = input.Description;
      this.rulesOf(input.EventBusName).set(input.Name, rule);
      return { RuleArn: `arn:aws:events:eu-west-1:111111111111:rule/${input.EventBusName}/${input.Name}` };
    });
    mock.on(ListRulesCommand).callsFake((input) => {
      const rules = this.rulesOf(input.EventBusName);
      const names = [...rules.keys()].filter((n) => n.startsWith(input.NamePrefix ?? '')).sort();
      const p = page(names, input.NextToken, this.pageSize);
      return {
        Rules: p.items.map((n) => ({ Name: n, EventPattern: rules.get(n)?.pattern })),
        NextToken: p.next,
      };
    });
    mock.on(ListTargetsByRuleCommand).callsFake((input) => {
      const rule = this.rulesOf(input.EventBusName).get(input.Rule);
      if (!rule) throw awsError('ResourceNotFoundException');
      const p = page(rule.targets, input.NextToken, this.pageSize);
      return { Targets: p.items, NextToken: p.next };
    });
    mock.on(PutTargetsCommand).callsFake((input) => {
      const rule = this.rulesOf(input.EventBusName).get(input.Rule);
      if (!rule) throw awsError('ResourceNotFoundException');
      const merged = [
        ...rule.targets.filter((t) => !input.Targets.some((n: { Id: string }) => n.Id === t.Id)),
      ];
      for (const t of input.Targets) merged.push({ Id: t.Id, Arn: t.Arn });
      if (merged.length > 5) throw awsError('LimitExceededException', 'a rule can have at most 5 targets');
      rule.targets = merged;
      return { FailedEntryCount: 0, FailedEntries: [] };
    });
    mock.on(RemoveTargetsCommand).callsFake((input) => {
      const rule = this.rulesOf(input.EventBusName).get(input.Rule);
      if (!rule) throw awsError('ResourceNotFoundException');
      rule.targets = rule.targets.filter((t) => !input.Ids.includes(t.Id));
      return { FailedEntryCount: 0, FailedEntries: [] };
    });
    mock.on(DeleteRuleCommand).callsFake((input) => {
      const rule = this.rulesOf(input.EventBusName).get(input.Name);
      if (rule && rule.targets.length > 0)
        throw awsError('ValidationException', 'Rule can not be deleted since it has targets.');
      this.rulesOf(input.EventBusName).delete(input.Name);
      return {};
    });
    mock.on(ListEventBusesCommand).callsFake((input) => {
      const names = [...this.buses.keys()].filter((n) => n.startsWith(input.NamePrefix ?? '')).sort();
      const p = page(names, input.NextToken, this.pageSize);
      return { EventBuses: p.items.map((Name) => ({ Name })), NextToken: p.next };
    });
    mock.on(CreateEventBusCommand).callsFake((input) => {
      if (this.buses.has(input.Name)) throw awsError('ResourceAlreadyExistsException');
      this.buses.set(input.Name, new Map());
      return { EventBusArn: `arn:aws:events:eu-west-1:111111111111:event-bus/${input.Name}` };
    });
    return client;
  }

  rulesOf(bus: string | undefined): FakeEventBridge['rules'] {
    return (bus && this.buses.get(bus)) || this.rules;
  }

  /** Rules of every bus. */
  allRules(): { pattern: string; targets: { Id: string; Arn: string }[] }[] {
    return [...this.rules.values(), ...[...this.buses.values()].flatMap((b) => [...b.values()])];
  }
}
