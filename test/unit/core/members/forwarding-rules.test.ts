import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import { planSubscriberRules, subscriberPattern, syncSubscribers } from '#core/members/forwarding-rules.ts';
import {
  accountIds,
  FakeBusRules,
  FakeClock,
  FakeOrganization,
  OU_A,
  OU_B,
  RecordingLogger,
  testConfig,
} from '#test/support/core-fakes.ts';

function setup(ids: string[], config = testConfig()) {
  const organization = new FakeOrganization(ids.map((id, i) => ({ id, ou: i % 2 === 0 ? OU_A : OU_B })));
  const rules = new FakeBusRules();
  const deps = {
    config,
    clock: new FakeClock(),
    logger: new RecordingLogger(),
    organization,
    rules,
  } satisfies SyncSubscribersDeps;
  return { deps, organization, rules };
}

describe('Function: syncSubscribers()', () => {
  it('spreads 12 accounts over 3 rules of at most 5 targets, each targeting the member default bus', async () => {
    // prepare
    const { deps, rules } = setup(accountIds(12));
    // act
    const result = await syncSubscribers(deps);
    // assess
    assert.deepEqual(
      result.rules.map((r) => [r.name, r.accountIds.length]),
      [
        ['stemcell-subscribers-1', 5],
        ['stemcell-subscribers-2', 5],
        ['stemcell-subscribers-3', 2],
      ],
    );
    const rule = rules.rules.get('stemcell-subscribers-1');
    assert.deepEqual(JSON.parse(rule?.eventPattern ?? ''), {
      source: ['stemcell'],
      'detail-type': ['Image Ready', 'Release Complete'],
    });
    assert.deepEqual(rule?.targets[0], {
      id: '200000000001',
      arn: 'arn:aws:events:eu-west-1:200000000001:event-bus/default',
    });
  });

  it("never targets the central bus's own account, which Organizations lists with the others", async () => {
    // prepare: the home (publisher) account is one of the Organization's accounts
    const ids = accountIds(6);
    const home = ids[2] as string;
    const { deps, rules } = setup(ids);
    // act
    const result = await syncSubscribers({ ...deps, ownAccountId: home, memberBusName: 'stemcell-member' });
    // assess
    const targets = [...rules.rules.values()].flatMap((r) => r.targets);
    assert.equal(targets.length, 5);
    assert.ok(!targets.some((t) => t.id === home || t.arn.includes(`:${home}:`)), JSON.stringify(targets));
    assert.ok(!result.rules.some((r) => r.accountIds.includes(home)));
    assert.ok(targets.every((t) => t.arn.endsWith(':event-bus/stemcell-member')));
  });

  it('adding an account moves no existing account to another rule', async () => {
    // prepare
    const { deps, organization, rules } = setup(accountIds(12));
    await syncSubscribers(deps);
    const before = rules.assignment();
    rules.calls = [];
    // act
    organization.add('100000000000', OU_A); // sorts before all others
    const result = await syncSubscribers(deps);
    // assess
    const after = rules.assignment();
    for (const [account, rule] of before)
      assert.equal(after.get(account), rule, `${account} stays on ${rule}`);
    assert.equal(after.get('100000000000'), 'stemcell-subscribers-3');
    assert.equal(result.removed, 0);
    assert.deepEqual(rules.calls, ['putTargets stemcell-subscribers-3 100000000000']);
  });

  it('a removed account stops receiving, and its place is filled by the next new account', async () => {
    // prepare
    const { deps, organization, rules } = setup(accountIds(12));
    await syncSubscribers(deps);
    // act
    organization.remove('200000000003');
    await syncSubscribers(deps);
    const afterRemoval = rules.assignment();
    organization.add('300000000000', OU_B);
    await syncSubscribers(deps);
    // assess
    assert.equal(afterRemoval.has('200000000003'), false);
    assert.equal(rules.assignment().get('300000000000'), 'stemcell-subscribers-1');
    assert.equal(rules.rules.size, 3);
  });

  it('suspended accounts receive nothing; an emptied rule is deleted', async () => {
    // prepare
    const { deps, organization, rules } = setup(accountIds(6));
    await syncSubscribers(deps);
    // act
    organization.remove('200000000006');
    organization.add('200000000006', OU_B, 'SUSPENDED');
    const result = await syncSubscribers(deps);
    // assess
    assert.deepEqual(result.deletedRules, ['stemcell-subscribers-2']);
    assert.deepEqual([...rules.rules.keys()], ['stemcell-subscribers-1']);
  });

  it('a second run with nothing changed makes no call that changes anything', async () => {
    const { deps, rules } = setup(accountIds(7));
    await syncSubscribers(deps);
    rules.calls = [];
    await syncSubscribers(deps);
    assert.deepEqual(rules.calls, []);
  });

  it('accounts outside a stream scoped to OUs do not receive that stream', async () => {
    // prepare: web-base goes to everyone, db-base only to OU_A
    const config = testConfig({
      streams: {
        'web-base': { regions: ['eu-west-1'] },
        'db-base': { regions: ['eu-west-1'], subscribers: { scope: { ous: [OU_A] } } },
      },
    });
    const { deps, rules } = setup(accountIds(4), config);
    // act
    await syncSubscribers(deps);
    // assess
    const patterns = new Map(
      [...rules.rules.values()].map((r) => [r.targets.map((t) => t.id).join(','), r.eventPattern]),
    );
    assert.equal(patterns.get('200000000001,200000000003'), subscriberPattern());
    assert.equal(patterns.get('200000000002,200000000004'), subscriberPattern(['web-base']));
  });
});

describe('Function: planSubscriberRules()', () => {
  it('treats a pattern AWS returns with other key order as the same rule', () => {
    const reordered = JSON.stringify({
      'detail-type': ['Image Ready', 'Release Complete'],
      source: ['stemcell'],
    });
    const plan = planSubscriberRules(
      [
        {
          name: 'stemcell-subscribers-1',
          eventPattern: reordered,
          targets: [{ id: '200000000001', arn: 'arn:aws:events:eu-west-1:200000000001:event-bus/default' }],
        },
      ],
      [{ accountIds: ['200000000001'] }],
      { homeRegion: 'eu-west-1', maxTargetsPerRule: 5 },
    );
    assert.deepEqual(plan.deleteRules, []);
    assert.deepEqual(
      plan.rules.map((r) => [r.name, r.add.length, r.remove.length, r.create]),
      [['stemcell-subscribers-1', 0, 0, false]],
    );
  });

  it('ignores rules that are not stemcell-subscribers-<n>', () => {
    const plan = planSubscriberRules(
      [{ name: 'stemcell-subscribers-extra', eventPattern: '{}', targets: [] }],
      [{ accountIds: ['200000000001'] }],
      { homeRegion: 'eu-west-1', maxTargetsPerRule: 5 },
    );
    assert.deepEqual(
      plan.rules.map((r) => r.name),
      ['stemcell-subscribers-1'],
    );
    assert.deepEqual(plan.deleteRules, []);
  });
});
