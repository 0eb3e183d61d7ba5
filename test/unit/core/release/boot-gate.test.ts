// The boot gate's rules, with a scripted boot checker: no "Image Ready" before the marker; a failed or timed-out
// boot fails the region with `boot: …`, keeps the image deprecated and tagged, and stops the machine.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BootCheckDeps } from '#core/deps.ts';
import { BootHostError } from '#core/model/errors.ts';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { announceImage } from '#core/release/announce.ts';
import { advanceBootCheck } from '#core/release/boot-check.ts';
import { BOOT_CHECK_TAG, bootCheckMode } from '#core/release/boot-gate.ts';
import { reconcile } from '#core/release/reconcile.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { BootCheckJob } from '#events/aws.ts';
import { BuildFailedDetail } from '#events/stemcell.ts';
import type { BootChecker, BootCheckRequest, BootObservation } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeImaging,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  OU_A,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

/** A checker whose observations the test scripts; records every call. */
class ScriptedChecker implements BootChecker {
  readonly mode = 'qemu' as const;
  starts: BootCheckRequest[] = [];
  stops = 0;
  next: BootObservation = { state: 'waiting' };
  /** Thrown by start (the host cannot run the boot now), when set. */
  hostError: Error | undefined;
  async start(request: BootCheckRequest) {
    this.starts.push(request);
    if (this.hostError) throw this.hostError;
  }
  async observe() {
    return this.next;
  }
  async stop() {
    this.stops++;
    return {
      consoleLog: '/data/boot-checks/x.console.log',
      lastLines: ['[ 1.0] Kernel panic - not syncing: No working init found.'],
    };
  }
}

function setup(bootCheck: Record<string, unknown> = { mode: 'qemu', timeoutSeconds: 60 }) {
  const imaging = new FakeImaging();
  const checker = new ScriptedChecker();
  const clock = new FakeClock();
  const deps = {
    config: testConfig({
      streams: {
        'web-base': { regions: ['eu-west-1'], sharing: { organization: true }, bootCheck },
      },
    }),
    clock,
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
    bootChecks: new FakeQueue('boot-checks.fifo'),
    defaultBootCheckMode: 'qemu' as const,
    bootChecker: () => checker,
  } satisfies BootCheckDeps;
  return { deps, imaging, checker, clock };
}

/** A release whose eu-west-1 image is registered and available, as announce receives it. */
async function availableImage(c: ReturnType<typeof setup>) {
  const release = c.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
  const snapshot = await c.imaging.of('eu-west-1').snapshots.create('vol-1', {
    description: 'x',
    tags: { ...releaseTags(release), [TAG.sha256]: SHA },
    clientToken: 't',
  });
  const registered = await registerSnapshot(c.deps, {
    region: 'eu-west-1',
    snapshotId: snapshot.snapshotId,
    result: 'succeeded',
    cause: '',
  });
  assert.equal(registered.outcome, 'registered');
  const imageId = registered.outcome === 'registered' ? registered.imageId : '';
  return { release, imageId };
}

/** An available image that announce sent to its boot check, and the job the boot-check worker receives. */
async function bootingImage(c: ReturnType<typeof setup>) {
  const { release, imageId } = await availableImage(c);
  await announceImage(c.deps, available(imageId));
  const job = { version: 1 as const, releaseId: release.releaseId, region: 'eu-west-1', imageId };
  return { release, imageId, job };
}

/** What the checker sees of a kernel that panicked: the machine stopped, no marker. */
const panicked = (c: ReturnType<typeof setup>): BootObservation => ({
  state: 'stopped',
  startedAt: c.clock.now().toISOString(),
  reason: 'Kernel panic - not syncing: No working init found.',
  lastLines: [],
});

const available = (imageId: string) => ({
  region: 'eu-west-1',
  imageId,
  state: 'available' as const,
  errorMessage: '',
});

