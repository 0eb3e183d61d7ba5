// The boot gate's finer rules, found by mutation testing: which region states open or close the gate without a
// boot, a region that moved under the gate, which jobs the worker skips, the exact timeout and waiting-budget
// edges, what a failure records and says (console lines, their number and length, the image tag), and the
// identifiers the queue and the smoke instance share.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BootCheckDeps } from '#core/deps.ts';
import { releaseTags } from '#core/model/naming.ts';
import { advanceBootCheck, consoleLines } from '#core/release/boot-check.ts';
import { bootCheckId, bootCheckMode, bootGate } from '#core/release/boot-gate.ts';
import { BuildFailedDetail } from '#events/stemcell.ts';
import type {
  BootChecker,
  BootCheckRecord,
  BootCheckRequest,
  BootObservation,
  ImageInfo,
  Release,
} from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeImaging,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  OU_A,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore, RecordingTimer } from '#test/support/rollout-fakes.ts';

const EU = 'eu-west-1';
const T0 = '2026-11-20T10:00:00.000Z';

/** A checker whose observation and stop result the test sets. */
class Checker implements BootChecker {
  readonly mode = 'qemu' as const;
  starts: BootCheckRequest[] = [];
  next: BootObservation = { state: 'waiting' };
  stopped: { consoleLog?: string; lastLines: string[] } = { lastLines: [] };
  async start(request: BootCheckRequest) {
    this.starts.push(request);
  }
  async observe() {
    return this.next;
  }
  async stop() {
    return this.stopped;
  }
}

function setup(bootCheck: Record<string, unknown> = { mode: 'qemu', timeoutSeconds: 60 }) {
  const imaging = new FakeImaging();
  const checker = new Checker();
  const deps = {
    config: testConfig({
      streams: { 'web-base': { regions: [EU], sharing: { organization: true }, bootCheck } },
    }),
    clock: new FakeClock(T0),
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
    bootChecks: new FakeQueue('boot-checks.fifo'),
    bootChecker: () => checker,
  } satisfies BootCheckDeps;
  return { deps, imaging, checker };
}

/** A release with a registered, available image in EU, and the image. */
async function withImage(c: ReturnType<typeof setup>): Promise<{ release: Release; image: ImageInfo }> {
  const release = c.deps.releases.seed('web-base', 'r1', [EU]);
  const { imageId } = await c.imaging.of(EU).images.register({
    name: 'stemcell/web-base/r1',
    description: 'd',
    snapshotId: 'snap-1',
    architecture: 'arm64',
    bootMode: 'uefi',
    rootDeviceName: '/dev/xvda',
    tags: releaseTags(release),
    clientToken: 't',
  });
  const image = await c.imaging.of(EU).images.get(imageId);
  assert.ok(image);
  return { release, image };
}

const check = (extra: Partial<BootCheckRecord> = {}): BootCheckRecord => ({
  mode: 'qemu',
  marker: 'login:',
  timeoutSeconds: 60,
  requestedAt: T0,
  ...extra,
});

/** The region is booting with `bootCheck`; returns the worker's job. */
async function booting(c: ReturnType<typeof setup>, bootCheck = check()) {
  const { release, image } = await withImage(c);
  await c.deps.releases.updateRegion(release.releaseId, EU, {
    state: 'booting',
    imageId: image.imageId,
    bootCheck,
  });
  return {
    release,
    image,
    job: { version: 1 as const, releaseId: release.releaseId, region: EU, imageId: image.imageId },
  };
}

const regionOf = async (c: ReturnType<typeof setup>, releaseId: string) =>
  (await c.deps.releases.get(releaseId))?.regions[EU];
const gate = async (c: ReturnType<typeof setup>, release: Release, image: ImageInfo) =>
  bootGate(c.deps, { release, region: EU, image });
const reasonOf = (r: Awaited<ReturnType<typeof advanceBootCheck>>) =>
  r.outcome === 'failed' ? r.reason : '';

describe('Function: bootCheckId()', () => {
  it('is one id per release and region, with only characters FIFO ids and client tokens allow', () => {
    assert.equal(bootCheckId('web-base#00000001', EU), 'boot-web-base-00000001-eu-west-1');
    assert.equal(bootCheckId('a_b.c', 'us-east-1'), 'boot-a-b-c-us-east-1');
  });
});

