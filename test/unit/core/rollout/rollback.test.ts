// Rollback and pin over in-memory ports: a rollback is a new, higher release pointing at an earlier revision's
// images (reused where they still exist, rebuilt from the same tarball where not), sent to everyone at once; a
// pin holds new revisions back until unpin announces the newest; expire keeps what pins and rollbacks need.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReleaseNotFoundError } from '#core/model/errors.ts';
import {
  pin,
  protectedImages,
  type RollbackDeps,
  rollback,
  rollbackRevision,
  unpin,
} from '#core/rollout/rollback.ts';
import { RolloutStateError } from '#core/rollout/rollout.ts';
import { BuildJob } from '#events/aws.ts';
import type { ImageReady } from '#events/stemcell.ts';
import type { Release } from '#ports';
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
const US = 'us-east-1';

function setup(bootCheck: Record<string, unknown> = { mode: 'none', allowUnverified: true }) {
  const imaging = new FakeImaging();
  const queues = new Map<string, FakeQueue>();
  const deps = {
    config: testConfig({
      streams: {
        'web-base': {
          regions: [EU, US],
          sharing: { organization: true },
          bootCheck,
          rollout: { waves: [{ name: 'all', bakeMinutes: 60 }] },
        },
      },
    }),
    clock: new FakeClock(),
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
    rollouts: new MemoryRolloutStore(),
    timer: new RecordingTimer(),
    bootChecks: new FakeQueue('boot-checks.fifo'),
    buildQueue: (region: string) => {
      const q = queues.get(region) ?? new FakeQueue(`build-${region}.fifo`);
      queues.set(region, q);
      return q;
    },
  } satisfies RollbackDeps;
  return { deps, imaging, queues };
}

/** Registers an available image of `revision` in `region`, as register would. */
async function register(c: ReturnType<typeof setup>, revision: string, region: string): Promise<string> {
  const { imageId } = await c.imaging.of(region).images.register({
    name: `stemcell/web-base/${revision}`,
    description: 'd',
    snapshotId: `snap-${revision}-${region}`,
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    rootDeviceName: '/dev/xvda',
    tags: {},
    clientToken: `${revision}-${region}`,
  });
  return imageId;
}

/** A release whose regions were announced with registered images (booted, when `booted`). */
async function announced(c: ReturnType<typeof setup>, revision: string, booted = false): Promise<Release> {
  const release = c.deps.releases.seed('web-base', revision, [EU, US]);
  for (const region of [EU, US]) {
    const imageId = await register(c, revision, region);
    await c.deps.releases.updateRegion(release.releaseId, region, {
      state: 'announced',
      imageId,
      snapshotId: `snap-${revision}-${region}`,
      ...(booted
        ? {
            bootCheck: { mode: 'qemu', marker: 'login:', timeoutSeconds: 60, requestedAt: 't', passed: true },
          }
        : {}),
    });
  }
  const stored = await c.deps.releases.get(release.releaseId);
  assert.ok(stored);
  return stored;
}

const imageOf = (release: Release, region: string) => release.regions[region]?.imageId ?? '';

