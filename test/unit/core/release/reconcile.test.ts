// The reconciler's decisions, one step at a time over in-memory ports: which recorded states it re-drives
// (a snapshot with no image, an image not announced, a build job in the DLQ, an account that never reported,
// an account that joined later), what it leaves alone, and what it reports. The restart scenarios over the
// real local stack are in test/integration/flow/reconcile.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ReconcileDeps } from '#core/deps.ts';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { deliverLatestTo, reconcile } from '#core/release/reconcile.ts';
import { BuildFailedDetail, ImageReadyDetail } from '#events/stemcell.ts';
import type { FifoQueue, QueueMessage, Release } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeImaging,
  FakeOrganization,
  FakePublisher,
  FakeReleaseStore,
  OU_A,
  OU_B,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore } from '#test/support/rollout-fakes.ts';

const EU = 'eu-west-1';
const US = 'us-east-1';
const A1 = '200000000001';
const A2 = '200000000002';
const A3 = '200000000003';

/** A dead-letter queue holding messages until deleted; every receive is recorded. */
class FakeDeadLetters implements FifoQueue {
  readonly name: string;
  held: QueueMessage[] = [];
  receives: Array<{ max?: number; visibilityTimeoutSeconds?: number }> = [];
  deleted: string[] = [];
  constructor(name: string) {
    this.name = name;
  }
  add(body: string, receiveCount = 3): void {
    const n = this.held.length + this.deleted.length + 1;
    this.held.push({ messageId: `m${n}`, body, receiptHandle: `rh${n}`, receiveCount, groupId: 'g' });
  }
  async send(): Promise<{ messageId: string }> {
    throw new Error('the reconciler sends nothing to a DLQ');
  }
  async receive(opts: { max?: number; visibilityTimeoutSeconds?: number } = {}): Promise<QueueMessage[]> {
    this.receives.push(opts);
    if (this.receives.length > 50) throw new Error('receive loop does not end');
    // Like SQS, a received message is invisible until deleted or its visibility runs out (not in this test).
    const batch = this.held.filter((m) => !this.deleted.includes(m.receiptHandle)).slice(0, opts.max ?? 1);
    this.held = this.held.filter((m) => !batch.includes(m));
    return batch;
  }
  async delete(receiptHandle: string): Promise<void> {
    this.deleted.push(receiptHandle);
  }
  async changeVisibility(): Promise<void> {}
}

function setup(opts: { config?: ReturnType<typeof testConfig>; dlq?: boolean; memberBusName?: string } = {}) {
  const imaging = new FakeImaging();
  const dlqs = new Map<string, FakeDeadLetters>();
  const deps: ReconcileDeps & { releases: FakeReleaseStore; events: FakePublisher; logger: AttributeLogger } =
    {
      config: opts.config ?? testConfig(),
      clock: new FakeClock('2026-11-20T12:00:00.000Z'),
      logger: new AttributeLogger(),
      releases: new FakeReleaseStore(),
      events: new FakePublisher(),
      imaging: imaging.of,
      organization: new FakeOrganization([
        { id: A1, ou: OU_A },
        { id: A2, ou: OU_A },
        { id: A3, ou: OU_B },
      ]),
      ...(opts.memberBusName ? { memberBusName: opts.memberBusName } : {}),
      ...(opts.dlq
        ? {
            buildDeadLetters: (region: string) => {
              let q = dlqs.get(region);
              if (!q) {
                q = new FakeDeadLetters(`build-${region}-dlq.fifo`);
                dlqs.set(region, q);
              }
              return q;
            },
          }
        : {}),
    };
  const dlq = (region: string) => {
    const q = deps.buildDeadLetters?.(region);
    if (!(q instanceof FakeDeadLetters)) throw new Error('no DLQ in this setup');
    return q;
  };
  return { deps, imaging, dlqs, dlq };
}

type Setup = ReturnType<typeof setup>;

