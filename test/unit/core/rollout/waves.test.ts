// Release waves over in-memory ports: who hears "Image Ready" when, when a wave bakes and what its timer
// carries, halts (by health or by a failed instance refresh), resume and abort, and what the reconciler may
// re-deliver. The bus, store and timer are fakes, so every event and every record is looked at directly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReleaseNotFoundError } from '#core/model/errors.ts';
import {
  abortRelease,
  admits,
  halt,
  mayReannounce,
  onBakeElapsed,
  onLaunchTemplateReport,
  publishImageReady,
  type RolloutDeps,
  RolloutStateError,
  releaseAudience,
  releaseByRevision,
  resolveWaves,
  resumeRelease,
  rolloutFinished,
  rolloutSummary,
  timerName,
  waveHealth,
} from '#core/rollout/rollout.ts';
import type { ImageReady, LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { Release, RolloutRecord, WaveRecord } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeOrganization,
  FakePublisher,
  FakeReleaseStore,
  imageReadyDetail,
  OU_A,
  OU_B,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore, RecordingTimer } from '#test/support/rollout-fakes.ts';

const EU = 'eu-west-1';
const US = 'us-east-1';
const A1 = '200000000001';
const A2 = '200000000002';
const A3 = '200000000003';
const A4 = '200000000004';
const ALARM = 'arn:aws:cloudwatch:eu-west-1:200000000000:alarm:canary-5xx';

const TWO_WAVES = [
  { name: 'canary', accounts: [A1], bakeMinutes: 30 },
  { name: 'rest', bakeMinutes: 60 },
];

function setup(
  options: { waves?: unknown[] | null; regions?: string[]; scope?: unknown; alarm?: 'OK' | 'ALARM' } = {},
) {
  const regions = options.regions ?? [EU, US];
  const waves = options.waves === undefined ? TWO_WAVES : options.waves;
  const config = testConfig({
    streams: {
      'web-base': {
        regions,
        sharing: { organization: true },
        subscribers: { scope: options.scope ?? 'organization' },
        bootCheck: { mode: 'none', allowUnverified: true },
        ...(waves ? { rollout: { waves } } : {}),
      },
    },
  });
  const alarm = { value: options.alarm ?? 'OK' };
  const deps = {
    config,
    clock: new FakeClock(),
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    organization: new FakeOrganization([
      { id: A1, ou: OU_A },
      { id: A2, ou: OU_B },
      { id: A3, ou: OU_B },
    ]),
    rollouts: new MemoryRolloutStore(),
    timer: new RecordingTimer(),
    alarms: { state: async () => alarm.value as 'OK' | 'ALARM' },
  } satisfies RolloutDeps;
  const release = deps.releases.seed('web-base', 'r1', regions);
  return { deps, release, alarm };
}

const detail = (region: string): ImageReady => imageReadyDetail(1, 'web-base', region);
const ready = (c: ReturnType<typeof setup>) =>
  c.deps.events.ofType('Image Ready').map((e) => {
    const d = e.detail as ImageReady;
    return { region: d.region, audience: d.audience, resources: e.resources };
  });
const record = async (c: ReturnType<typeof setup>) => {
  const r = await c.deps.rollouts.get(c.release.releaseId);
  assert.ok(r, 'a rollout record');
  return r;
};
/** Both regions announced to the first wave: it bakes. */
async function baking(c: ReturnType<typeof setup>) {
  await publishImageReady(c.deps, c.release, detail(EU), []);
  await publishImageReady(c.deps, c.release, detail(US), []);
}
const pinTo = (c: ReturnType<typeof setup>, revision: string) =>
  c.deps.rollouts.setPin('web-base', { stream: 'web-base', revision, pinnedAt: 'x' });
/** Marks the release as a rollback to `revision`, as rollback() does. */
const markRollbackOf = (c: ReturnType<typeof setup>, revision: string) =>
  c.deps.rollouts.put(
    {
      releaseId: c.release.releaseId,
      stream: 'web-base',
      state: 'complete',
      waves: [],
      images: {},
      rollbackOf: revision,
      version: 1,
    },
    0,
  );
const report = (accountId: string, instanceRefresh: string): LaunchTemplateUpdated =>
  ({
    version: 1,
    stream: 'web-base',
    releaseId: 'web-base#00000001',
    sequence: 1,
    accountId,
    region: EU,
    launchTemplateName: 'web',
    instanceRefresh,
  }) as unknown as LaunchTemplateUpdated;

