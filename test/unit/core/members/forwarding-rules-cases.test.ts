// sync-subscribers beyond the main path (forwarding-rules.test.ts, guards.test.ts): which accounts get which
// streams, where accounts land when rules already exist (gaps, numbering, order, rules of streams that are
// gone), and what the run reports and writes on the central bus.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import {
  desiredAudiences,
  planSubscriberRules,
  subscriberPattern,
  syncSubscribers,
} from '#core/members/forwarding-rules.ts';
import { memberBusArn } from '#core/model/naming.ts';
import type { BusRules } from '#ports';
import {
  AttributeLogger,
  accountIds,
  FakeBusRules,
  FakeClock,
  FakeOrganization,
  OU_A,
  OU_B,
  testConfig,
} from '#test/support/core-fakes.ts';

const REGION = 'eu-west-1';
const OU_C = 'ou-ab12-cccccccc';
const opts = { homeRegion: REGION, maxTargetsPerRule: 5 };
const rule = (n: number, ids: string[], eventPattern = subscriberPattern()) => ({
  name: `stemcell-subscribers-${n}`,
  eventPattern,
  targets: ids.map((id) => ({ id, arn: memberBusArn(REGION, id) })),
});

function setup(
  accounts: Array<{ id: string; ou: string }>,
  streams?: Record<string, Record<string, unknown>>,
) {
  const rules = new FakeBusRules();
  const deps = {
    config: testConfig(streams ? { streams } : {}),
    clock: new FakeClock(),
    logger: new AttributeLogger(),
    organization: new FakeOrganization(accounts),
    rules,
  } satisfies SyncSubscribersDeps;
  return { deps, rules };
}

describe('Function: subscriberPattern()', () => {
  it('is the same pattern whatever order the streams come in', () => {
    assert.equal(subscriberPattern(['web-base', 'db-base']), subscriberPattern(['db-base', 'web-base']));
    assert.deepEqual(JSON.parse(subscriberPattern(['web-base', 'db-base'])).detail, {
      stream: ['db-base', 'web-base'],
    });
  });
});

describe('Function: desiredAudiences()', () => {
  it('gives an account in two scoped OUs each stream once, and groups accounts by the streams they get', async () => {
    // prepare: web-base to everyone; db-base to OU A and OU B; api-base to OU B
    const [a, b, c] = accountIds(3);
    const { deps } = setup(
      [
        { id: c!, ou: OU_C },
        { id: b!, ou: OU_B },
        { id: a!, ou: OU_A },
      ],
      {
        'web-base': { regions: [REGION] },
        'db-base': { regions: [REGION], subscribers: { scope: { ous: [OU_A, OU_B] } } },
        'api-base': { regions: [REGION], subscribers: { scope: { ous: [OU_B] } } },
      },
    );
    // act
    const audiences = await desiredAudiences(deps);
    // assess: b gets every stream (no filter); a gets db-base and web-base; c web-base only (in the order of
    // the stream lists, which is the order of the rules they get)
    assert.deepEqual(audiences, [
      { accountIds: [b] },
      { streams: ['db-base', 'web-base'], accountIds: [a] },
      { streams: ['web-base'], accountIds: [c] },
    ]);
  });

  it('keeps apart accounts whose stream lists would read the same run together ("base", "web" and "baseweb")', async () => {
    // prepare
    const [a, b] = accountIds(2);
    const { deps } = setup(
      [
        { id: a!, ou: OU_A },
        { id: b!, ou: OU_B },
      ],
      {
        base: { regions: [REGION], subscribers: { scope: { ous: [OU_A] } } },
        web: { regions: [REGION], subscribers: { scope: { ous: [OU_A] } } },
        baseweb: { regions: [REGION], subscribers: { scope: { ous: [OU_B] } } },
      },
    );
    // act
    const audiences = await desiredAudiences(deps);
    // assess
    assert.deepEqual(audiences, [
      { streams: ['base', 'web'], accountIds: [a] },
      { streams: ['baseweb'], accountIds: [b] },
    ]);
  });

  it('lists the accounts of an audience in order, whatever order Organizations returns them in', async () => {
    // prepare
    const ids = accountIds(4);
    const { deps } = setup([...ids].reverse().map((id) => ({ id, ou: OU_A })));
    // act
    const audiences = await desiredAudiences(deps);
    // assess
    assert.deepEqual(audiences, [{ accountIds: ids }]);
  });

  it('asks Organizations about each scoped OU once, however many streams name it', async () => {
    // prepare
    const [a, b] = accountIds(2);
    const { deps } = setup(
      [
        { id: a!, ou: OU_A },
        { id: b!, ou: OU_B },
      ],
      {
        'web-base': { regions: [REGION], subscribers: { scope: { ous: [OU_A] } } },
        'db-base': { regions: [REGION], subscribers: { scope: { ous: [OU_A, OU_B] } } },
      },
    );
    const asked: string[] = [];
    const listAccountsInOu = deps.organization.listAccountsInOu.bind(deps.organization);
    deps.organization.listAccountsInOu = async (ou: string) => {
      asked.push(ou);
      return listAccountsInOu(ou);
    };
    // act
    const audiences = await desiredAudiences(deps);
    // assess
    assert.deepEqual(asked.sort(), [OU_A, OU_B]);
    assert.deepEqual(audiences, [{ streams: ['db-base'], accountIds: [b] }, { accountIds: [a] }]);
  });
});