/** A release whose region `region` has a snapshot in `state`, recorded as snapshotting. */
async function snapshotting(
  s: Setup,
  region: string,
  state: 'completed' | 'pending' | 'error' = 'completed',
) {
  const release = s.deps.releases.seed('web-base', `r${s.deps.releases.releases.size + 1}`, [EU, US]);
  const snapshot = await s.imaging.of(region).snapshots.create('vol-1', {
    description: 'x',
    tags: { ...releaseTags(release), [TAG.sha256]: SHA },
    clientToken: 't',
  });
  snapshot.state = state;
  await s.deps.releases.updateRegion(release.releaseId, region, { snapshotId: snapshot.snapshotId });
  return { release, snapshotId: snapshot.snapshotId };
}

/** A release whose region `region` has an image in `imageState`, recorded in `recorded`. */
async function imaged(
  s: Setup,
  region: string,
  recorded: 'registering' | 'available' | 'booting' | 'announced' | 'snapshotting',
  imageState: 'available' | 'pending' | 'failed' | 'deregistered' = 'available',
  updatedAt = '2026-11-20T12:00:00.000Z',
) {
  const release = s.deps.releases.seed('web-base', `r${s.deps.releases.releases.size + 1}`, [EU, US]);
  const imageId = await registered(s, region, release, imageState);
  await s.deps.releases.updateRegion(release.releaseId, region, { state: recorded, imageId, updatedAt });
  return { release, imageId };
}

/** An image of `release` registered in `region`, in `imageState`. */
async function registered(
  s: Setup,
  region: string,
  release: Release,
  imageState: 'available' | 'pending' | 'failed' | 'deregistered' = 'available',
): Promise<string> {
  const images = s.imaging.of(region).images;
  const { imageId } = await images.register({
    name: `stemcell/web-base/${release.revision}`,
    description: 'x',
    snapshotId: 'snap-1',
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    rootDeviceName: '/dev/xvda',
    tags: { ...releaseTags(release), [TAG.sha256]: SHA },
    clientToken: `t-${region}`,
  });
  const image = images.images.get(imageId);
  if (image) image.state = imageState;
  return imageId;
}

const stored = async (s: Setup, release: Release, region: string) =>
  (await s.deps.releases.get(release.releaseId))?.regions[region];