describe('Function: publishImageReady()', () => {
  it('without waves sends Image Ready to everyone, with no audience', async () => {
    // prepare
    const c = setup({ waves: null });
    // act
    const outcome = await publishImageReady(c.deps, c.release, detail(EU), ['arn:x']);
    // assess
    assert.equal(outcome, 'published');
    assert.deepEqual(ready(c), [{ region: EU, audience: undefined, resources: ['arn:x'] }]);
    assert.equal(await c.deps.rollouts.get(c.release.releaseId), undefined);
  });

  it('sends the first wave only, and starts its bake timer once it has every region', async () => {
    // prepare
    const c = setup();
    // act
    const first = await publishImageReady(c.deps, c.release, detail(EU), []);
    const afterOne = await record(c);
    const timersAfterOne = c.deps.timer.scheduled.length;
    c.deps.clock.advance(1000);
    const second = await publishImageReady(c.deps, c.release, detail(US), []);
    // assess
    assert.deepEqual([first, second], ['published', 'published']);
    assert.deepEqual(ready(c), [
      { region: EU, audience: [A1], resources: [`arn:aws:ec2:${EU}::image/${detail(EU).imageId}`] },
      { region: US, audience: [A1], resources: [`arn:aws:ec2:${US}::image/${detail(US).imageId}`] },
    ]);
    assert.equal(afterOne.state, 'rolling');
    assert.deepEqual(
      afterOne.waves.map((w) => w.state),
      ['announcing', 'pending'],
    );
    assert.equal(afterOne.waves[0]?.announcedAt[EU], '2026-11-20T10:00:00.000Z');
    assert.equal(timersAfterOne, 0, 'no timer before the wave has every region');
    const after = await record(c);
    assert.deepEqual(
      after.waves.map((w) => w.state),
      ['baking', 'pending'],
    );
    assert.deepEqual(after.waves[1]?.accounts, [A2, A3]);
    assert.deepEqual(after.waves[1]?.announcedAt, {});
    assert.equal(after.waves[0]?.bakeUntil, '2026-11-20T10:30:01.000Z');
    assert.deepEqual(Object.keys(after.images).sort(), [EU, US]);
    assert.deepEqual(c.deps.timer.scheduled, [
      {
        name: timerName(c.release.releaseId, 0),
        at: new Date('2026-11-20T10:30:01.000Z'),
        input: { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 },
      },
    ]);
  });

  it('sends a region once: a repeated announce delivers nothing new and keeps the first detail', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    // act
    const again = await publishImageReady(
      c.deps,
      c.release,
      { ...detail(EU), imageId: 'ami-99999999999999999' },
      [],
    );
    // assess
    assert.equal(again, 'published');
    assert.equal(ready(c).length, 1);
    assert.equal((await record(c)).images[EU]?.imageId, detail(EU).imageId);
  });

  it('holds the image of a release whose rollout is halted or aborted, and delivers nothing', async () => {
    for (const state of ['halted', 'aborted'] as const) {
      // prepare
      const c = setup();
      await publishImageReady(c.deps, c.release, detail(EU), []);
      const r = await record(c);
      await c.deps.rollouts.put({ ...r, state }, r.version);
      // act
      const outcome = await publishImageReady(c.deps, c.release, detail(US), []);
      // assess
      assert.equal(outcome, state);
      assert.equal(ready(c).length, 1, state);
      assert.equal((await record(c)).images[US]?.imageId, detail(US).imageId, 'recorded for a resume');
      assert.equal(c.deps.timer.scheduled.length, 0);
    }
  });

  it('holds back an image of a stream pinned to another revision, and not one of the pinned revision', async () => {
    // prepare
    const c = setup({ waves: null });
    await pinTo(c, 'r0');
    // act
    const held = await publishImageReady(c.deps, c.release, detail(EU), []);
    await pinTo(c, 'r1');
    const sent = await publishImageReady(c.deps, c.release, detail(US), []);
    // assess
    assert.equal(held, 'pinned');
    assert.equal(sent, 'published');
    assert.deepEqual(
      ready(c).map((r) => r.region),
      [US],
    );
  });

  it('sends a rollback to everyone at once, marked, even past waves and a pin to its target', async () => {
    // prepare
    const c = setup();
    await markRollbackOf(c, 'r0');
    await pinTo(c, 'r0');
    // act
    const outcome = await publishImageReady(c.deps, c.release, detail(EU), []);
    // assess
    assert.equal(outcome, 'published');
    const events = c.deps.events.ofType('Image Ready');
    assert.equal(events.length, 1);
    const sent = events[0]?.detail as ImageReady | undefined;
    assert.equal(sent?.rollbackOf, 'r0');
    assert.equal(sent?.audience, undefined);
  });

  it('refuses waves on a deployment without a rollout store or timer, naming the release', async () => {
    // prepare
    const c = setup();
    const { timer: _t, ...noTimer } = c.deps;
    // act + assess
    await assert.rejects(
      publishImageReady(noTimer, c.release, detail(EU), []),
      /release web-base#00000001: the stream has rollout waves, but this deployment has no rollout store or timer/,
    );
    assert.equal(c.deps.events.events.length, 0);
  });

  it('gives up after repeated version conflicts instead of looping forever', async () => {
    // prepare: a store whose every conditional write after the first loses
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    c.deps.rollouts.put = async () => false;
    // act + assess
    await assert.rejects(
      publishImageReady(c.deps, c.release, detail(US), []),
      /rollout of web-base#00000001: too many concurrent updates/,
    );
  });
});