describe('Function: planSubscriberRules()', () => {
  it('fills the lowest-numbered rule first, whatever order the bus lists the rules in', () => {
    // prepare: rules 2 and 1 with room for one more each, listed 2 first
    const ids = accountIds(9);
    const existing = [rule(2, ids.slice(4, 8)), rule(1, ids.slice(0, 4))];
    // act
    const plan = planSubscriberRules(existing, [{ accountIds: ids }], opts);
    // assess
    assert.deepEqual(
      plan.rules.map((r) => [r.name, r.add.map((t) => t.id)]),
      [
        ['stemcell-subscribers-1', [ids[8]]],
        ['stemcell-subscribers-2', []],
      ],
    );
  });

  it('numbers a new rule with the first free number', () => {
    // prepare: rules 1 and 3 are full
    const ids = accountIds(11);
    const existing = [rule(1, ids.slice(0, 5)), rule(3, ids.slice(5, 10))];
    // act
    const plan = planSubscriberRules(existing, [{ accountIds: ids }], opts);
    // assess
    assert.deepEqual(
      plan.rules.map((r) => [r.name, r.create, r.targets.map((t) => t.id)]),
      [
        ['stemcell-subscribers-1', false, ids.slice(0, 5)],
        ['stemcell-subscribers-2', true, [ids[10]]],
        ['stemcell-subscribers-3', false, ids.slice(5, 10)],
      ],
    );
  });

  it('empties and deletes a rule whose audience no longer exists, and moves its accounts to their new audience', () => {
    // prepare: rule 1 forwarded db-base only, a stream that is gone; its accounts now get every stream
    const [a, b] = accountIds(2);
    const existing = [rule(1, [a!, b!], subscriberPattern(['db-base']))];
    // act
    const plan = planSubscriberRules(existing, [{ accountIds: [a!, b!] }], opts);
    // assess
    assert.deepEqual(plan.deleteRules, ['stemcell-subscribers-1']);
    assert.deepEqual(plan.rules, [
      {
        name: 'stemcell-subscribers-1',
        eventPattern: subscriberPattern(['db-base']),
        create: false,
        add: [],
        remove: [a, b],
        targets: [],
      },
      {
        name: 'stemcell-subscribers-2',
        eventPattern: subscriberPattern(),
        create: true,
        add: [a, b].map((id) => ({ id, arn: memberBusArn(REGION, id!) })),
        remove: [],
        targets: [a, b].map((id) => ({ id, arn: memberBusArn(REGION, id!) })),
      },
    ]);
  });

  it('keeps rules of different audiences apart and matches each existing rule to its own audience', () => {
    // prepare: rule 1 holds the db-base audience, rule 2 the everything audience; one more of each
    const [a, b, c, d] = accountIds(4);
    const dbOnly = subscriberPattern(['db-base']);
    const existing = [rule(1, [a!], dbOnly), rule(2, [b!])];
    // act
    const plan = planSubscriberRules(
      existing,
      [{ streams: ['db-base'], accountIds: [a!, c!] }, { accountIds: [b!, d!] }],
      opts,
    );
    // assess
    assert.deepEqual(
      plan.rules.map((r) => [r.name, r.eventPattern, r.targets.map((t) => t.id), r.remove]),
      [
        ['stemcell-subscribers-1', dbOnly, [a, c], []],
        ['stemcell-subscribers-2', subscriberPattern(), [b, d], []],
      ],
    );
    assert.deepEqual(plan.deleteRules, []);
  });

  it('targets the named member bus', () => {
    const plan = planSubscriberRules([], [{ accountIds: ['200000000001'] }], {
      ...opts,
      memberBusName: 'stemcell-member',
    });
    assert.deepEqual(plan.rules[0]?.targets, [
      { id: '200000000001', arn: 'arn:aws:events:eu-west-1:200000000001:event-bus/stemcell-member' },
    ]);
  });

  it('spreads a large audience over full rules of the limit the bus has', () => {
    const ids = accountIds(7);
    const plan = planSubscriberRules([], [{ accountIds: ids }], { ...opts, maxTargetsPerRule: 3 });
    assert.deepEqual(
      plan.rules.map((r) => r.targets.map((t) => t.id)),
      [ids.slice(0, 3), ids.slice(3, 6), ids.slice(6)],
    );
  });
});