describe('Function: reconcile()', () => {
  it('registers a completed snapshot with no image, announces it, and reports both; a second run does nothing', async () => {
    // prepare
    const s = setup();
    const { release } = await snapshotting(s, EU);
    // act
    const first = await reconcile(s.deps);
    const logged = s.deps.logger.lines.filter((l) => l.message === 'reconciled').length;
    const second = await reconcile(s.deps);
    // assess
    const region = await stored(s, release, EU);
    assert.equal(region?.state, 'announced');
    assert.ok(region?.imageId);
    assert.deepEqual(first, {
      failed: [],
      registered: [{ releaseId: release.releaseId, region: EU, imageId: region.imageId }],
      announced: [{ releaseId: release.releaseId, region: EU, imageId: region.imageId }],
      redelivered: [],
    });
    assert.equal(s.deps.events.ofType('Image Ready').length, 1);
    assert.deepEqual(second, { failed: [], registered: [], announced: [], redelivered: [] });
    assert.equal(logged, 1);
    assert.deepEqual(s.deps.logger.of('reconciled'), first, 'the log line carries the report');
    assert.equal(s.deps.logger.lines.filter((l) => l.message === 'reconciled').length, 1, 'nothing to log');
    assert.equal((await stored(s, release, US))?.state, 'snapshotting', 'no snapshot there: left alone');
  });

  it('completes a release whose every region was announced but that was never marked complete (a crash between the two), once', async () => {
    // prepare: both regions announced, no completedAt (killed after the last announcement, before the check)
    const s = setup();
    const { release } = await imaged(s, EU, 'announced');
    const us = await registered(s, US, release);
    await s.deps.releases.updateRegion(release.releaseId, US, { state: 'announced', imageId: us });
    // act
    await reconcile(s.deps);
    await reconcile(s.deps);
    // assess
    assert.ok((await s.deps.releases.get(release.releaseId))?.completedAt, 'marked complete');
    assert.equal(s.deps.events.ofType('Release Complete').length, 1, 'told once');
    assert.equal(s.deps.events.ofType('Image Ready').length, 0, 'nothing announced again');
    // the operator reads that the reconciler did it, and which release
    assert.deepEqual(
      s.deps.logger.attributes
        .filter((l) => l.message === 'release completed by the reconciler')
        .map((l) => l.attributes),
      [{ releaseId: release.releaseId }],
    );
  });

  it('does not complete a release one of whose regions is not announced', async () => {
    const s = setup();
    const { release } = await imaged(s, EU, 'announced');
    await reconcile(s.deps);
    assert.equal((await s.deps.releases.get(release.releaseId))?.completedAt, undefined);
    assert.equal(s.deps.events.ofType('Release Complete').length, 0);
  });

  it('reports an image registered before as registered (already), and announces it', async () => {
    // prepare: the image exists, the region still says snapshotting (killed before recording it)
    const s = setup();
    const { release, snapshotId } = await snapshotting(s, EU);
    const { imageId } = await s.imaging.of(EU).images.register({
      name: `stemcell/web-base/${release.revision}`,
      description: 'x',
      snapshotId,
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      rootDeviceName: '/dev/xvda',
      tags: releaseTags(release),
      clientToken: 't',
    });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.registered, [{ releaseId: release.releaseId, region: EU, imageId }]);
    assert.deepEqual(report.announced, [{ releaseId: release.releaseId, region: EU, imageId }]);
  });

  it('waits on a pending snapshot, and on one that is gone', async () => {
    // prepare
    const s = setup();
    const pending = await snapshotting(s, EU, 'pending');
    const gone = await snapshotting(s, US);
    await s.imaging.of(US).snapshots.delete(gone.snapshotId);
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report, { failed: [], registered: [], announced: [], redelivered: [] });
    assert.equal((await stored(s, pending.release, EU))?.state, 'snapshotting');
    assert.equal(s.imaging.of(EU).images.registerCalls + s.imaging.of(US).images.registerCalls, 0);
    assert.equal(s.deps.logger.lines.length, 0);
  });

  it('records a snapshot in error as a failed region, saying the reconciler found it', async () => {
    // prepare
    const s = setup();
    const { release, snapshotId } = await snapshotting(s, EU, 'error');
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.failed, [
      { releaseId: release.releaseId, region: EU, reason: 'snapshot failed' },
    ]);
    assert.equal((await stored(s, release, EU))?.state, 'failed');
    const [event] = s.deps.events.ofType('Build Failed');
    assert.equal(
      BuildFailedDetail.parse(event?.detail).reason,
      `snapshot ${snapshotId} failed: snapshot in error state (found by the reconciler)`,
    );
  });

  it('leaves a snapshotting region without a snapshot id alone', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', 'r1', [EU]);
    let asked = 0;
    const of = s.deps.imaging;
    s.deps.imaging = (region) => {
      asked++;
      return of(region);
    };
    // act
    await reconcile(s.deps);
    // assess
    assert.equal(asked, 0);
    assert.equal((await stored(s, release, EU))?.state, 'snapshotting');
  });

  it('reports no failure for a snapshot that is not a release of stemcell', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', 'r1', [EU]);
    const stray = await s.imaging
      .of(EU)
      .snapshots.create('vol-1', { description: 'x', tags: {}, clientToken: 't' });
    await s.deps.releases.updateRegion(release.releaseId, EU, { snapshotId: stray.snapshotId });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report, { failed: [], registered: [], announced: [], redelivered: [] });
  });

  it('passes over a recorded image that does not exist (yet) in the region', async () => {
    // prepare
    const s = setup();
    const release = s.deps.releases.seed('web-base', 'r1', [EU]);
    await s.deps.releases.updateRegion(release.releaseId, EU, {
      state: 'registering',
      imageId: 'ami-00000000000000404',
    });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.announced, []);
    assert.equal((await stored(s, release, EU))?.state, 'registering');
  });

  it('logs what it did when it both announced and redelivered', async () => {
    // prepare: one image to announce in us-east-1, one account that never reported in eu-west-1
    const s = setup();
    await imaged(s, US, 'registering');
    const old = await imaged(s, EU, 'announced', 'available', '2026-11-20T11:55:00.000Z');
    for (const accountId of [A1, A2])
      await s.deps.releases.recordAccount(old.release.releaseId, {
        accountId,
        region: EU,
        outcome: 'updated',
        launchTemplates: 1,
        updatedAt: '2026-11-20T11:56:00.000Z',
      });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.equal(report.announced.length, 1);
    assert.deepEqual(report.redelivered, [{ releaseId: old.release.releaseId, region: EU, accountId: A3 }]);
    assert.deepEqual(s.deps.logger.of('reconciled'), report);
  });

  for (const recorded of ['registering', 'available'] as const) {
    it(`announces an available image recorded as ${recorded}`, async () => {
      // prepare
      const s = setup();
      const { release, imageId } = await imaged(s, EU, recorded);
      // act
      const report = await reconcile(s.deps);
      // assess
      assert.deepEqual(report.announced, [{ releaseId: release.releaseId, region: EU, imageId }]);
      assert.equal((await stored(s, release, EU))?.state, 'announced');
    });
  }

  it('waits on a pending image, and leaves a snapshotting region with an image to the register step', async () => {
    // prepare
    const s = setup();
    const pending = await imaged(s, EU, 'registering', 'pending');
    const early = await imaged(s, US, 'snapshotting', 'available');
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.announced, []);
    assert.equal((await stored(s, pending.release, EU))?.state, 'registering');
    assert.equal((await stored(s, early.release, US))?.state, 'snapshotting');
    assert.equal(s.deps.events.events.length, 0);
  });

  it('records a failed image as a failed region, saying the reconciler found it', async () => {
    // prepare
    const s = setup();
    const { release, imageId } = await imaged(s, EU, 'registering', 'failed');
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.announced, []);
    assert.equal((await stored(s, release, EU))?.state, 'failed');
    assert.equal(
      BuildFailedDetail.parse(s.deps.events.ofType('Build Failed')[0]?.detail).reason,
      `image ${imageId} failed: image failed (found by the reconciler)`,
    );
  });

  it('leaves a deregistered image and a recorded region without image id alone', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'registering', 'deregistered');
    const release = s.deps.releases.seed('web-base', 'r9', [US]);
    await s.deps.releases.updateRegion(release.releaseId, US, { state: 'available' });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report, { failed: [], registered: [], announced: [], redelivered: [] });
    assert.equal(s.deps.events.events.length, 0);
  });
});