describe('Function: onBakeElapsed()', () => {
  it('opens the next wave when the baked one is healthy, sending it every region, and bakes it', async () => {
    // prepare
    const c = setup();
    await baking(c);
    c.deps.clock.advance(30 * 60_000);
    // act
    const result = await onBakeElapsed(c.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: c.release.releaseId,
      wave: 0,
    });
    // assess
    assert.deepEqual(result, { outcome: 'next-wave', wave: 'rest' });
    const r = await record(c);
    assert.deepEqual(
      r.waves.map((w) => w.state),
      ['healthy', 'baking'],
    );
    assert.equal(r.waves[0]?.finishedAt, '2026-11-20T10:30:00.000Z');
    assert.deepEqual(
      ready(c).map((e) => [e.region, e.audience]),
      [
        [EU, [A1]],
        [US, [A1]],
        [EU, [A2, A3]],
        [US, [A2, A3]],
      ],
    );
    assert.deepEqual(
      c.deps.timer.scheduled.map((t) => [t.name, t.at.toISOString(), t.input.wave]),
      [
        [timerName(c.release.releaseId, 0), '2026-11-20T10:30:00.000Z', 0],
        [timerName(c.release.releaseId, 1), '2026-11-20T11:30:00.000Z', 1],
      ],
    );
  });

  it('completes the rollout after the last wave', async () => {
    // prepare
    const c = setup();
    await baking(c);
    const timer = (wave: number) => ({
      kind: 'stemcell-rollout-timer' as const,
      releaseId: c.release.releaseId,
      wave,
    });
    await onBakeElapsed(c.deps, timer(0));
    assert.equal(await rolloutFinished(c.deps, c.release.releaseId), false);
    // act
    const result = await onBakeElapsed(c.deps, timer(1));
    // assess
    assert.deepEqual(result, { outcome: 'rollout-complete' });
    const r = await record(c);
    assert.equal(r.state, 'complete');
    assert.deepEqual(
      r.waves.map((w) => w.state),
      ['healthy', 'healthy'],
    );
    assert.equal(await rolloutFinished(c.deps, c.release.releaseId), true);
    assert.equal(ready(c).length, 4, 'nothing sent twice');
  });

  it('halts an unhealthy wave: no later wave hears of it, and "Release Halted" says why and who', async () => {
    // prepare: the canary alarm fires during the bake
    const c = setup({
      waves: [
        { name: 'canary', accounts: [A1], bakeMinutes: 30, alarmArn: ALARM },
        { name: 'rest', bakeMinutes: 60 },
      ],
      alarm: 'ALARM',
    });
    await baking(c);
    c.deps.clock.advance(60_000);
    // act
    const result = await onBakeElapsed(c.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: c.release.releaseId,
      wave: 0,
    });
    // assess
    assert.deepEqual(result, { outcome: 'halted', reason: `alarm ${ALARM} is ALARM` });
    const r = await record(c);
    assert.equal(r.state, 'halted');
    assert.deepEqual(
      r.waves.map((w) => w.state),
      ['halted', 'pending'],
    );
    assert.deepEqual(r.halted, {
      wave: 'canary',
      reason: `alarm ${ALARM} is ALARM`,
      accounts: [],
      at: '2026-11-20T10:01:00.000Z',
    });
    assert.equal(ready(c).length, 2, 'the second wave is never sent');
    const halted = c.deps.events.ofType('Release Halted');
    assert.equal(halted.length, 1);
    assert.deepEqual(halted[0]?.detail, {
      version: 1,
      stream: 'web-base',
      revision: 'r1',
      sequence: 1,
      releaseId: c.release.releaseId,
      wave: 'canary',
      reason: `alarm ${ALARM} is ALARM`,
      accounts: [],
      wavesReached: ['canary'],
      haltedAt: '2026-11-20T10:01:00.000Z',
    });
  });

  it('ignores a timer of a wave not baking, of a release not rolling, or of a wave it does not have', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    const timer = (wave: number) => ({
      kind: 'stemcell-rollout-timer' as const,
      releaseId: c.release.releaseId,
      wave,
    });
    // act
    const announcing = await onBakeElapsed(c.deps, timer(0));
    const missing = await onBakeElapsed(c.deps, timer(5));
    await publishImageReady(c.deps, c.release, detail(US), []);
    const r = await record(c);
    await c.deps.rollouts.put({ ...r, state: 'aborted' }, r.version);
    const aborted = await onBakeElapsed(c.deps, timer(0));
    // assess
    assert.deepEqual(announcing, { outcome: 'ignored', reason: 'release rolling, wave canary announcing' });
    assert.deepEqual(missing, { outcome: 'ignored', reason: `no wave 5 in ${c.release.releaseId}` });
    assert.deepEqual(aborted, { outcome: 'ignored', reason: 'release aborted, wave canary baking' });
    assert.equal(c.deps.events.ofType('Release Halted').length, 0);
    assert.equal(ready(c).length, 2);
  });

  it('ignores a timer of a release without rollout, and fails loudly for a release that does not exist', async () => {
    // prepare
    const c = setup({ waves: null });
    // act
    const none = await onBakeElapsed(c.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: c.release.releaseId,
      wave: 0,
    });
    // assess
    assert.equal(none.outcome, 'ignored');
    await assert.rejects(
      onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: 'web-base#00000009', wave: 0 }),
      (err: Error) => err instanceof ReleaseNotFoundError && /web-base#00000009/.test(err.message),
    );
  });
});

describe('Function: halt()', () => {
  it('halts a rolling release once; a second halt, or one of a release not rolling, does nothing', async () => {
    // prepare
    const c = setup();
    await baking(c);
    const accounts = [{ accountId: A1, region: EU }];
    // act
    const first = await halt(c.deps, c.release, 0, 'why', accounts);
    const second = await halt(c.deps, c.release, 0, 'again', accounts);
    // assess
    assert.deepEqual([first, second], [true, false]);
    assert.equal(c.deps.events.ofType('Release Halted').length, 1);
    assert.deepEqual((await record(c)).halted?.accounts, accounts);
    assert.equal(await halt(c.deps, c.release, 7, 'no such wave', accounts), false);
  });
});