describe('Function: bootCheckMode()', () => {
  it('uses the world default when the stream names none, and none for data-only streams', () => {
    // prepare
    const stream = testConfig().streams['web-base'];
    assert.ok(stream);
    const unnamed = { ...stream, bootCheck: { ...stream.bootCheck, mode: undefined } };
    // act + assess
    assert.equal(bootCheckMode({ defaultBootCheckMode: 'instance' }, unnamed), 'instance');
    assert.equal(bootCheckMode({ defaultBootCheckMode: 'qemu' }, unnamed), 'qemu');
    assert.equal(bootCheckMode({}, { ...unnamed, bootMode: 'none' }), 'none');
  });
});

describe('Function: announceImage() behind the boot gate', () => {
  it('does not announce an available image; it records booting and queues one boot check', async () => {
    // prepare
    const c = setup();
    const { release, imageId } = await availableImage(c);
    // act
    const first = await announceImage(c.deps, available(imageId));
    const again = await announceImage(c.deps, available(imageId));
    // assess
    assert.equal(first.outcome, 'boot-checking');
    assert.equal(again.outcome, 'boot-checking');
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    assert.equal(c.imaging.of('eu-west-1').images.shares.length, 0, 'not shared before it booted');
    const region = (await c.deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'booting');
    assert.equal(region?.bootCheck?.mode, 'qemu');
    assert.equal(region?.bootCheck?.marker, 'login:');
    assert.equal(c.deps.bootChecks.messages.length, 1, 'a repeated request is deduplicated');
    const job = BootCheckJob.parse(JSON.parse(c.deps.bootChecks.messages[0]?.body ?? '{}'));
    assert.deepEqual(job, { version: 1, releaseId: release.releaseId, region: 'eu-west-1', imageId });
  });

  it('announces at once a stream with bootCheck none', async () => {
    // prepare
    const c = setup({ mode: 'none', allowUnverified: true });
    const { imageId } = await availableImage(c);
    // act
    const result = await announceImage(c.deps, available(imageId));
    // assess
    assert.equal(result.outcome, 'announced');
    assert.equal(c.deps.bootChecks.messages.length, 0);
  });
});

