// Rollout waves and how instance refreshes end: a refresh reported "started" that later fails (its end event's
// report arrives after the update report) halts the release at once; a wave whose refreshes are still running
// when its bake time is over waits for them, a bounded number of steps, then halts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import {
  onBakeElapsed,
  onLaunchTemplateReport,
  REFRESH_WAITS,
  refreshWaitMinutes,
  timerName,
} from '#core/rollout/rollout.ts';
import { sample } from '#events/samples/index.ts';
import { type LaunchTemplateUpdated, LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import type { RolloutRecord } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeOrganization,
  FakePublisher,
  FakeReleaseStore,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore, RecordingTimer } from '#test/support/rollout-fakes.ts';

const CANARY = '200000000001';
const REST = '200000000002';
const REGION = 'eu-west-1';

async function world() {
  const releases = new FakeReleaseStore();
  const { release } = await releases.create({
    stream: 'web-base',
    revision: 'r1',
    regions: [REGION],
    source: { bucket: 'b', key: 'streams/web-base/r1.tar.zst', etag: 'e' },
    uploadedAt: '2026-11-20T10:00:00.000Z',
  } as never);
  const stored = releases.releases.get(release.releaseId);
  if (stored) stored.regions[REGION] = { state: 'announced', updatedAt: '2026-11-20T10:01:00.000Z' };
  const rollouts = new MemoryRolloutStore();
  const record: RolloutRecord = {
    releaseId: release.releaseId,
    stream: 'web-base',
    state: 'rolling',
    waves: [
      {
        name: 'canary',
        accounts: [CANARY],
        bakeMinutes: 10,
        state: 'baking',
        announcedAt: { [REGION]: '2026-11-20T10:01:00.000Z' },
        bakeUntil: '2026-11-20T10:11:00.000Z',
      },
      { name: 'rest', accounts: [REST], bakeMinutes: 10, state: 'pending', announcedAt: {} },
    ],
    images: {},
    version: 0,
  };
  await rollouts.put(record, 0);
  const events = new FakePublisher();
  const timer = new RecordingTimer();
  const clock = new FakeClock('2026-11-20T10:11:00.000Z');
  const deps = {
    config: testConfig(),
    clock,
    logger: new AttributeLogger(),
    releases,
    events,
    organization: new FakeOrganization(),
    rollouts,
    timer,
  };
  const report = (changes: Partial<LaunchTemplateUpdated>): LaunchTemplateUpdated =>
    LaunchTemplateUpdatedDetail.parse({
      ...sample<{ detail: LaunchTemplateUpdated }>('stemcell-launch-template-updated').detail,
      stream: 'web-base',
      revision: 'r1',
      sequence: release.sequence,
      releaseId: release.releaseId,
      accountId: CANARY,
      region: REGION,
      ...changes,
    });
  return { deps, release, rollouts, events, timer, clock, report };
}

const halts = (events: FakePublisher) =>
  events.events
    .filter((e) => e.detailType === 'Release Halted')
    .map((e) => e.detail as { reason: string; accounts: unknown });

describe('Function: recordLaunchTemplateUpdate() with a refresh end', () => {
  it('a Failed end event reported after the "started" update report halts the rolling release', async () => {
    // prepare
    const w = await world();
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started' }));
    assert.equal((await w.rollouts.get(w.release.releaseId))?.state, 'rolling', 'started is no failure');
    // act
    const record = await recordLaunchTemplateUpdate(
      w.deps,
      w.report({
        instanceRefresh: 'failed',
        refresh: { autoScalingGroupName: 'web-asg', instanceRefreshId: 'c613620e' },
      }),
    );
    // assess
    assert.equal(record?.instanceRefresh, 'failed');
    assert.equal(record?.launchTemplates, 1, 'the end of a refresh is no second template');
    const rollout = await w.rollouts.get(w.release.releaseId);
    assert.equal(rollout?.state, 'halted');
    assert.deepEqual(
      rollout?.waves.map((x) => x.state),
      ['halted', 'pending'],
    );
    const halted = halts(w.events);
    assert.equal(halted.length, 1);
    assert.deepEqual(halted[0]?.accounts, [{ accountId: CANARY, region: REGION }]);
    assert.match(String(halted[0]?.reason), /instance refresh failed: 200000000001/);
    // The bake timer that fires later finds nothing to judge: no later wave opens.
    const fired = await onBakeElapsed(w.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: w.release.releaseId,
      wave: 0,
    });
    assert.equal(fired.outcome, 'ignored');
    assert.ok(!w.events.events.some((e) => e.detailType === 'Image Ready'), 'the rest gets nothing');
  });

  it('a Succeeded end event keeps the wave healthy: the next wave opens at the end of the bake time', async () => {
    const w = await world();
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started' }));
    await recordLaunchTemplateUpdate(
      w.deps,
      w.report({
        instanceRefresh: 'succeeded',
        refresh: { autoScalingGroupName: 'web-asg', instanceRefreshId: 'x' },
      }),
    );
    // act
    const fired = await onBakeElapsed(w.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: w.release.releaseId,
      wave: 0,
    });
    // assess
    assert.deepEqual(fired, { outcome: 'next-wave', wave: 'rest' });
    assert.deepEqual(halts(w.events), []);
  });
});