describe('Function: onLaunchTemplateReport()', () => {
  it('halts at once on a failed, cancelled or rolled-back refresh in a wave account, naming it', async () => {
    for (const outcome of ['failed', 'cancelled', 'rolled-back']) {
      // prepare
      const c = setup();
      await baking(c);
      // act
      const halted = await onLaunchTemplateReport(c.deps, report(A1, outcome));
      // assess
      assert.equal(halted, true, outcome);
      const r = await record(c);
      assert.equal(r.state, 'halted');
      assert.deepEqual(r.halted?.accounts, [{ accountId: A1, region: EU }]);
      assert.equal(r.halted?.reason, `instance refresh ${outcome}: ${A1} in ${EU} (web)`);
      assert.equal(r.halted?.wave, 'canary');
    }
  });

  it('halts at the wave of the reporting account', async () => {
    // prepare
    const c = setup();
    await baking(c);
    await onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 });
    // act
    const halted = await onLaunchTemplateReport(c.deps, report(A3, 'failed'));
    // assess
    assert.equal(halted, true);
    assert.equal((await record(c)).halted?.wave, 'rest');
    assert.deepEqual(
      (await record(c)).waves.map((w) => w.state),
      ['healthy', 'halted'],
    );
  });

  it('does nothing for a refresh that succeeded, an account in no wave, a release not rolling or unknown', async () => {
    // prepare
    const c = setup();
    await baking(c);
    // act
    const results = [
      await onLaunchTemplateReport(c.deps, report(A1, 'succeeded')),
      await onLaunchTemplateReport(c.deps, report(A4, 'failed')),
      await onLaunchTemplateReport(c.deps, { ...report(A1, 'failed'), releaseId: 'web-base#00000009' }),
      await onLaunchTemplateReport({ ...c.deps, rollouts: undefined }, report(A1, 'failed')),
      await onLaunchTemplateReport({ ...c.deps, timer: undefined }, report(A1, 'failed')),
    ];
    // assess
    assert.deepEqual(results, [false, false, false, false, false]);
    assert.equal((await record(c)).state, 'rolling');
    assert.equal(c.deps.events.ofType('Release Halted').length, 0);
  });

  it('does nothing when the release itself is gone from the release store', async () => {
    // prepare
    const c = setup();
    await baking(c);
    c.deps.releases.releases.clear();
    // act
    const halted = await onLaunchTemplateReport(c.deps, report(A1, 'failed'));
    // assess
    assert.equal(halted, false);
    assert.equal((await record(c)).state, 'rolling');
  });
});

describe('Function: resumeRelease()', () => {
  it('passes the halted wave and opens the next one now, keeping the halt in the history', async () => {
    // prepare
    const c = setup();
    await baking(c);
    await halt(c.deps, c.release, 0, 'canary alarm', []);
    c.deps.clock.advance(5 * 60_000);
    // act
    const result = await resumeRelease(c.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(result, { outcome: 'next-wave', wave: 'rest' });
    const r = await record(c);
    assert.equal(r.state, 'rolling');
    assert.equal(r.halted, undefined);
    assert.deepEqual(
      r.resumed?.map((h) => h.reason),
      ['canary alarm'],
    );
    assert.equal(r.waves[0]?.state, 'halted');
    assert.equal(r.waves[0]?.resumedAt, '2026-11-20T10:05:00.000Z');
    assert.equal(r.waves[1]?.state, 'baking');
    assert.deepEqual(
      ready(c)
        .slice(2)
        .map((e) => e.audience),
      [
        [A2, A3],
        [A2, A3],
      ],
    );
  });

  it('refuses a release that is not halted, or has no waves', async () => {
    // prepare
    const c = setup();
    await baking(c);
    // act + assess
    await assert.rejects(
      resumeRelease(c.deps, 'web-base', 'r1'),
      (err: Error) =>
        err instanceof RolloutStateError && /is rolling, not halted: nothing to resume/.test(err.message),
    );
    const plain = setup({ waves: null });
    await assert.rejects(resumeRelease(plain.deps, 'web-base', 'r1'), /web-base\/r1 has no rollout waves/);
    await assert.rejects(resumeRelease(plain.deps, 'web-base', 'r7'), ReleaseNotFoundError);
  });
});

describe('Function: abortRelease()', () => {
  it('stops every wave not yet finished, keeps the finished ones, and no wave hears of it later', async () => {
    // prepare
    const c = setup({
      waves: [
        { name: 'one', accounts: [A1], bakeMinutes: 1 },
        { name: 'two', accounts: [A2], bakeMinutes: 1 },
        { name: 'three', bakeMinutes: 1 },
      ],
    });
    await baking(c);
    await onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 });
    c.deps.clock.advance(1000);
    // act
    const aborted = await abortRelease(c.deps, 'web-base', 'r1');
    const late = await onBakeElapsed(c.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: c.release.releaseId,
      wave: 1,
    });
    // assess
    assert.equal(aborted.state, 'aborted');
    assert.deepEqual(
      aborted.waves.map((w) => [w.state, w.finishedAt]),
      [
        ['healthy', '2026-11-20T10:00:00.000Z'],
        ['aborted', '2026-11-20T10:00:01.000Z'],
        ['aborted', '2026-11-20T10:00:01.000Z'],
      ],
    );
    assert.deepEqual(await record(c), aborted);
    assert.equal(late.outcome, 'ignored');
    assert.equal(ready(c).length, 4);
  });

  it('refuses a release that is complete, aborted, or has no waves', async () => {
    // prepare
    const c = setup({ waves: [{ name: 'all', bakeMinutes: 1 }] });
    await baking(c);
    await onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 });
    // act + assess
    await assert.rejects(
      abortRelease(c.deps, 'web-base', 'r1'),
      /web-base\/r1 is complete: nothing to abort/,
    );
    const d = setup();
    await baking(d);
    await abortRelease(d.deps, 'web-base', 'r1');
    await assert.rejects(abortRelease(d.deps, 'web-base', 'r1'), RolloutStateError);
    const plain = setup({ waves: null });
    await assert.rejects(abortRelease(plain.deps, 'web-base', 'r1'), /web-base\/r1 has no rollout waves/);
  });
});

