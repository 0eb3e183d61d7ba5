// sync-subscribers at 10,000 accounts in 40 OUs with 5 audiences, through the AWS adapters, over a fake AWS
// that enforces the default quotas (rules per bus, targets per rule, entries per request, buses per account,
// pattern and policy sizes, per-API rates, page sizes) and counts calls; simulated time holds the run to
// Lambda's 15 minutes. Then announce's fan-out publisher: each account hears only its audience's streams.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventBridgeBusRules, EventBridgeFanoutBuses, EventBridgePublisher } from '#aws/event-bus.ts';
import { AwsOrganizationDirectory } from '#aws/organization.ts';
import type { SyncSubscribersDeps } from '#core/deps.ts';
import { fanOutPublisher } from '#core/members/fan-out.ts';
import { syncSubscribers } from '#core/members/forwarding-rules.ts';
import {
  ApiPacer,
  EVENTBRIDGE,
  invocationsPerSecond,
  LAMBDA_TIMEOUT_SECONDS,
  ORGANIZATIONS,
  rulesPerBus,
} from '#core/members/quotas.ts';
import { stemcellEvent } from '#core/model/emit.ts';
import { imageReadyDetail, RecordingLogger, testConfig } from '#test/support/core-fakes.ts';
import {
  EVENTBRIDGE_WRITES,
  QuotaEventBridge,
  QuotaOrganizations,
  SimClock,
} from '#test/support/fake-aws/quota-world.ts';

const HOME = '111111111111';
const ACCOUNTS = 10_000;
const OUS = 40;

/** 5 audiences: every account gets `base`; OUs 0–9, 10–19, 20–29 and 30–34 get one stream more each. */
function streams(ous: string[]) {
  const stream = (scope: 'organization' | { ous: string[] }) => ({
    regions: ['eu-south-1'],
    bootCheck: { mode: 'none', allowUnverified: true },
    subscribers: { scope },
  });
  return {
    base: stream('organization'),
    web: stream({ ous: ous.slice(0, 10) }),
    db: stream({ ous: ous.slice(10, 20) }),
    gpu: stream({ ous: ous.slice(20, 30) }),
    edge: stream({ ous: ous.slice(30, 35) }),
  };
}

function world(region: string) {
  const clock = new SimClock();
  const eventBridge = new QuotaEventBridge(clock, region, HOME);
  eventBridge.addBus('stemcell');
  const organizations = new QuotaOrganizations(clock, {
    accounts: ACCOUNTS,
    ous: OUS,
    managementAccountId: HOME,
  });
  const client = eventBridge.client();
  const eventsPacer = new ApiPacer(EVENTBRIDGE.controlPlanePerSecond, clock.nowMs, clock.sleep);
  const fanout = new EventBridgeFanoutBuses({
    namePrefix: 'stemcell-fanout-',
    region,
    client,
    pacer: eventsPacer,
    targetRoleArn: `arn:aws:iam::${HOME}:role/stemcell-subscriber-targets`,
  });
  const deps = {
    config: testConfig({ homeRegion: region, streams: streams(organizations.ous) }),
    clock: { now: clock.now },
    logger: new RecordingLogger(),
    organization: new AwsOrganizationDirectory({
      client: organizations.client(),
      pacer: new ApiPacer(ORGANIZATIONS.requestsPerSecond, clock.nowMs, clock.sleep),
    }),
    rules: new EventBridgeBusRules({ eventBusName: 'stemcell', client, pacer: eventsPacer }),
    fanout,
    ownAccountId: HOME,
    memberBusName: 'stemcell-member',
  } satisfies SyncSubscribersDeps;
  const lambdaDeadline = () => new Date(clock.ms + (LAMBDA_TIMEOUT_SECONDS - 60) * 1000);
  return { clock, eventBridge, organizations, deps, fanout, client, lambdaDeadline };
}

function targetsByAccount(eventBridge: QuotaEventBridge): Map<string, string[]> {
  const where = new Map<string, string[]>();
  for (const [bus, rules] of eventBridge.buses) {
    for (const [name, rule] of rules) {
      for (const t of rule.targets) where.set(t.Id, [...(where.get(t.Id) ?? []), `${bus}/${name}`]);
    }
  }
  return where;
}