describe('Function: reconcile() on the build DLQ', () => {
  const job = (release: Release, region: string) =>
    JSON.stringify({
      version: 1,
      releaseId: release.releaseId,
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      region,
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      volumeSizeGiB: 8,
      source: release.source,
    });

  it("fails the region with the builder's count and last error, tells the bus, and deletes the job", async () => {
    // prepare
    const s = setup({ dlq: true });
    const release = s.deps.releases.seed('web-base', 'r1', [EU, US]);
    await s.deps.releases.updateRegion(release.releaseId, US, {
      state: 'building',
      attempts: 3,
      reason: 'disk full',
    });
    s.dlq(US).add(job(release, US), 5);
    // act
    const report = await reconcile(s.deps);
    // assess
    const reason = 'build attempts exhausted (3); last error: disk full';
    assert.deepEqual(report.failed, [{ releaseId: release.releaseId, region: US, reason }]);
    assert.deepEqual(await stored(s, release, US), {
      state: 'failed',
      reason,
      attempts: 3,
      updatedAt: '2026-11-20T12:00:00.000Z',
    });
    assert.equal(BuildFailedDetail.parse(s.deps.events.ofType('Build Failed')[0]?.detail).attempts, 3);
    assert.deepEqual(s.dlq(US).deleted, ['rh1']);
    assert.deepEqual(s.dlq(US).receives[0], { max: 10, visibilityTimeoutSeconds: 60 });
    assert.deepEqual([...s.dlqs.keys()].sort(), [EU, US], 'every region of every stream');
  });

  it("counts the DLQ's receives less its own when the builder counted none, and says the builder never reported", async () => {
    // prepare
    const s = setup({ dlq: true });
    const r1 = s.deps.releases.seed('web-base', 'r1', [EU]);
    const r2 = s.deps.releases.seed('web-base', 'r2', [EU]);
    s.dlq(EU).add(job(r1, EU), 4);
    s.dlq(EU).add(job(r2, EU), 1);
    // act
    const report = await reconcile(s.deps);
    // assess
    const never = '; the builder stopped without reporting (crashed or killed)';
    assert.deepEqual(report.failed, [
      { releaseId: r1.releaseId, region: EU, reason: `build attempts exhausted (3)${never}` },
      { releaseId: r2.releaseId, region: EU, reason: `build attempts exhausted (1)${never}` },
    ]);
    assert.equal((await stored(s, r1, EU))?.attempts, 3);
  });

  it('drops an unreadable job and one of a release that does not exist, failing nothing', async () => {
    // prepare
    const s = setup({ dlq: true });
    const ghost = { ...s.deps.releases.seed('web-base', 'r1', [EU]), releaseId: 'web-base#00000099' };
    s.dlq(EU).add('{not json');
    s.dlq(EU).add(JSON.stringify({ version: 1, releaseId: 'x' }));
    s.dlq(EU).add(job(ghost, EU));
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.failed, []);
    assert.deepEqual(s.dlq(EU).deleted, ['rh1', 'rh2', 'rh3']);
    assert.deepEqual(
      s.deps.logger.lines.filter((l) => l.level === 'error').map((l) => l.message),
      ['unreadable job in the build DLQ: dropped', 'unreadable job in the build DLQ: dropped'],
    );
    assert.deepEqual(s.deps.logger.of('unreadable job in the build DLQ: dropped'), {
      region: EU,
      messageId: 'm1',
    });
    assert.equal(s.deps.events.events.length, 0);
  });

  it('deletes the job of a region already announced without reporting a failure', async () => {
    // prepare
    const s = setup({ dlq: true });
    const release = s.deps.releases.seed('web-base', 'r1', [EU]);
    await s.deps.releases.updateRegion(release.releaseId, EU, { state: 'announced', imageId: 'ami-1' });
    s.dlq(EU).add(job(release, EU));
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.failed, []);
    assert.deepEqual(s.dlq(EU).deleted, ['rh1']);
    assert.equal((await stored(s, release, EU))?.state, 'announced');
  });

  it('empties a DLQ holding more than one batch', async () => {
    // prepare
    const s = setup({ dlq: true });
    const release = s.deps.releases.seed('web-base', 'r1', [EU]);
    for (let i = 0; i < 12; i++) s.dlq(EU).add(job(release, EU));
    // act
    await reconcile(s.deps);
    // assess
    assert.equal(s.dlq(EU).deleted.length, 12);
    assert.equal(s.dlq(EU).held.length, 0);
    assert.equal(s.deps.events.ofType('Build Failed').length, 1, 'the failure is told once');
  });
});