describe('Function: releaseAudience()', () => {
  it('is everyone without a rollout store, a rollout, or once complete', async () => {
    // prepare
    const c = setup();
    // act + assess
    assert.equal(await releaseAudience({}, c.release, EU), 'everyone');
    assert.equal(await releaseAudience(c.deps, c.release, EU), 'everyone');
    const done = setup({ waves: [{ name: 'all', bakeMinutes: 1 }] });
    await baking(done);
    await onBakeElapsed(done.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: done.release.releaseId,
      wave: 0,
    });
    assert.equal(await releaseAudience(done.deps, done.release, EU), 'everyone');
  });

  it('is the accounts of waves sent that region while rolling, and nobody once halted', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    // act
    const eu = await releaseAudience(c.deps, c.release, EU);
    const us = await releaseAudience(c.deps, c.release, US);
    await publishImageReady(c.deps, c.release, detail(US), []);
    await halt(c.deps, c.release, 0, 'x', []);
    const halted = await releaseAudience(c.deps, c.release, EU);
    // assess
    assert.deepEqual(eu, new Set([A1]));
    assert.deepEqual(us, new Set());
    assert.equal(halted, 'nobody');
  });

  it('is nobody for a stream pinned to another revision, unless the release is a rollback to it', async () => {
    // prepare
    const c = setup({ waves: null });
    await pinTo(c, 'r0');
    // act
    const pinned = await releaseAudience(c.deps, c.release, EU);
    await markRollbackOf(c, 'r0');
    const rollback = await releaseAudience(c.deps, c.release, EU);
    await pinTo(c, 'r1');
    const own = await releaseAudience(c.deps, c.release, EU);
    // assess
    assert.equal(pinned, 'nobody');
    assert.equal(rollback, 'everyone');
    assert.equal(own, 'everyone');
  });
});

describe('Function: admits()', () => {
  it('admits everyone, nobody, or the accounts of the set', () => {
    assert.equal(admits('everyone', A1), true);
    assert.equal(admits('nobody', A1), false);
    assert.equal(admits(new Set([A1]), A1), true);
    assert.equal(admits(new Set([A1]), A2), false);
  });
});

describe('Function: mayReannounce()', () => {
  it('allows a re-announce except under a pin to another revision, or a halted or aborted region', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    // act
    const rolling = await mayReannounce(c.deps, c.release, US);
    const r = await record(c);
    await c.deps.rollouts.put({ ...r, state: 'halted' }, r.version);
    const haltedRecorded = await mayReannounce(c.deps, c.release, EU);
    const haltedNotRecorded = await mayReannounce(c.deps, c.release, US);
    const h = await record(c);
    await c.deps.rollouts.put({ ...h, state: 'aborted' }, h.version);
    const abortedRecorded = await mayReannounce(c.deps, c.release, EU);
    // assess
    assert.equal(await mayReannounce({}, c.release, EU), true);
    assert.equal(rolling, true);
    assert.equal(haltedRecorded, false);
    assert.equal(haltedNotRecorded, true);
    assert.equal(abortedRecorded, false);
  });

  it('refuses under a pin to another revision, unless the release is a rollback to it', async () => {
    // prepare
    const c = setup({ waves: null });
    await pinTo(c, 'r0');
    // act
    const pinned = await mayReannounce(c.deps, c.release, EU);
    await markRollbackOf(c, 'r0');
    const rollback = await mayReannounce(c.deps, c.release, EU);
    // assess
    assert.equal(pinned, false);
    assert.equal(rollback, true);
    assert.equal(await mayReannounce(c.deps, { ...c.release, revision: 'r0' }, EU), true);
  });
});

describe('Function: rolloutSummary()', () => {
  it('says each wave and the halt, and nothing without a record', () => {
    // prepare
    const wave = (name: string, state: WaveRecord['state'], extra: Partial<WaveRecord> = {}): WaveRecord => ({
      name,
      accounts: [A1],
      bakeMinutes: 1,
      state,
      announcedAt: { [EU]: 'x' },
      ...extra,
    });
    const halted = { wave: 'a', reason: 'why', accounts: [], at: 't' };
    const base: RolloutRecord = {
      releaseId: 'web-base#00000001',
      stream: 'web-base',
      state: 'halted',
      waves: [wave('a', 'halted', { bakeUntil: 'soon', finishedAt: 'f' }), wave('b', 'pending')],
      images: {},
      version: 3,
    };
    // act + assess
    assert.equal(rolloutSummary(undefined), undefined);
    assert.deepEqual(rolloutSummary({ ...base, halted }), {
      state: 'halted',
      waves: [
        { name: 'a', state: 'halted', accounts: [A1], bakeUntil: 'soon' },
        { name: 'b', state: 'pending', accounts: [A1] },
      ],
      halted,
    });
    assert.equal(rolloutSummary(base)?.halted, null);
  });
});