describe('Function: bootCheckMode()', () => {
  it('takes the stream mode over the world default, and instance when neither names one', () => {
    // prepare
    const stream = testConfig().streams['web-base'];
    assert.ok(stream);
    const named = { ...stream, bootCheck: { ...stream.bootCheck, mode: 'instance' as const } };
    const unnamed = { ...stream, bootCheck: { ...stream.bootCheck, mode: undefined } };
    // act + assess
    assert.equal(bootCheckMode({ defaultBootCheckMode: 'qemu' }, named), 'instance');
    assert.equal(bootCheckMode({}, unnamed), 'instance');
  });
});

describe('Function: bootGate()', () => {
  it('queues one check under the release and region, with the ids the worker uses, and says so', async () => {
    // prepare
    const c = setup();
    const { release, image } = await withImage(c);
    // act
    const verdict = await gate(c, release, image);
    // assess
    assert.deepEqual(verdict, { gate: 'checking' });
    assert.deepEqual(
      c.deps.bootChecks.messages.map((m) => [m.groupId, m.deduplicationId]),
      [[`${release.releaseId}/${EU}`, 'boot-web-base-00000001-eu-west-1']],
    );
    assert.deepEqual(c.deps.logger.of('boot check requested'), {
      releaseId: release.releaseId,
      region: EU,
      imageId: image.imageId,
      mode: 'qemu',
    });
    const region = await regionOf(c, release.releaseId);
    assert.equal(region?.state, 'booting');
    assert.equal(region?.imageId, image.imageId);
    assert.equal(region?.snapshotId, 'snap-1');
    assert.deepEqual(region?.bootCheck, {
      mode: 'qemu',
      marker: 'login:',
      timeoutSeconds: 60,
      requestedAt: T0,
    });
  });

  it('opens for an announced region and for the image whose check passed, without a boot', async () => {
    // prepare
    const c = setup();
    const { release, image } = await withImage(c);
    const announced = { ...release, regions: { [EU]: { state: 'announced' as const, updatedAt: T0 } } };
    const passed = {
      ...release,
      regions: {
        [EU]: {
          state: 'available' as const,
          imageId: image.imageId,
          bootCheck: check({ passed: true }),
          updatedAt: T0,
        },
      },
    };
    // act + assess
    assert.deepEqual(await gate(c, announced, image), { gate: 'open' });
    assert.deepEqual(await gate(c, passed, image), { gate: 'open' });
    assert.equal(c.deps.bootChecks.messages.length, 0);
  });

  it('boots an image other than the one whose check passed', async () => {
    // prepare: the region passed with another image (a rebuild registered a new one)
    const c = setup();
    const { release, image } = await withImage(c);
    const stale = {
      ...release,
      regions: {
        [EU]: {
          state: 'available' as const,
          imageId: 'ami-0000000000000dead',
          bootCheck: check({ passed: true }),
          updatedAt: T0,
        },
      },
    };
    // act
    const verdict = await gate(c, stale, image);
    // assess
    assert.deepEqual(verdict, { gate: 'checking' });
    assert.equal(c.deps.bootChecks.messages.length, 1);
  });

  it('stays closed for a failed region, with its reason or one naming the region', async () => {
    // prepare
    const c = setup();
    const { release, image } = await withImage(c);
    const failed = (reason?: string) => ({
      ...release,
      regions: { [EU]: { state: 'failed' as const, ...(reason ? { reason } : {}), updatedAt: T0 } },
    });
    // act + assess
    assert.deepEqual(await gate(c, failed('boot: panic'), image), { gate: 'closed', reason: 'boot: panic' });
    assert.deepEqual(await gate(c, failed(), image), {
      gate: 'closed',
      reason: `region ${EU} of ${release.releaseId} failed`,
    });
    assert.equal(c.deps.bootChecks.messages.length, 0);
  });

  it('finishes failing a region whose failed check was recorded, naming the image when no reason was kept', async () => {
    // prepare: booting, check failed without a reason (the process died before the region failed)
    const c = setup();
    const { release, image } = await booting(c, check({ passed: false }));
    const stored = await c.deps.releases.get(release.releaseId);
    assert.ok(stored);
    // act
    const verdict = await gate(c, stored, image);
    // assess
    const reason = `boot: check of ${image.imageId} failed`;
    assert.deepEqual(verdict, { gate: 'closed', reason });
    assert.equal((await regionOf(c, release.releaseId))?.state, 'failed');
    assert.equal(BuildFailedDetail.parse(c.deps.events.ofType('Build Failed')[0]?.detail).reason, reason);
    assert.equal(c.deps.bootChecks.messages.length, 0);
  });

  it('follows a region that moved under it: failed closes, announced opens, booting stays checking', async () => {
    for (const [state, reason, verdict] of [
      ['failed', 'boot: elsewhere', { gate: 'closed', reason: 'boot: elsewhere' }],
      ['failed', undefined, { gate: 'closed', reason: 'failed' }],
      ['announced', undefined, { gate: 'open' }],
      ['booting', undefined, { gate: 'checking' }],
    ] as const) {
      // prepare: the caller read the region as available; the store has moved on
      const c = setup();
      const { release, image } = await withImage(c);
      const seen = { ...release, regions: { [EU]: { state: 'available' as const, updatedAt: T0 } } };
      await c.deps.releases.updateRegion(release.releaseId, EU, { state, ...(reason ? { reason } : {}) });
      // act
      const result = await gate(c, seen, image);
      // assess
      assert.deepEqual(result, verdict, `${state} ${reason}`);
      // Another delivery already asked for the boot: the job is sent again (FIFO deduplication drops it).
      assert.equal(c.deps.bootChecks.messages.length, state === 'booting' ? 1 : 0);
    }
  });

  it('re-driven for a region already booting, sends the job again and keeps its check record (the timeout counts from the first ask)', async () => {
    // prepare: the check was asked for an hour ago; the reconciler re-drives the gate now
    const c = setup();
    const first = check({ requestedAt: '2026-11-20T09:00:00.000Z' });
    const { release, image } = await booting(c, first);
    const seen = await c.deps.releases.get(release.releaseId);
    assert.ok(seen);
    // act
    const verdict = await gate(c, seen, image);
    // assess
    assert.deepEqual(verdict, { gate: 'checking' });
    assert.equal(c.deps.bootChecks.messages.length, 1);
    assert.deepEqual((await regionOf(c, release.releaseId))?.bootCheck, first);
  });

  it('refuses a stream that needs a boot when no boot-check queue is configured, saying how to skip', async () => {
    // prepare
    const c = setup();
    const { release, image } = await withImage(c);
    const { bootChecks: _q, ...deps } = c.deps;
    // act + assess
    await assert.rejects(
      bootGate(deps, { release, region: EU, image }),
      /stream web-base: bootCheck mode qemu needs the boot-check queue, and none is configured \(set bootCheck\.mode: none with allowUnverified to skip booting\)/,
    );
  });

  it('names the image and region when the release stream is unknown', async () => {
    // prepare
    const c = setup();
    const { release, image } = await withImage(c);
    // act + assess
    await assert.rejects(
      gate(c, { ...release, stream: 'gone' }, image),
      new RegExp(`image ${image.imageId} in ${EU}`),
    );
  });
});