describe('Function: rollback()', () => {
  it('makes a new, higher release of the earlier images, sent to every account at once, marked', async () => {
    // prepare
    const c = setup();
    const r1 = await announced(c, 'r1');
    const r2 = await announced(c, 'r2');
    c.deps.events.events = [];
    // act
    const result = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.equal(result.rollbackOf, 'r1');
    assert.equal(result.release.revision, 'r1-rollback-1');
    assert.ok(result.release.sequence > r2.sequence, 'forward, never backwards');
    assert.deepEqual(result.release.source, r1.source);
    assert.deepEqual(result.reused, [
      { region: EU, imageId: imageOf(r1, EU) },
      { region: US, imageId: imageOf(r1, US) },
    ]);
    assert.deepEqual(result.rebuilt, []);
    const started = c.deps.events.ofType('Release Started');
    assert.equal(started.length, 1);
    assert.deepEqual(started[0]?.detail, {
      version: 1,
      stream: 'web-base',
      revision: 'r1-rollback-1',
      sequence: result.release.sequence,
      releaseId: result.release.releaseId,
      regions: [EU, US],
      source: r1.source,
      startedAt: '2026-11-20T10:00:00.000Z',
    });
    const ready = c.deps.events.ofType('Image Ready').map((e) => e.detail as ImageReady);
    assert.deepEqual(
      ready.map((d) => [d.region, d.imageId, d.rollbackOf, d.audience, d.releaseId]),
      [
        [EU, imageOf(r1, EU), 'r1', undefined, result.release.releaseId],
        [US, imageOf(r1, US), 'r1', undefined, result.release.releaseId],
      ],
    );
    assert.deepEqual(await c.deps.rollouts.get(result.release.releaseId), {
      releaseId: result.release.releaseId,
      stream: 'web-base',
      state: 'complete',
      waves: [],
      images: {},
      rollbackOf: 'r1',
      version: 1,
    });
    assert.deepEqual(c.deps.logger.of('rollback'), {
      releaseId: result.release.releaseId,
      to: 'r1',
      reused: result.reused,
      rebuilt: [],
    });
    assert.equal(result.release.uploadedAt, c.deps.clock.now().toISOString());
    const stored = await c.deps.releases.get(result.release.releaseId);
    assert.equal(stored?.regions[EU]?.state, 'announced');
    assert.equal(stored?.regions[EU]?.imageId, imageOf(r1, EU));
  });

  it('rebuilds from the earlier tarball the regions whose earlier image is gone, saying why', async () => {
    // prepare
    const c = setup();
    const r1 = await announced(c, 'r1');
    await announced(c, 'r2');
    await c.imaging.of(US).images.deregister(imageOf(r1, US));
    // act
    const result = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(result.reused, [{ region: EU, imageId: imageOf(r1, EU) }]);
    assert.deepEqual(result.rebuilt, [{ region: US, reason: `image ${imageOf(r1, US)} is deregistered` }]);
    assert.equal(c.queues.get(EU)?.messages.length ?? 0, 0);
    const jobs = c.queues.get(US)?.messages ?? [];
    assert.equal(jobs.length, 1);
    const job = BuildJob.parse(JSON.parse(jobs[0]?.body ?? '{}'));
    assert.equal(job.releaseId, result.release.releaseId);
    assert.equal(job.revision, 'r1-rollback-1');
    assert.deepEqual(job.source, r1.source);
  });

  it('names an image that is gone and a region the earlier revision never had', async () => {
    // prepare
    const c = setup();
    const r1 = await announced(c, 'r1');
    await announced(c, 'r2');
    c.imaging.of(EU).images.images.delete(imageOf(r1, EU));
    const stored = c.deps.releases.releases.get(r1.releaseId);
    assert.ok(stored);
    delete stored.regions[US];
    // act
    const result = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(result.reused, []);
    assert.deepEqual(result.rebuilt, [
      { region: EU, reason: `image ${imageOf(r1, EU)} is gone` },
      { region: US, reason: `r1 has no image in ${US}` },
    ]);
  });

  it('carries a passed boot check over, so the boot gate opens at once', async () => {
    // prepare: the stream boot-checks its images; r1's booted
    const c = setup({ mode: 'qemu', timeoutSeconds: 60 });
    const r1 = await announced(c, 'r1', true);
    await announced(c, 'r2', true);
    // act
    const result = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.equal(c.deps.bootChecks.messages.length, 0, 'no second boot');
    assert.equal(
      c.deps.events.ofType('Image Ready').filter((e) => (e.detail as ImageReady).rollbackOf).length,
      2,
    );
    const stored = await c.deps.releases.get(result.release.releaseId);
    assert.equal(stored?.regions[EU]?.state, 'announced');
    assert.equal(stored?.regions[EU]?.bootCheck?.passed, true);
    assert.equal(stored?.regions[EU]?.snapshotId, 'snap-r1-eu-west-1');
    assert.equal(stored?.regions[EU]?.imageId, imageOf(r1, EU));
  });

  it('boots again an earlier image that never passed a boot check', async () => {
    // prepare
    const c = setup({ mode: 'qemu', timeoutSeconds: 60 });
    await announced(c, 'r1', false);
    await announced(c, 'r2', true);
    // act
    const result = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.equal(c.deps.bootChecks.messages.length, 2);
    const stored = await c.deps.releases.get(result.release.releaseId);
    assert.equal(stored?.regions[EU]?.state, 'booting');
  });

  it('refuses a rollback to the newest release, and to a revision that does not exist', async () => {
    // prepare
    const c = setup();
    await announced(c, 'r1');
    // act + assess
    await assert.rejects(
      rollback(c.deps, 'web-base', 'r1'),
      (err: Error) =>
        err instanceof RolloutStateError && /r1 is already the newest release/.test(err.message),
    );
    await assert.rejects(rollback(c.deps, 'web-base', 'r9'), ReleaseNotFoundError);
    assert.equal(c.deps.releases.releases.size, 1);
  });

  it('numbers repeated rollbacks on, past a revision already taken', async () => {
    // prepare: r1-rollback-2 exists, r1-rollback-1 does not
    const c = setup();
    await announced(c, 'r1');
    await announced(c, 'r2');
    c.deps.releases.seed('web-base', 'r1-rollback-2', [EU, US]);
    // act
    const first = await rollback(c.deps, 'web-base', 'r1');
    const second = await rollback(c.deps, 'web-base', 'r1');
    // assess
    assert.equal(first.release.revision, 'r1-rollback-3');
    assert.equal(second.release.revision, 'r1-rollback-4');
  });
});