describe('Function: releaseByRevision()', () => {
  it('finds the release of a revision, and names the one it cannot find', async () => {
    // prepare
    const c = setup();
    const r2 = c.deps.releases.seed('web-base', 'r2', [EU]);
    // act + assess
    assert.equal((await releaseByRevision(c.deps.releases, 'web-base', 'r2')).releaseId, r2.releaseId);
    await assert.rejects(
      releaseByRevision(c.deps.releases, 'web-base', 'r9'),
      (err: Error) => err instanceof ReleaseNotFoundError && /web-base\/r9/.test(err.message),
    );
  });
});

describe('Function: timerName()', () => {
  it('replaces characters Scheduler refuses and keeps to 64 characters', () => {
    assert.equal(timerName('web-base#00000042', 1), 'stemcell-web-base-00000042-wave-1');
    assert.equal(timerName(`${'x'.repeat(80)}#1`, 2).length, 64);
  });
});

describe('Function: resolveWaves() with inactive accounts and alarms', () => {
  it('leaves out accounts that are not active, and carries each wave alarm', async () => {
    // prepare
    const c = setup({
      waves: [
        { name: 'canary', ous: [OU_B], bakeMinutes: 5, alarmArn: ALARM },
        { name: 'rest', bakeMinutes: 10 },
      ],
    });
    c.deps.organization.add(A4, OU_B, 'SUSPENDED');
    // act
    const waves = await resolveWaves(c.deps, 'web-base');
    // assess
    assert.deepEqual(waves, [
      {
        name: 'canary',
        accounts: [A2, A3],
        bakeMinutes: 5,
        alarmArn: ALARM,
        state: 'pending',
        announcedAt: {},
      },
      { name: 'rest', accounts: [A1], bakeMinutes: 10, state: 'pending', announcedAt: {} },
    ]);
  });

  it('keeps to the OUs of the subscriber scope, active accounts only', async () => {
    // prepare
    const c = setup({ scope: { ous: [OU_B] }, waves: [{ name: 'all', bakeMinutes: 1 }] });
    c.deps.organization.add(A4, OU_B, 'SUSPENDED');
    // act
    const waves = await resolveWaves(c.deps, 'web-base');
    // assess
    assert.deepEqual(
      waves?.map((w) => w.accounts),
      [[A2, A3]],
    );
  });
});

describe('Function: waveHealth() edge cases', () => {
  const wave: WaveRecord = { name: 'w', accounts: [A1], bakeMinutes: 1, state: 'baking', announcedAt: {} };
  const withReport = (release: Release, accountId: string, instanceRefresh?: string): Release => ({
    ...release,
    accounts: {
      [`${accountId}/${EU}`]: {
        accountId,
        region: EU,
        outcome: 'updated',
        launchTemplates: 1,
        updatedAt: 'x',
        ...(instanceRefresh ? { instanceRefresh } : {}),
      },
    } as Release['accounts'],
  });

  it('counts as followers only accounts that reported for an earlier release, not a later one', async () => {
    // prepare: release 2 reported by A1; release 1 (the one judged) has no report
    const c = setup({ regions: [EU] });
    const later = c.deps.releases.seed('web-base', 'r2', [EU]);
    c.deps.releases.releases.set(later.releaseId, withReport(later, A1, 'succeeded'));
    // act
    const health = await waveHealth(c.deps, c.release, wave);
    // assess
    assert.deepEqual(health, { healthy: true, accounts: [] });
  });

  it('is unhealthy when a wave alarm is set but no alarm service is, or the alarm is missing', async () => {
    // prepare
    const c = setup({ regions: [EU] });
    // act
    const none = await waveHealth({ releases: c.deps.releases }, c.release, { ...wave, alarmArn: ALARM });
    const missing = await waveHealth(
      { releases: c.deps.releases, alarms: { state: async () => undefined } },
      c.release,
      { ...wave, alarmArn: ALARM },
    );
    // assess
    assert.deepEqual(none, { healthy: false, reason: `alarm ${ALARM}: no alarm service`, accounts: [] });
    assert.deepEqual(missing, { healthy: false, reason: `alarm ${ALARM} is missing`, accounts: [] });
  });

  it('says the failed refresh first, with every failed account and region', async () => {
    // prepare: A1 failed in EU; an earlier report makes A1 a follower in EU too
    const c = setup({ regions: [EU] });
    const earlier = withReport(c.release, A1);
    const current: Release = {
      ...withReport({ ...c.release, sequence: 2, releaseId: 'web-base#00000002' }, A1, 'failed'),
    };
    c.deps.releases.releases.set(current.releaseId, current);
    c.deps.releases.releases.set(earlier.releaseId, earlier);
    // act
    const health = await waveHealth(c.deps, current, wave);
    // assess
    assert.deepEqual(health, {
      healthy: false,
      reason: `instance refresh failed: ${A1} in ${EU}`,
      accounts: [{ accountId: A1, region: EU }],
    });
  });
});