describe('Function: advanceBootCheck() skips', () => {
  it('a job whose region is not booting, was already decided, or has no boot check', async () => {
    // prepare
    const c = setup();
    const { release, job } = await booting(c);
    // act
    const results = [];
    await c.deps.releases.updateRegion(release.releaseId, EU, { state: 'failed', bootCheck: check() });
    results.push(await advanceBootCheck(c.deps, job));
    await c.deps.releases.updateRegion(release.releaseId, EU, {
      state: 'booting',
      bootCheck: check({ passed: false }),
    });
    results.push(await advanceBootCheck(c.deps, job));
    await c.deps.releases.updateRegion(release.releaseId, EU, {
      state: 'booting',
      bootCheck: check({ mode: 'none' as never }),
    });
    results.push(await advanceBootCheck(c.deps, job));
    results.push(await advanceBootCheck(c.deps, { ...job, region: 'us-east-1' }));
    // assess
    assert.deepEqual(results, [
      { outcome: 'skipped', reason: `region ${EU} of ${release.releaseId} is failed` },
      { outcome: 'skipped', reason: `region ${EU} of ${release.releaseId} is booting` },
      { outcome: 'skipped', reason: 'boot check mode none' },
      { outcome: 'skipped', reason: `no region us-east-1 in ${release.releaseId}` },
    ]);
    assert.equal(c.checker.starts.length, 0, 'no machine started');
  });
});