describe('Function: reconcile() redelivering Image Ready', () => {
  const minutes = (n: number) => new Date(Date.parse('2026-11-20T12:00:00.000Z') - n * 60_000).toISOString();

  it('sends Image Ready again, to its own bus, to each account of the audience that has not reported', async () => {
    // prepare
    const s = setup({ memberBusName: 'stemcell-member' });
    const { release, imageId } = await imaged(s, EU, 'announced', 'available', minutes(5));
    await s.deps.releases.recordAccount(release.releaseId, {
      accountId: A1,
      region: EU,
      outcome: 'updated',
      launchTemplates: 1,
      updatedAt: minutes(4),
    });
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(
      report.redelivered,
      [A2, A3].map((accountId) => ({ releaseId: release.releaseId, region: EU, accountId })),
    );
    const events = s.deps.events.ofType('Image Ready');
    assert.deepEqual(
      events.map((e) => e.eventBusName),
      [A2, A3].map((a) => `arn:aws:events:eu-west-1:${a}:event-bus/stemcell-member`),
    );
    assert.deepEqual(events[0]?.resources, [`arn:aws:ec2:${EU}::image/${imageId}`]);
    const detail = ImageReadyDetail.parse(events[0]?.detail);
    assert.equal(detail.imageId, imageId);
    assert.equal(detail.releaseId, release.releaseId);
    assert.equal(detail.region, EU);
  });

  it("uses each member's default bus when no member bus name is set", async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'available', minutes(5));
    // act
    await reconcile(s.deps);
    // assess
    assert.equal(s.deps.events.events[0]?.eventBusName, `arn:aws:events:eu-west-1:${A1}:event-bus/default`);
  });

  it('waits 2 minutes after the announcement and stops after an hour (both bounds included)', async () => {
    // prepare
    const cases = [
      [1.99, 0],
      [2, 3],
      [60, 3],
      [60.01, 0],
    ] as const;
    for (const [age, expected] of cases) {
      const s = setup();
      await imaged(s, EU, 'announced', 'available', minutes(age));
      // act
      const report = await reconcile(s.deps);
      // assess
      assert.equal(report.redelivered.length, expected, `${age} minutes after`);
    }
  });

  it('takes its timeout and window from the options', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'available', minutes(5));
    // act
    const tooSoon = await reconcile(s.deps, { reportTimeoutMs: 6 * 60_000 });
    const tooLate = await reconcile(s.deps, { redeliverForMs: 4 * 60_000 });
    const now = await reconcile(s.deps, { reportTimeoutMs: 0, redeliverForMs: 5 * 60_000 });
    // assess
    assert.equal(tooSoon.redelivered.length, 0);
    assert.equal(tooLate.redelivered.length, 0);
    assert.equal(now.redelivered.length, 3);
  });

  it('redelivers only the newest announced release of a stream in a region, and only where announced', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'available', minutes(5));
    const newer = await imaged(s, EU, 'announced', 'available', minutes(5));
    await imaged(s, EU, 'registering', 'pending', minutes(5));
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(new Set(report.redelivered.map((r) => r.releaseId)), new Set([newer.release.releaseId]));
    assert.deepEqual(
      s.deps.events.ofType('Image Ready').map((e) => ImageReadyDetail.parse(e.detail).imageId),
      [newer.imageId, newer.imageId, newer.imageId],
    );
  });

  it('keeps the newest release whatever order the store lists them in', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'available', minutes(5));
    const newer = await imaged(s, EU, 'announced', 'available', minutes(5));
    const list = s.deps.releases.list.bind(s.deps.releases);
    s.deps.releases.list = async (stream?: string) => (await list(stream)).reverse();
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(new Set(report.redelivered.map((r) => r.releaseId)), new Set([newer.release.releaseId]));
  });

  it('tells only the accounts of the stream scope', async () => {
    // prepare
    const config = testConfig();
    const web = config.streams['web-base'];
    if (web) web.subscribers.scope = { ous: [OU_B] };
    const s = setup({ config });
    await imaged(s, EU, 'announced', 'available', minutes(5));
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(
      report.redelivered.map((r) => r.accountId),
      [A3],
    );
  });

  it('tells no one when the stream scope holds no account', async () => {
    // prepare
    const config = testConfig();
    const web = config.streams['web-base'];
    if (web) web.subscribers.scope = { ous: ['ou-ab12-cccccccc'] };
    const s = setup({ config });
    await imaged(s, EU, 'announced', 'available', minutes(5));
    // act
    const report = await reconcile(s.deps);
    const latest = await deliverLatestTo(s.deps, [A1]);
    // assess
    assert.deepEqual(report.redelivered, []);
    assert.deepEqual(latest, []);
    assert.equal(s.deps.events.events.length, 0);
  });

  it('publishes nothing for an announced image that is no longer available', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'deregistered', minutes(5));
    // act
    await reconcile(s.deps);
    // assess
    assert.equal(s.deps.events.events.length, 0);
  });
});