describe('Function: syncSubscribers()', () => {
  it('reports what it changed: counts, created and deleted rules, the accounts that joined; and logs it', async () => {
    // prepare: rule 1 holds a, b and an account that left; rule 9 forwards a stream that is gone
    const [a, b, gone, c] = accountIds(4);
    const { deps, rules } = setup([
      { id: a!, ou: OU_A },
      { id: b!, ou: OU_A },
      { id: c!, ou: OU_A },
    ]);
    rules.rules.set('stemcell-subscribers-1', rule(1, [a!, b!, gone!]));
    rules.rules.set('stemcell-subscribers-9', rule(9, [], subscriberPattern(['db-base'])));
    // act
    const result = await syncSubscribers(deps);
    // assess
    const expected = {
      rules: [{ name: 'stemcell-subscribers-1', accountIds: [a, b, c] }],
      joined: [c],
      added: 1,
      removed: 1,
      createdRules: [],
      deletedRules: ['stemcell-subscribers-9'],
    };
    assert.deepEqual(result, expected);
    assert.deepEqual([...rules.rules.keys()], ['stemcell-subscribers-1']);
    assert.deepEqual(deps.logger.of('subscriber rules reconciled'), expected);
  });

  it('creates a rule with the pattern and a description that names who manages it, then its targets', async () => {
    // prepare
    const { deps, rules } = setup([{ id: '200000000001', ou: OU_A }]);
    const put: string[][] = [];
    const putRule = rules.putRule.bind(rules);
    (rules as BusRules).putRule = async (name, eventPattern, description) => {
      put.push([name, eventPattern, description]);
      return putRule(name, eventPattern);
    };
    // act
    const result = await syncSubscribers(deps);
    // assess
    assert.deepEqual(put, [
      [
        'stemcell-subscribers-1',
        subscriberPattern(),
        'stemcell: forwards release events to member accounts (managed by sync-subscribers)',
      ],
    ]);
    assert.deepEqual(rules.calls, [
      'putRule stemcell-subscribers-1',
      'putTargets stemcell-subscribers-1 200000000001',
    ]);
    assert.deepEqual(result.createdRules, ['stemcell-subscribers-1']);
    assert.deepEqual(result.joined, ['200000000001']);
    assert.equal(result.added, 1);
  });

  it('lists the accounts that joined in order, across rules of different audiences', async () => {
    // prepare: web-base goes to OU A, db-base to everyone. Rule 1 holds an OU A account (all streams), rule 2 an
    // OU B account (db-base only); a new OU A account (…02) joins rule 1, a new OU B account (…01) rule 2
    const ids = accountIds(9);
    const { deps, rules } = setup(
      [
        { id: ids[8]!, ou: OU_A },
        { id: ids[7]!, ou: OU_B },
        { id: ids[1]!, ou: OU_A },
        { id: ids[0]!, ou: OU_B },
      ],
      {
        'web-base': { regions: [REGION], subscribers: { scope: { ous: [OU_A] } } },
        'db-base': { regions: [REGION] },
      },
    );
    rules.rules.set('stemcell-subscribers-1', rule(1, [ids[8]!]));
    rules.rules.set('stemcell-subscribers-2', rule(2, [ids[7]!], subscriberPattern(['db-base'])));
    // act
    const result = await syncSubscribers(deps);
    // assess
    assert.deepEqual(
      result.rules.map((r) => [r.name, r.accountIds]),
      [
        ['stemcell-subscribers-1', [ids[8], ids[1]]],
        ['stemcell-subscribers-2', [ids[7], ids[0]]],
      ],
    );
    assert.deepEqual(result.joined, [ids[0], ids[1]]);
  });

  it('counts every target it removes and every one it puts, across rules', async () => {
    // prepare: 6 on rule 1 (one too many), and two accounts that left on rule 2
    const ids = accountIds(8);
    const { deps, rules } = setup(ids.slice(0, 6).map((id) => ({ id, ou: OU_A })));
    rules.rules.set('stemcell-subscribers-1', rule(1, ids.slice(0, 6)));
    rules.rules.set('stemcell-subscribers-2', rule(2, ids.slice(6)));
    // act
    const result = await syncSubscribers(deps);
    // assess: rule 1 gives up its sixth, rule 2 loses the two that left and takes the sixth
    assert.equal(result.removed, 3);
    assert.equal(result.added, 1);
    assert.deepEqual(result.joined, []);
    assert.deepEqual(
      result.rules.map((r) => [r.name, r.accountIds]),
      [
        ['stemcell-subscribers-1', ids.slice(0, 5)],
        ['stemcell-subscribers-2', [ids[5]]],
      ],
    );
  });
});