describe('Function: recordLaunchTemplateUpdate() after a resume', () => {
  it("a refresh's late failure in a wave the operator resumed past halts nothing again", async () => {
    // prepare: the canary halted, then an operator resumed past it; the rest is announcing
    const w = await world();
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'failed' }));
    const record = await w.rollouts.get(w.release.releaseId);
    assert.ok(record);
    record.state = 'rolling';
    record.waves[0] = {
      ...(record.waves[0] as RolloutRecord['waves'][number]),
      resumedAt: '2026-11-20T10:12:00.000Z',
    };
    record.waves[1] = { ...(record.waves[1] as RolloutRecord['waves'][number]), state: 'announcing' };
    await w.rollouts.put(record, record.version);
    // act: the end event's report of that failure comes late
    await recordLaunchTemplateUpdate(
      w.deps,
      w.report({
        instanceRefresh: 'failed',
        refresh: { autoScalingGroupName: 'web-asg', instanceRefreshId: 'x' },
      }),
    );
    // assess
    assert.equal((await w.rollouts.get(w.release.releaseId))?.state, 'rolling');
    assert.equal(halts(w.events).length, 1, 'only the first halt');
    const late = w.report({
      instanceRefresh: 'cancelled',
      refresh: { autoScalingGroupName: 'a', instanceRefreshId: 'y' },
    });
    assert.equal(await onLaunchTemplateReport(w.deps, late), false, 'reports no halt');
  });
});

describe('Function: onBakeElapsed() with refreshes still running', () => {
  it('waits in steps while a refresh is "started", then halts after the bound', async () => {
    // prepare: the canary reported, its refresh never ends
    const w = await world();
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started' }));
    const input = { kind: 'stemcell-rollout-timer' as const, releaseId: w.release.releaseId, wave: 0 };
    // act
    const outcomes: string[] = [];
    const reasons: string[] = [];
    let next: typeof input & { wait?: number } = input;
    for (let i = 0; i <= REFRESH_WAITS; i++) {
      const fired = await onBakeElapsed(w.deps, next);
      outcomes.push(fired.outcome);
      if ('reason' in fired) reasons.push(fired.reason);
      const scheduled = w.timer.scheduled.at(-1);
      if (fired.outcome === 'waiting' && scheduled) next = scheduled.input;
      w.clock.t += refreshWaitMinutes({ bakeMinutes: 10 }) * 60_000;
    }
    // assess
    assert.deepEqual(outcomes, [...Array(REFRESH_WAITS).fill('waiting'), 'halted']);
    assert.equal(w.timer.scheduled.length, REFRESH_WAITS);
    assert.equal(w.timer.scheduled[0]?.name, timerName(w.release.releaseId, 0, 1));
    assert.equal(w.timer.scheduled[0]?.at.toISOString(), '2026-11-20T10:16:00.000Z', 'one step: 5 minutes');
    assert.deepEqual(w.timer.scheduled.at(-1)?.input.wait, REFRESH_WAITS);
    const halted = halts(w.events);
    assert.equal(
      halted[0]?.reason,
      `instance refresh still running 60 minutes after the bake time: ${CANARY} in ${REGION}`,
    );
    // Each wait names who is still refreshing and how far along the bound it is, in the result and the log.
    assert.equal(
      reasons[0],
      `waiting for the instance refresh of ${CANARY} in ${REGION} (1/${REFRESH_WAITS})`,
    );
    assert.equal(reasons[REFRESH_WAITS - 1]?.endsWith(`(${REFRESH_WAITS}/${REFRESH_WAITS})`), true);
    assert.deepEqual(w.deps.logger.of('wave waits for instance refreshes'), {
      releaseId: w.release.releaseId,
      wave: 'canary',
      reason: reasons[0],
    });
  });

  it('names every account and region still refreshing, comma-separated', async () => {
    // prepare: two canary accounts, both refreshing
    const w = await world();
    const record = await w.rollouts.get(w.release.releaseId);
    assert.ok(record?.waves[0]);
    record.waves[0].accounts = [CANARY, REST];
    await w.rollouts.put(record, record.version);
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started' }));
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started', accountId: REST }));
    const input = { kind: 'stemcell-rollout-timer' as const, releaseId: w.release.releaseId, wave: 0 };
    // act
    const fired = await onBakeElapsed(w.deps, input);
    // assess
    assert.deepEqual(fired, {
      outcome: 'waiting',
      reason: `waiting for the instance refresh of ${CANARY} in ${REGION}, ${REST} in ${REGION} (1/${REFRESH_WAITS})`,
    });
  });

  it('a refresh that ends during the wait lets the next wave open', async () => {
    const w = await world();
    await recordLaunchTemplateUpdate(w.deps, w.report({ instanceRefresh: 'started' }));
    const input = { kind: 'stemcell-rollout-timer' as const, releaseId: w.release.releaseId, wave: 0 };
    assert.equal((await onBakeElapsed(w.deps, input)).outcome, 'waiting');
    await recordLaunchTemplateUpdate(
      w.deps,
      w.report({
        instanceRefresh: 'succeeded',
        refresh: { autoScalingGroupName: 'web-asg', instanceRefreshId: 'x' },
      }),
    );
    // act
    const fired = await onBakeElapsed(w.deps, w.timer.scheduled[0]?.input ?? input);
    // assess
    assert.deepEqual(fired, { outcome: 'next-wave', wave: 'rest' });
  });

  it('wait steps follow short bake times (seconds in the demo), at most five minutes', () => {
    assert.equal(refreshWaitMinutes({ bakeMinutes: 0.01 }), 0.05);
    assert.equal(refreshWaitMinutes({ bakeMinutes: 2 }), 2);
    assert.equal(refreshWaitMinutes({ bakeMinutes: 60 }), 5);
    assert.ok(timerName('x'.repeat(80), 3, 12).endsWith('-wave-3-wait-12'));
    assert.ok(timerName('x'.repeat(80), 3, 12).length <= 64);
  });
});