describe('Function: publishImageReady() and resumeRelease() with a region held during a halt', () => {
  it('sends a region recorded while halted to the halted wave and the next one on resume, accounts sorted', async () => {
    // prepare: the canary (A3) halts on a failed refresh before US is ready; US arrives while halted
    const c = setup({
      waves: [
        { name: 'canary', accounts: [A3], bakeMinutes: 30 },
        { name: 'rest', bakeMinutes: 60 },
      ],
    });
    await publishImageReady(c.deps, c.release, detail(EU), []);
    await onLaunchTemplateReport(c.deps, report(A3, 'failed'));
    const held = await publishImageReady(c.deps, c.release, detail(US), []);
    // act
    await resumeRelease(c.deps, 'web-base', 'r1');
    // assess
    assert.equal(held, 'halted');
    assert.deepEqual(
      ready(c).map((e) => [e.region, e.audience]),
      [
        [EU, [A3]],
        [EU, [A1, A2]],
        [US, [A1, A2, A3]],
      ],
    );
    const r = await record(c);
    assert.deepEqual(
      r.waves.map((w) => [w.state, Object.keys(w.announcedAt).sort()]),
      [
        ['halted', [EU, US]],
        ['baking', [EU, US]],
      ],
    );
  });

  it('delivers recorded regions in region order, whatever order they came in', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(US), []);
    await publishImageReady(c.deps, c.release, detail(EU), []);
    // act
    await onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 });
    // assess
    assert.deepEqual(
      ready(c).map((e) => e.region),
      [US, EU, EU, US],
    );
  });

  it('keeps every halt an operator resumed past, oldest first', async () => {
    // prepare
    const c = setup({
      waves: [
        { name: 'one', accounts: [A1], bakeMinutes: 1 },
        { name: 'two', accounts: [A2], bakeMinutes: 1 },
        { name: 'three', bakeMinutes: 1 },
      ],
    });
    await baking(c);
    await halt(c.deps, c.release, 0, 'first', []);
    await resumeRelease(c.deps, 'web-base', 'r1');
    await halt(c.deps, c.release, 1, 'second', []);
    // act
    const result = await resumeRelease(c.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(result, { outcome: 'next-wave', wave: 'three' });
    const r = await record(c);
    assert.deepEqual(
      r.resumed?.map((h) => [h.wave, h.reason]),
      [
        ['one', 'first'],
        ['two', 'second'],
      ],
    );
    assert.deepEqual(
      r.waves.map((w) => w.state),
      ['halted', 'halted', 'baking'],
    );
  });
});

describe('Function: abortRelease() in other states', () => {
  it('aborts a wave still announcing, and leaves a halted wave halted', async () => {
    // prepare
    const announcing = setup();
    await publishImageReady(announcing.deps, announcing.release, detail(EU), []);
    const halted = setup();
    await baking(halted);
    await halt(halted.deps, halted.release, 0, 'why', []);
    // act
    const a = await abortRelease(announcing.deps, 'web-base', 'r1');
    const h = await abortRelease(halted.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(
      a.waves.map((w) => w.state),
      ['aborted', 'aborted'],
    );
    assert.deepEqual(
      h.waves.map((w) => w.state),
      ['halted', 'aborted'],
    );
    assert.equal(h.state, 'aborted');
    const held = await publishImageReady(announcing.deps, announcing.release, detail(US), []);
    assert.equal(held, 'aborted');
  });
});

describe('Function: waveHealth() reasons', () => {
  it('lists every failed and every silent account and region, comma-separated', async () => {
    // prepare
    const c = setup();
    const wave: WaveRecord = {
      name: 'w',
      accounts: [A1, A2],
      bakeMinutes: 1,
      state: 'baking',
      announcedAt: {},
    };
    const reported = (accountId: string, region: string, instanceRefresh?: string) => ({
      accountId,
      region,
      outcome: 'updated' as const,
      launchTemplates: 1,
      updatedAt: 'x',
      ...(instanceRefresh ? { instanceRefresh } : {}),
    });
    const earlier = c.deps.releases.releases.get(c.release.releaseId);
    assert.ok(earlier);
    for (const a of [A1, A2])
      for (const region of [EU, US]) earlier.accounts[`${a}/${region}`] = reported(a, region);
    const current = c.deps.releases.seed('web-base', 'r2', [EU, US]);
    // act
    const silent = await waveHealth(c.deps, current, wave);
    current.accounts[`${A1}/${EU}`] = reported(A1, EU, 'failed');
    current.accounts[`${A2}/${US}`] = reported(A2, US, 'cancelled');
    const failed = await waveHealth(c.deps, current, wave);
    // assess
    assert.equal(
      silent.reason,
      `no "Launch Template Updated" report within the bake time from ${A1} in ${EU}, ${A1} in ${US}, ${A2} in ${EU}, ${A2} in ${US}`,
    );
    assert.equal(silent.accounts.length, 4);
    assert.equal(failed.reason, `instance refresh failed: ${A1} in ${EU}, ${A2} in ${US}`);
  });
});

describe('Rollout log lines', () => {
  it('name the release, wave and reason an operator looks for', async () => {
    // prepare
    const c = setup();
    const logs = c.deps.logger;
    // act
    await baking(c);
    await onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: c.release.releaseId, wave: 0 });
    await halt(c.deps, c.release, 1, 'alarm', []);
    await abortRelease(c.deps, 'web-base', 'r1');
    const done = setup({ waves: [{ name: 'all', bakeMinutes: 1 }] });
    await baking(done);
    await onBakeElapsed(done.deps, {
      kind: 'stemcell-rollout-timer',
      releaseId: done.release.releaseId,
      wave: 0,
    });
    const pinned = setup({ waves: null });
    await pinTo(pinned, 'r0');
    await publishImageReady(pinned.deps, pinned.release, detail(EU), []);
    const stopped = setup();
    await publishImageReady(stopped.deps, stopped.release, detail(EU), []);
    await halt(stopped.deps, stopped.release, 0, 'why', []);
    await publishImageReady(stopped.deps, stopped.release, detail(US), []);
    // assess
    const id = c.release.releaseId;
    assert.deepEqual(logs.of('image ready to waves'), { releaseId: id, region: EU });
    assert.deepEqual(logs.of('wave baking'), {
      releaseId: id,
      wave: 'canary',
      until: new Date('2026-11-20T10:30:00.000Z'),
    });
    assert.deepEqual(logs.of('wave opened'), { releaseId: id, wave: 'rest' });
    assert.deepEqual(logs.of('release halted'), { releaseId: id, wave: 'rest', reason: 'alarm' });
    assert.deepEqual(logs.of('release aborted'), { releaseId: id });
    assert.deepEqual(done.deps.logger.of('rollout complete'), { releaseId: id });
    assert.deepEqual(pinned.deps.logger.of('stream pinned: image held back'), {
      releaseId: id,
      region: EU,
      pinnedTo: 'r0',
    });
    assert.deepEqual(stopped.deps.logger.of('image ready held: release not rolling'), {
      releaseId: id,
      state: 'halted',
    });
  });
});