describe('Function: advanceBootCheck()', () => {
  it('starts the machine, stays pending while it boots, then announces once the marker is seen', async () => {
    // prepare
    const c = setup();
    const { release, imageId, job } = await bootingImage(c);
    // act
    c.checker.next = { state: 'waiting' };
    const waiting = await advanceBootCheck(c.deps, job);
    c.checker.next = { state: 'booting', startedAt: c.clock.now().toISOString(), lastLines: [] };
    c.clock.advance(30_000);
    const booting = await advanceBootCheck(c.deps, job);
    const readyBefore = c.deps.events.ofType('Image Ready').length;
    c.checker.next = {
      state: 'marker-seen',
      startedAt: c.clock.now().toISOString(),
      seconds: 31.5,
      consoleLog: '/data/boot-checks/x.console.log',
    };
    const passed = await advanceBootCheck(c.deps, job);
    const late = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(waiting.outcome, 'pending');
    assert.equal(booting.outcome, 'pending');
    assert.equal(readyBefore, 0, 'nothing announced while booting');
    assert.equal(passed.outcome, 'passed');
    assert.equal(late.outcome, 'skipped');
    assert.equal(c.deps.events.ofType('Image Ready').length, 1);
    assert.equal(c.checker.stops, 1);
    const request = c.checker.starts[0];
    assert.equal(request?.imageId, imageId);
    assert.equal(request?.marker, 'login:');
    assert.equal(request?.tags[BOOT_CHECK_TAG], request?.checkId);
    const region = (await c.deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'announced');
    assert.equal(region?.bootCheck?.passed, true);
    assert.equal(region?.bootCheck?.seconds, 31.5);
    assert.equal(region?.bootCheck?.consoleLog, '/data/boot-checks/x.console.log');
  });

  it('a boot that stops without the marker fails the region: Build Failed boot: …, image deprecated and tagged, never announced', async () => {
    // prepare
    const c = setup();
    const { release, imageId, job } = await bootingImage(c);
    c.checker.next = panicked(c);
    // act
    const result = await advanceBootCheck(c.deps, job);
    const retried = await announceImage(c.deps, available(imageId));
    // assess
    assert.equal(result.outcome, 'failed');
    const failed = c.deps.events.ofType('Build Failed');
    assert.equal(failed.length, 1);
    const detail = BuildFailedDetail.parse(failed[0]?.detail);
    assert.match(detail.reason, /^boot: Kernel panic - not syncing/);
    assert.match(detail.reason, /last console lines:\n.*No working init found/);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    assert.equal(retried.outcome, 'ignored', 'a late AMI event does not announce a failed region');
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    const image = await c.imaging.of('eu-west-1').images.get(imageId);
    assert.ok(image, 'the image is kept for a look');
    assert.ok(image.deprecatedAt, 'and deprecated');
    assert.match(image.tags[BOOT_CHECK_TAG] ?? '', /^boot: Kernel panic/);
    assert.equal(c.checker.stops, 1, 'the machine is stopped');
    const region = (await c.deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'failed');
    assert.equal(region?.bootCheck?.passed, false);
    assert.equal(region?.bootCheck?.consoleLog, '/data/boot-checks/x.console.log');
  });

  it('fails a boot that shows no marker within the timeout, and not a moment before', async () => {
    // prepare
    const c = setup({ mode: 'qemu', timeoutSeconds: 60, marker: 'READY>' });
    const { job } = await bootingImage(c);
    c.checker.next = {
      state: 'booting',
      startedAt: c.clock.now().toISOString(),
      lastLines: ['GRUB loading.'],
    };
    // act
    c.clock.advance(59_000);
    const before = await advanceBootCheck(c.deps, job);
    c.clock.advance(2_000);
    const after = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(before.outcome, 'pending');
    assert.equal(after.outcome, 'failed');
    assert.match(after.outcome === 'failed' ? after.reason : '', /^boot: "READY>" not seen within 60 s/);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    assert.equal(c.checker.stops, 1);
  });

  it('keeps a check the host holds back pending past any budget, blaming no image, and counts the wait anew after it', async () => {
    // prepare
    const c = setup();
    const { job, imageId } = await bootingImage(c);
    c.checker.hostError = new BootHostError(
      'boot check in eu-west-1: no t3.micro capacity in any builder subnet',
    );
    // act: an hour of no capacity, then a full data folder as the checker reports it
    const held = [];
    for (let i = 0; i < 6; i++) {
      c.clock.advance(10 * 60_000);
      held.push(await advanceBootCheck(c.deps, job));
    }
    c.checker.hostError = undefined;
    c.checker.next = {
      state: 'waiting',
      hostCondition: 'data folder full: 1.0 MiB free, 40.0 MiB needed (/d)',
    };
    const full = await advanceBootCheck(c.deps, job);
    c.checker.next = { state: 'waiting', since: c.clock.now().toISOString() };
    c.clock.advance(60_000);
    const afterwards = await advanceBootCheck(c.deps, job);
    // assess
    assert.deepEqual(
      held.map((o) => o.outcome === 'pending' && o.hostCondition),
      Array(6).fill('boot check in eu-west-1: no t3.micro capacity in any builder subnet'),
    );
    assert.equal(
      full.outcome === 'pending' && full.hostCondition,
      'data folder full: 1.0 MiB free, 40.0 MiB needed (/d)',
    );
    assert.equal(
      afterwards.outcome,
      'pending',
      'the waiting budget counts from the end of the host condition',
    );
    assert.equal(c.deps.events.ofType('Build Failed').length, 0);
    assert.deepEqual(c.imaging.of('eu-west-1').images.deprecated, []);
    assert.equal((await c.deps.releases.list())[0]?.regions['eu-west-1']?.state, 'booting', imageId);
    // An operator sees why it waits, and for which release and region.
    const warned = c.deps.logger.attributes.filter((a) => a.message === 'boot check held back by the host');
    assert.equal(warned.length, 7);
    assert.deepEqual(warned.at(-1)?.attributes, {
      releaseId: job.releaseId,
      region: 'eu-west-1',
      reason: 'data folder full: 1.0 MiB free, 40.0 MiB needed (/d)',
    });
  });

  it('fails a check that never got a machine within the waiting budget', async () => {
    // prepare
    const c = setup();
    const { job } = await bootingImage(c);
    c.checker.next = { state: 'waiting' };
    // act
    c.clock.advance(30 * 60_000);
    const result = await advanceBootCheck(c.deps, job);
    // assess
    assert.equal(result.outcome, 'failed');
    assert.match(result.outcome === 'failed' ? result.reason : '', /^boot: no qemu slot within/);
  });
});