describe('sync-subscribers at 10,000 accounts (quota-enforcing fake)', () => {
  it('fits eu-south-1 (100 rules per bus): 2,000 rules on 20 fan-out buses in one run; a second run writes nothing', async (t) => {
    // prepare
    const { clock, eventBridge, organizations, deps, lambdaDeadline } = world('eu-south-1');
    // act
    const first = await syncSubscribers(deps, { stopBy: lambdaDeadline() });
    const firstSeconds = clock.elapsedSeconds;
    const writes = eventBridge.gate.count(EVENTBRIDGE_WRITES);
    // assess: converged, every account on exactly one rule of its audience, every quota held
    assert.equal(first.complete, true);
    assert.ok(firstSeconds < LAMBDA_TIMEOUT_SECONDS - 60, `first run took ${firstSeconds} simulated s`);
    const where = targetsByAccount(eventBridge);
    assert.equal(where.size, ACCOUNTS, 'every member account is targeted, the home account is not');
    assert.ok(!where.has(HOME));
    assert.ok(
      [...where.values()].every((rules) => rules.length === 1),
      'no account on two rules',
    );
    assert.equal(first.joined.length, ACCOUNTS);
    assert.equal(first.rules.length, 2_000);
    const fanoutBuses = [...eventBridge.buses.keys()].filter((b) => b.startsWith('stemcell-fanout-'));
    assert.equal(fanoutBuses.length, 20);
    for (const bus of fanoutBuses)
      assert.ok((eventBridge.buses.get(bus)?.size ?? 0) <= rulesPerBus('eu-south-1'));
    assert.equal(eventBridge.buses.get('stemcell')?.size, 0, 'no subscriber rule on the central bus');
    assert.equal(eventBridge.gate.throttled + organizations.gate.throttled, 0, 'no call over its rate');
    assert.equal(
      eventBridge.gate.calls.get('PutPermission') ?? 0,
      0,
      'no bus policy grows with the accounts',
    );
    assert.equal(eventBridge.gate.calls.get('PutRule'), 2_000);
    assert.equal(eventBridge.gate.calls.get('PutTargets'), 2_000, 'one PutTargets per rule');
    assert.equal(organizations.gate.calls.get('ListAccounts'), ACCOUNTS / ORGANIZATIONS.pageSize + 1);
    assert.ok(writes >= 4_000);

    // act: a second run against what the first left
    clock.sleep(60_000);
    const start = clock.elapsedSeconds;
    const second = await syncSubscribers(deps, { stopBy: lambdaDeadline() });
    // assess
    assert.equal(second.complete, true);
    assert.equal(eventBridge.gate.count(EVENTBRIDGE_WRITES), writes, 'the second run writes nothing');
    assert.deepEqual([second.added, second.removed, second.joined.length], [0, 0, 0]);
    assert.ok(clock.elapsedSeconds - start < LAMBDA_TIMEOUT_SECONDS - 60);
    t.diagnostic(
      `simulated: first run ${firstSeconds} s, second ${clock.elapsedSeconds - start} s; calls ${JSON.stringify(Object.fromEntries(eventBridge.gate.calls))} ${JSON.stringify(Object.fromEntries(organizations.gate.calls))}`,
    );
  });

  it('stopped by the Lambda deadline half-way, resumes on the next run where it stopped, then holds still', async () => {
    // prepare: a deadline that falls during the writes
    const { clock, eventBridge, deps } = world('eu-south-1');
    // act
    const cut = await syncSubscribers(deps, { stopBy: new Date(clock.ms + 220_000) });
    const afterCut = targetsByAccount(eventBridge).size;
    const resumed = await syncSubscribers(deps, { stopBy: new Date(clock.ms + 840_000) });
    const writes = eventBridge.gate.count(EVENTBRIDGE_WRITES);
    const still = await syncSubscribers(deps, { stopBy: new Date(clock.ms + 840_000) });
    // assess
    assert.equal(cut.complete, false);
    assert.ok(afterCut > 0 && afterCut < ACCOUNTS, `after the cut ${afterCut} accounts were targeted`);
    assert.equal(resumed.complete, true);
    assert.equal(
      resumed.joined.length,
      ACCOUNTS - afterCut,
      'the second run adds only what the first had not',
    );
    assert.equal(targetsByAccount(eventBridge).size, ACCOUNTS);
    assert.ok([...targetsByAccount(eventBridge).values()].every((r) => r.length === 1));
    assert.equal(still.added + still.removed, 0);
    assert.equal(eventBridge.gate.count(EVENTBRIDGE_WRITES), writes);
  });

  it('fits us-east-1 (300 rules per bus) on 7 buses, and announce reaches each account with its streams only', async () => {
    // prepare
    const { clock, eventBridge, deps, client, lambdaDeadline, fanout } = world('us-east-1');
    await syncSubscribers(deps, { stopBy: lambdaDeadline() });
    const publisher = fanOutPublisher(
      new EventBridgePublisher({ client, sleep: clock.sleep }),
      fanout,
      'stemcell',
    );
    // act: Image Ready for `web` (OUs 0–9) and for `base` (everyone)
    await publisher.publish([
      stemcellEvent('Image Ready', imageReadyDetail(7, 'web', 'us-east-1'), 'stemcell'),
      stemcellEvent('Image Ready', imageReadyDetail(8, 'base', 'us-east-1'), 'stemcell'),
    ]);
    // assess
    assert.equal([...eventBridge.buses.keys()].filter((b) => b.startsWith('stemcell-fanout-')).length, 7);
    const heard = (stream: string) =>
      eventBridge.deliveries.filter((d) => d.detail.stream === stream).map((d) => d.targetArn.split(':')[4]);
    const web = heard('web');
    assert.equal(web.length, 2_500, 'web: the 2,500 accounts of OUs 0–9, once each');
    assert.equal(new Set(web).size, 2_500);
    assert.ok(
      web.every((id) => (Number(id) - 300_000_000_000) % OUS < 10),
      'only accounts of OUs 0–9',
    );
    assert.equal(new Set(heard('base')).size, ACCOUNTS);
    assert.equal(heard('base').length, ACCOUNTS);
    // The invocations one Image Ready costs, at the slowest Region's rate: within the fan-out's time budget.
    assert.ok(ACCOUNTS / invocationsPerSecond('af-south-1') < 15);
  });
});