describe('Function: advanceBootCheck() decides', () => {
  it('fails the region of an image that is gone or not bootable, without starting a machine', async () => {
    for (const [change, expected] of [
      ['gone', 'is gone'],
      ['pending', 'is pending (uefi)'],
      ['none', 'is available (none)'],
    ] as const) {
      // prepare
      const c = setup();
      const { release, image, job } = await booting(c);
      const images = c.imaging.of(EU).images;
      if (change === 'gone') images.images.delete(image.imageId);
      else if (change === 'pending') image.state = 'pending';
      else image.bootMode = 'none';
      // act
      const result = await advanceBootCheck(c.deps, job);
      // assess
      assert.deepEqual(result, {
        outcome: 'failed',
        releaseId: release.releaseId,
        region: EU,
        reason: `boot: image ${image.imageId} ${expected}`,
      });
      assert.equal(c.checker.starts.length, 0);
      assert.equal((await regionOf(c, release.releaseId))?.state, 'failed');
      assert.deepEqual(
        images.deprecated,
        change === 'gone' ? [] : [image.imageId],
        'only an image that exists is deprecated',
      );
    }
  });

  it('asks the checker to boot the image as it is, tagged with the release and the check', async () => {
    // prepare
    const c = setup({ mode: 'qemu', timeoutSeconds: 90, marker: 'READY>' });
    const { release, image, job } = await booting(c, check({ marker: 'READY>', timeoutSeconds: 90 }));
    // act
    await advanceBootCheck(c.deps, job);
    // assess
    assert.deepEqual(c.checker.starts, [
      {
        checkId: 'boot-web-base-00000001-eu-west-1',
        region: EU,
        imageId: image.imageId,
        architecture: 'arm64',
        bootMode: 'uefi',
        marker: 'READY>',
        timeoutSeconds: 90,
        tags: { ...releaseTags(release), 'stemcell:boot-check': 'boot-web-base-00000001-eu-west-1' },
      },
    ]);
  });

  it('passes on the marker: keeps the checker console log, logs, and says whether it was announced', async () => {
    // prepare
    const c = setup();
    const { release, job } = await booting(c);
    c.checker.next = { state: 'marker-seen', startedAt: T0, seconds: 7, consoleLog: '/seen.log' };
    c.checker.stopped = { consoleLog: '/stopped.log', lastLines: [] };
    // act
    const result = await advanceBootCheck(c.deps, job);
    // assess
    assert.deepEqual(result, {
      outcome: 'passed',
      releaseId: release.releaseId,
      region: EU,
      seconds: 7,
      announced: true,
    });
    const region = await regionOf(c, release.releaseId);
    assert.equal(region?.bootCheck?.consoleLog, '/stopped.log');
    assert.equal(region?.bootCheck?.startedAt, T0);
    assert.deepEqual(c.deps.logger.of('boot check passed'), {
      releaseId: release.releaseId,
      region: EU,
      imageId: job.imageId,
      seconds: 7,
    });
  });

  it('keeps the console log the observation named when stopping names none', async () => {
    // prepare
    const c = setup();
    const { release, job } = await booting(c);
    c.checker.next = { state: 'marker-seen', startedAt: T0, seconds: 7, consoleLog: '/seen.log' };
    // act
    await advanceBootCheck(c.deps, job);
    // assess
    assert.equal((await regionOf(c, release.releaseId))?.bootCheck?.consoleLog, '/seen.log');
  });

  it('passes but reports not announced when announce holds the image back (a pinned stream)', async () => {
    // prepare
    const c = setup();
    const deps = { ...c.deps, rollouts: new MemoryRolloutStore(), timer: new RecordingTimer() };
    await deps.rollouts.setPin('web-base', { stream: 'web-base', revision: 'r0', pinnedAt: T0 });
    const { job } = await booting(c);
    c.checker.next = { state: 'marker-seen', startedAt: T0, seconds: 7, consoleLog: '/seen.log' };
    // act
    const result = await advanceBootCheck(deps, job);
    // assess
    assert.equal(result.outcome, 'passed');
    assert.equal(result.outcome === 'passed' && result.announced, false);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
  });

  it('waits exactly the timeout for the marker before failing', async () => {
    // prepare
    const c = setup();
    const { job } = await booting(c);
    c.checker.next = { state: 'booting', startedAt: T0, lastLines: [] };
    // act
    c.deps.clock.advance(60_000);
    const atTimeout = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(atTimeout.outcome, 'pending');
  });

  it('waits for a machine up to the timeout plus the waiting budget, and no longer', async () => {
    // prepare
    const c = setup();
    const { job } = await booting(c);
    c.checker.next = { state: 'waiting' };
    // act
    c.deps.clock.advance(5 * 60_000);
    const early = await advanceBootCheck(c.deps, job);
    c.deps.clock.advance((60 + 600) * 1000 - 5 * 60_000);
    const atBudget = await advanceBootCheck(c.deps, job);
    c.deps.clock.advance(1500);
    const after = await advanceBootCheck(c.deps, job);
    // assess
    assert.deepEqual([early.outcome, atBudget.outcome], ['pending', 'pending']);
    assert.equal(reasonOf(after), 'boot: no qemu slot within 662 s', 'rounded seconds, no console lines');
  });

  it('says a smoke instance was never running, for an instance check', async () => {
    // prepare
    const c = setup({ mode: 'instance', timeoutSeconds: 60 });
    const { job } = await booting(c, check({ mode: 'instance' }));
    c.deps.bootChecker = () => c.checker as never;
    c.checker.next = { state: 'waiting' };
    // act
    c.deps.clock.advance(700_000);
    const result = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(reasonOf(result), 'boot: no running smoke instance within 700 s');
  });

  it('quotes the console lines the observation saw when stopping returns none, and records the boot time', async () => {
    // prepare
    const c = setup();
    const { release, job } = await booting(c);
    c.deps.clock.advance(10_000);
    c.checker.next = {
      state: 'booting',
      startedAt: c.deps.clock.now().toISOString(),
      lastLines: ['GRUB loading.'],
    };
    c.deps.clock.advance(61_000);
    // act
    const result = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(
      reasonOf(result),
      'boot: "login:" not seen within 60 s; last console lines:\n  GRUB loading.',
    );
    const failed = (await regionOf(c, release.releaseId))?.bootCheck;
    assert.equal(failed?.passed, false);
    assert.equal(failed?.startedAt, '2026-11-20T10:00:10.000Z');
    assert.equal(failed?.seconds, 61);
    assert.equal(failed?.reason, reasonOf(result));
    assert.equal(failed?.consoleLog, undefined);
  });

  it('quotes the last eight console lines, each cut at 200 characters, and nothing when there are none', async () => {
    // prepare
    const c = setup();
    const { job } = await booting(c);
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i} ${'x'.repeat(i === 9 ? 300 : 0)}`);
    c.checker.next = { state: 'stopped', reason: 'exited', lastLines: [] };
    c.checker.stopped = { lastLines: lines, consoleLog: '/c.log' };
    const quiet = setup();
    const q = await booting(quiet);
    quiet.checker.next = { state: 'stopped', reason: 'exited', lastLines: ['not quoted: the stop is newer'] };
    quiet.checker.stopped = { lastLines: [] };
    // act
    const result = await advanceBootCheck(c.deps, job);
    const silent = await advanceBootCheck(quiet.deps, q.job);
    // assess
    const quoted = reasonOf(result).split('\n');
    assert.equal(quoted[0], 'boot: exited; last console lines:');
    assert.deepEqual(
      quoted.slice(1, -1),
      lines.slice(2, 9).map((l) => `  ${l}`),
    );
    assert.equal(quoted.at(-1), `  ${(lines[9] ?? '').slice(0, 200)}`);
    assert.equal(reasonOf(silent), 'boot: exited; last console lines:\n  not quoted: the stop is newer');
    const none = setup();
    const n = await booting(none);
    none.checker.next = { state: 'stopped', reason: 'exited', lastLines: [] };
    assert.equal(reasonOf(await advanceBootCheck(none.deps, n.job)), 'boot: exited');
  });

  it('tags the kept image with the first line of the reason, cut to the 256 characters AWS allows', async () => {
    // prepare
    const c = setup();
    const { image, job } = await booting(c);
    c.checker.next = { state: 'stopped', reason: 'y'.repeat(300), lastLines: ['a console line'] };
    // act
    await advanceBootCheck(c.deps, job);
    // assess
    const tag = (await c.imaging.of(EU).images.get(image.imageId))?.tags['stemcell:boot-check'];
    assert.equal(tag, `boot: ${'y'.repeat(250)}`);
  });
});

describe('Function: consoleLines()', () => {
  it('drops terminal escapes, control characters and blank lines, trims line ends, keeps the newest', () => {
    // prepare
    const text =
      '\x1b[2J\x1b[1;1HBdsDxe: loading\x07  \r\n\n   \nGRUB\x1b[?25l  \n  Linux version 6.1\nlogin: ';
    // act + assess
    assert.deepEqual(consoleLines(text), ['BdsDxe: loading', 'GRUB', '  Linux version 6.1', 'login:']);
    assert.deepEqual(consoleLines(text, 2), ['  Linux version 6.1', 'login:']);
    assert.deepEqual(consoleLines(Array.from({ length: 30 }, (_, i) => `l${i}`).join('\n')).length, 20);
    assert.deepEqual(consoleLines('\x1b[m\x1b[0;32mok\x1b[0m'), ['ok']);
  });
});