describe('Function: rollbackRevision()', () => {
  it('suffixes with -rollback-n and keeps to 128 characters', () => {
    assert.equal(rollbackRevision('2026.11.20', 2), '2026.11.20-rollback-2');
    assert.equal(rollbackRevision('x'.repeat(130), 1).length, 128);
  });
});

describe('Function: pin()', () => {
  it('pins a stream to a revision it has, and refuses one it does not', async () => {
    // prepare
    const c = setup();
    await announced(c, 'r1');
    // act
    const pinned = await pin(c.deps, 'web-base', 'r1');
    // assess
    assert.deepEqual(pinned, { stream: 'web-base', revision: 'r1', pinnedAt: '2026-11-20T10:00:00.000Z' });
    assert.deepEqual(await c.deps.rollouts.getPin('web-base'), pinned);
    await assert.rejects(pin(c.deps, 'web-base', 'r9'), ReleaseNotFoundError);
    assert.equal((await c.deps.rollouts.getPin('web-base'))?.revision, 'r1');
  });
});

describe('Function: unpin()', () => {
  it('removes the pin and announces the newest release it held back, in the regions ready for it', async () => {
    // prepare: r2 was built while pinned to r1; its US image is not available yet
    const c = setup({ mode: 'none', allowUnverified: true });
    await announced(c, 'r1');
    await pin(c.deps, 'web-base', 'r1');
    const r2 = c.deps.releases.seed('web-base', 'r2', [EU, US]);
    const eu = { imageId: await register(c, 'r2', EU) };
    const us = { imageId: await register(c, 'r2', US) };
    const usImage = c.imaging.of(US).images.images.get(us.imageId);
    assert.ok(usImage);
    usImage.state = 'pending';
    await c.deps.releases.updateRegion(r2.releaseId, EU, { state: 'available', imageId: eu.imageId });
    await c.deps.releases.updateRegion(r2.releaseId, US, { state: 'available', imageId: us.imageId });
    c.deps.events.events = [];
    // act
    const result = await unpin(c.deps, 'web-base');
    // assess
    assert.equal(await c.deps.rollouts.getPin('web-base'), undefined);
    assert.deepEqual(result, { announced: { releaseId: r2.releaseId, regions: [EU] } });
    const ready = c.deps.events.ofType('Image Ready').map((e) => e.detail as ImageReady);
    assert.deepEqual(
      ready.map((d) => [d.region, d.imageId]),
      [[EU, eu.imageId]],
    );
  });

  it('announces nothing when the newest release has no region waiting, or the stream has none', async () => {
    // prepare
    const c = setup();
    const empty = await unpin(c.deps, 'web-base');
    await announced(c, 'r1');
    const r2 = c.deps.releases.seed('web-base', 'r2', [EU, US]);
    await c.deps.releases.updateRegion(r2.releaseId, EU, { state: 'available' });
    // act
    const result = await unpin(c.deps, 'web-base');
    // assess
    assert.deepEqual(empty, {});
    assert.deepEqual(result, {});
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
  });
});

describe('Function: protectedImages()', () => {
  it('keeps the pinned revision image and the images rollback releases point at, per region', async () => {
    // prepare
    const c = setup();
    const r1 = await announced(c, 'r1');
    const r2 = await announced(c, 'r2');
    await announced(c, 'r3');
    await pin(c.deps, 'web-base', 'r2');
    const back = await rollback(c.deps, 'web-base', 'r1');
    // act
    const eu = await protectedImages(c.deps, 'web-base', EU);
    // assess
    assert.deepEqual(
      [...eu.entries()].sort(),
      [
        [imageOf(r1, EU), `rolled back to (${back.release.revision})`],
        [imageOf(r2, EU), 'pinned (r2)'],
      ].sort(),
    );
    const unpinned = setup();
    await announced(unpinned, 'r1');
    assert.equal((await protectedImages(unpinned.deps, 'web-base', EU)).size, 0);
  });
});

describe('Function: rollback() and unpin() edges', () => {
  it('names the command of an unknown stream', async () => {
    // prepare
    const c = setup();
    // act + assess
    await assert.rejects(rollback(c.deps, 'nope', 'r1'), /unknown stream "nope" \(rollback\)/);
  });

  it('unpin announces no region of the newest release whose boot failed, even with its image still there', async () => {
    // prepare
    const c = setup();
    await announced(c, 'r1');
    await pin(c.deps, 'web-base', 'r1');
    const r2 = c.deps.releases.seed('web-base', 'r2', [EU, US]);
    const imageId = await register(c, 'r2', EU);
    await c.deps.releases.updateRegion(r2.releaseId, EU, { state: 'failed', imageId, reason: 'boot: panic' });
    c.deps.events.events = [];
    // act
    const result = await unpin(c.deps, 'web-base');
    // assess
    assert.deepEqual(result, {});
    assert.equal(c.deps.events.ofType('Image Ready').length, 0);
  });
});