describe('Function: reconcile() behind the boot gate', () => {
  const regionOf = async (c: ReturnType<typeof setup>, releaseId: string) =>
    (await c.deps.releases.get(releaseId))?.regions['eu-west-1'];

  it('asks for a boot check of an available image announce never saw, and announces nothing', async () => {
    // prepare: killed before announce ran (the AMI event never handled)
    const c = setup();
    const { release } = await availableImage(c);
    // act
    const report = await reconcile(c.deps);
    const again = await reconcile(c.deps);
    // assess
    assert.deepEqual([report.announced, again.announced], [[], []]);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    assert.equal(c.imaging.of('eu-west-1').images.shares.length, 0, 'not shared before it booted');
    assert.equal((await regionOf(c, release.releaseId))?.state, 'booting');
    assert.equal(c.deps.bootChecks.messages.length, 1);
  });

  it('asks again for a check whose job was lost, while the region is booting', async () => {
    // prepare: the region is booting, but its job is gone (dead-lettered, or never sent before a kill)
    const c = setup();
    const { release, imageId } = await availableImage(c);
    await announceImage(c.deps, available(imageId));
    c.deps.bootChecks = new FakeQueue('boot-checks.fifo');
    // act
    const report = await reconcile(c.deps);
    // assess
    assert.deepEqual(report.announced, []);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    assert.equal((await regionOf(c, release.releaseId))?.state, 'booting');
    const job = BootCheckJob.parse(JSON.parse(c.deps.bootChecks.messages[0]?.body ?? '{}'));
    assert.deepEqual(job, { version: 1, releaseId: release.releaseId, region: 'eu-west-1', imageId });
  });

  it('announces an image whose check passed when the worker died before announcing it', async () => {
    // prepare: the marker was seen and recorded, then "Image Ready" failed (the worker killed there)
    const c = setup();
    const { release, imageId, job } = await bootingImage(c);
    c.checker.next = {
      state: 'marker-seen',
      startedAt: c.clock.now().toISOString(),
      seconds: 12,
      consoleLog: '/data/boot-checks/x.console.log',
    };
    c.deps.events.failNext = 1;
    await assert.rejects(advanceBootCheck(c.deps, job), /PutEvents failed/);
    assert.equal((await regionOf(c, release.releaseId))?.bootCheck?.passed, true);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    // act
    const report = await reconcile(c.deps);
    // assess
    assert.deepEqual(report.announced, [{ releaseId: release.releaseId, region: 'eu-west-1', imageId }]);
    assert.equal(c.deps.events.ofType('Image Ready').length, 1);
    assert.equal((await regionOf(c, release.releaseId))?.state, 'announced');
  });

  it('fails the region of a check that failed when the worker died before failing it; never announces it', async () => {
    // prepare: the failed check was recorded, then the worker was killed before the region failed
    const c = setup();
    const { release, imageId, job } = await bootingImage(c);
    c.checker.next = panicked(c);
    const images = c.imaging.of('eu-west-1').images;
    const deprecate = images.deprecate.bind(images);
    images.deprecate = async () => {
      throw new Error('killed');
    };
    await assert.rejects(advanceBootCheck(c.deps, job), /killed/);
    images.deprecate = deprecate;
    assert.equal((await regionOf(c, release.releaseId))?.state, 'booting');
    // act
    const report = await reconcile(c.deps);
    await reconcile(c.deps);
    // assess
    assert.deepEqual(report.announced, []);
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
    const failed = c.deps.events.ofType('Build Failed');
    assert.equal(failed.length, 1);
    assert.match(BuildFailedDetail.parse(failed[0]?.detail).reason, /^boot: Kernel panic/);
    assert.equal((await regionOf(c, release.releaseId))?.state, 'failed');
    assert.ok((await images.get(imageId))?.deprecatedAt, 'the image is kept, deprecated');
  });
});