describe('Function: deliverLatestTo()', () => {
  it('gives accounts that joined the newest announced image of their streams in every region', async () => {
    // prepare
    const s = setup();
    const eu = await imaged(s, EU, 'announced');
    const us = await imaged(s, US, 'announced');
    // act
    const delivered = await deliverLatestTo(s.deps, [A2, '299999999999']);
    // assess
    assert.deepEqual(
      delivered.sort((a, b) => a.region.localeCompare(b.region)),
      [
        { releaseId: eu.release.releaseId, region: EU, accountId: A2 },
        { releaseId: us.release.releaseId, region: US, accountId: A2 },
      ],
    );
    assert.deepEqual(
      s.deps.events.events.map((e) => e.eventBusName).sort(),
      [EU, EU].map((r) => `arn:aws:events:${r}:${A2}:event-bus/default`),
      'the member bus is in the home region',
    );
    assert.deepEqual(s.deps.logger.of('latest images delivered to new accounts'), { delivered });
  });

  it('does nothing for no account, and logs nothing when nothing was delivered', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced');
    let listed = 0;
    const list = s.deps.releases.list.bind(s.deps.releases);
    s.deps.releases.list = async (stream?: string) => {
      listed++;
      return list(stream);
    };
    // act
    const none = await deliverLatestTo(s.deps, []);
    const outsider = await deliverLatestTo(s.deps, ['299999999999']);
    // assess
    assert.deepEqual(none, []);
    assert.deepEqual(outsider, []);
    assert.equal(listed, 1);
    assert.equal(s.deps.logger.lines.length, 0);
    assert.equal(s.deps.events.events.length, 0);
  });
});