describe('Rollout errors and orders', () => {
  it('names what failed: the stream, the bake timer, the revision, and the error kind', async () => {
    // prepare
    const c = setup();
    // act + assess
    await assert.rejects(resolveWaves(c.deps, 'nope'), /unknown stream "nope" \(rollout\)/);
    await assert.rejects(
      onBakeElapsed(c.deps, { kind: 'stemcell-rollout-timer', releaseId: 'web-base#00000009', wave: 2 }),
      /bake timer of wave 2/,
    );
    await assert.rejects(releaseByRevision(c.deps.releases, 'web-base', 'r9'), /no release of that revision/);
    await assert.rejects(resumeRelease(c.deps, 'web-base', 'r1'), { name: 'RolloutStateError' });
  });

  it('refuses to resume a release aborted after it halted', async () => {
    // prepare
    const c = setup();
    await baking(c);
    await halt(c.deps, c.release, 0, 'why', []);
    await abortRelease(c.deps, 'web-base', 'r1');
    // act + assess
    await assert.rejects(
      resumeRelease(c.deps, 'web-base', 'r1'),
      /is aborted, not halted: nothing to resume/,
    );
    assert.equal((await record(c)).state, 'aborted');
    assert.equal(ready(c).length, 2);
  });

  it('lists a wave accounts sorted, whatever order the configuration names them in', async () => {
    // prepare
    const c = setup({ waves: [{ name: 'some', accounts: [A3, A1, A2], bakeMinutes: 1 }] });
    // act
    const waves = await resolveWaves(c.deps, 'web-base');
    // assess
    assert.deepEqual(waves?.[0]?.accounts, [A1, A2, A3]);
  });

  it('names silent accounts in region order, whatever order the release lists its regions in', async () => {
    // prepare
    const c = setup({ regions: [US, EU] });
    const earlier = c.deps.releases.releases.get(c.release.releaseId);
    assert.ok(earlier);
    for (const region of [US, EU])
      earlier.accounts[`${A1}/${region}`] = {
        accountId: A1,
        region,
        outcome: 'updated',
        launchTemplates: 1,
        updatedAt: 'x',
      };
    const current = c.deps.releases.seed('web-base', 'r2', [US, EU]);
    const wave: WaveRecord = { name: 'w', accounts: [A1], bakeMinutes: 1, state: 'baking', announcedAt: {} };
    // act
    const health = await waveHealth(c.deps, current, wave);
    // assess
    assert.deepEqual(health.accounts, [
      { accountId: A1, region: EU },
      { accountId: A1, region: US },
    ]);
  });

  it('gives up on a conflicting write after twenty tries', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    let puts = 0;
    c.deps.rollouts.put = async () => {
      puts++;
      return false;
    };
    // act
    await assert.rejects(publishImageReady(c.deps, c.release, detail(US), []), /too many concurrent updates/);
    // assess: the create (lost, as a second region's is) and twenty updates
    assert.equal(puts, 21);
  });
});

describe('Function: mayReannounce() while rolling or pinned to the release itself', () => {
  it('allows a re-announce of a region a rolling release recorded, and under a pin to its own revision', async () => {
    // prepare
    const c = setup();
    await publishImageReady(c.deps, c.release, detail(EU), []);
    // act
    const rolling = await mayReannounce(c.deps, c.release, EU);
    await pinTo(c, 'r1');
    const ownPin = await mayReannounce(c.deps, c.release, EU);
    // assess
    assert.equal(rolling, true);
    assert.equal(ownPin, true);
  });
});