describe('Function: reconcile() and deliverLatestTo() with releases held back or newer', () => {
  it('announces a region left booting (a crash after its boot check), through the gate', async () => {
    // prepare: no boot check configured, so the gate is open
    const s = setup();
    const { release, imageId } = await imaged(s, EU, 'booting');
    // act
    const report = await reconcile(s.deps);
    // assess
    assert.deepEqual(report.announced, [{ releaseId: release.releaseId, region: EU, imageId }]);
    assert.equal((await stored(s, release, EU))?.state, 'announced');
  });

  it('leaves an image of a stream pinned to another revision alone: not announced, shared or rewritten', async () => {
    // prepare
    const s = setup();
    const rollouts = new MemoryRolloutStore();
    s.deps.rollouts = rollouts;
    const { release } = await imaged(s, EU, 'available');
    await rollouts.setPin('web-base', {
      stream: 'web-base',
      revision: 'r0',
      pinnedAt: '2026-11-20T11:00:00Z',
    });
    const before = await stored(s, release, EU);
    (s.deps.clock as FakeClock).advance(60_000);
    // act
    const report = await reconcile(s.deps);
    // assess: announce is not even asked (it would share the image and rewrite the record on every run)
    assert.deepEqual(report.announced, []);
    assert.deepEqual(await stored(s, release, EU), before);
    assert.deepEqual(s.imaging.of(EU).images.shares, []);
    assert.equal(s.deps.events.events.length, 0);
  });

  it('gives a joiner only the newest announced release of a stream and region, not the ones before it', async () => {
    // prepare: r1 and r2 both announced in eu-west-1
    const s = setup();
    await imaged(s, EU, 'announced');
    const newer = await imaged(s, EU, 'announced');
    // act
    const delivered = await deliverLatestTo(s.deps, [A2]);
    // assess
    assert.deepEqual(delivered, [{ releaseId: newer.release.releaseId, region: EU, accountId: A2 }]);
    assert.equal(s.deps.events.events.length, 1);
  });

  it('gives a joiner the newest release that is announced, not a newer one still on its way', async () => {
    // prepare: r2's image is available but its region not announced yet
    const s = setup();
    const announced = await imaged(s, EU, 'announced');
    await imaged(s, EU, 'available');
    // act
    const delivered = await deliverLatestTo(s.deps, [A2]);
    // assess
    assert.deepEqual(delivered, [{ releaseId: announced.release.releaseId, region: EU, accountId: A2 }]);
  });

  it('gives a joiner of a pinned stream the pinned revision, not the newest', async () => {
    // prepare
    const s = setup();
    const rollouts = new MemoryRolloutStore();
    s.deps.rollouts = rollouts;
    const pinned = await imaged(s, EU, 'announced');
    await imaged(s, EU, 'announced');
    await rollouts.setPin('web-base', {
      stream: 'web-base',
      revision: pinned.release.revision,
      pinnedAt: '2026-11-20T11:00:00Z',
    });
    // act
    const delivered = await deliverLatestTo(s.deps, [A2]);
    // assess
    assert.deepEqual(delivered, [{ releaseId: pinned.release.releaseId, region: EU, accountId: A2 }]);
  });

  it('logs a joiner whose bus refuses, names it, and still delivers to the others', async () => {
    // prepare
    const s = setup();
    const { release } = await imaged(s, EU, 'announced');
    const publish = s.deps.events.publish.bind(s.deps.events);
    s.deps.events.publish = async (entries) => {
      if (entries.some((e) => e.eventBusName?.includes(`:${A1}:`))) throw new Error('AccessDeniedException');
      return publish(entries);
    };
    // act
    const delivered = await deliverLatestTo(s.deps, [A1, A2]);
    // assess
    assert.deepEqual(delivered, [{ releaseId: release.releaseId, region: EU, accountId: A2 }]);
    assert.deepEqual(s.deps.logger.of('latest image not delivered to a new account'), {
      accountId: A1,
      region: EU,
      releaseId: release.releaseId,
      error: 'AccessDeniedException',
    });
  });

  it('reports what it delivered by region, then account, whatever order it went in', async () => {
    // prepare: one release announced in us-east-1 first, then eu-west-1; joiners named out of order
    const s = setup();
    const release = s.deps.releases.seed('web-base', 'r1', [US, EU]);
    for (const region of [US, EU]) {
      const imageId = await registered(s, region, release);
      await s.deps.releases.updateRegion(release.releaseId, region, {
        state: 'announced',
        imageId,
        updatedAt: '2026-11-20T12:00:00.000Z',
      });
    }
    // act
    const delivered = await deliverLatestTo(s.deps, [A2, A1]);
    // assess
    assert.deepEqual(
      delivered.map((d) => `${d.region}/${d.accountId}`),
      [`${EU}/${A1}`, `${EU}/${A2}`, `${US}/${A1}`, `${US}/${A2}`],
    );
  });

  it('reports no redelivery for an announced image that is no longer available', async () => {
    // prepare
    const s = setup();
    await imaged(s, EU, 'announced', 'deregistered', '2026-11-20T11:55:00.000Z');
    // act
    const report = await reconcile(s.deps);
    const latest = await deliverLatestTo(s.deps, [A2]);
    // assess
    assert.deepEqual(report.redelivered, []);
    assert.deepEqual(latest, []);
    assert.equal(s.deps.events.events.length, 0);
  });
});
