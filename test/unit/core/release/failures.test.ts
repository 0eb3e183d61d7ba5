// The core's error paths and register's details, written from the mutants that survived the first runs of `npm run mutation`: the
// errors name the input at fault, a build failure is recorded only over a state that is not final (and not
// over one that became final behind its read), and emitted events carry exactly the fields the contract has.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emit, stemcellEvent } from '#core/model/emit.ts';
import {
  ReleaseNotFoundError,
  RevisionConflictError,
  streamConfig,
  UnknownStreamError,
} from '#core/model/errors.ts';
import { clientToken, releaseTags, TAG } from '#core/model/naming.ts';
import { buildFailedEvent, recordBuildFailure } from '#core/release/build-failure.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { BuildFailedDetail } from '#events/stemcell.ts';
import type { RegionState, RegisterImageInput } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakePublisher,
  FakeReleaseStore,
  imageReadyDetail,
  imagingSetup,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

function setup() {
  const deps = {
    config: testConfig(),
    clock: new FakeClock('2026-11-20T10:05:00.000Z'),
    logger: new AttributeLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
  };
  return { deps };
}

describe('Class: UnknownStreamError', () => {
  it('names the stream, where it came from, and the fix', () => {
    // act
    const err = new UnknownStreamError('web"x', 'key streams/web"x/1.tar');
    // assess
    assert.equal(err.name, 'UnknownStreamError');
    assert.equal(err.stream, 'web"x');
    assert.equal(
      err.message,
      'unknown stream "web\\"x" (key streams/web"x/1.tar): add it under streams: in stemcell.config.yml',
    );
    assert.ok(err instanceof Error);
  });
});

describe('Class: ReleaseNotFoundError', () => {
  it('names the release and the context', () => {
    // act
    const err = new ReleaseNotFoundError('web#00000007', 'image ami-1');
    // assess
    assert.equal(err.name, 'ReleaseNotFoundError');
    assert.equal(err.releaseId, 'web#00000007');
    assert.equal(err.message, 'release "web#00000007" not found in the release store (image ami-1)');
  });
});

describe('Class: RevisionConflictError', () => {
  it('names the revision, both objects and what to do', () => {
    // act
    const err = new RevisionConflictError('web', 'r1', 'etag-a', 'streams/web/r1.tar', 'etag-b');
    // assess
    assert.equal(err.name, 'RevisionConflictError');
    assert.equal(
      err.message,
      'revision r1 of stream web was already published from an object with etag etag-a; ' +
        'streams/web/r1.tar (etag etag-b) differs: publish it as a new revision',
    );
  });
});

describe('Function: streamConfig()', () => {
  it('returns the named stream, and refuses an unknown one naming it and the context', () => {
    // prepare
    const config = testConfig();
    // act
    const found = streamConfig(config, 'web-base', 'test');
    // assess
    assert.equal(found, config.streams['web-base']);
    assert.throws(
      () => streamConfig(config, 'nope', 'ingest of streams/nope/1.tar'),
      (err: unknown) =>
        err instanceof UnknownStreamError &&
        err.stream === 'nope' &&
        err.message.includes('(ingest of streams/nope/1.tar)'),
    );
  });
});

describe('Function: stemcellEvent()', () => {
  it('carries resources only when there are some, and refuses a detail the contract rejects', () => {
    // prepare
    const detail = imageReadyDetail(1);
    // act
    const without = stemcellEvent('Image Ready', detail, 'bus');
    const empty = stemcellEvent('Image Ready', detail, 'bus', []);
    const withResources = stemcellEvent('Image Ready', detail, 'bus', ['arn:aws:ec2:eu-west-1::image/ami-1']);
    // assess
    assert.equal(without.source, 'stemcell');
    assert.equal(without.detailType, 'Image Ready');
    assert.equal(without.eventBusName, 'bus');
    assert.equal('resources' in without, false);
    assert.equal('resources' in empty, false);
    assert.deepEqual(withResources.resources, ['arn:aws:ec2:eu-west-1::image/ami-1']);
    assert.throws(() => stemcellEvent('Image Ready', { ...detail, imageId: '' }, 'bus'));
  });
});

describe('Function: emit()', () => {
  it('publishes one event built like stemcellEvent()', async () => {
    // prepare
    const events = new FakePublisher();
    const detail = imageReadyDetail(2);
    // act
    await emit(events, 'Image Ready', detail, 'central', ['arn:x']);
    // assess
    assert.deepEqual(events.events, [stemcellEvent('Image Ready', detail, 'central', ['arn:x'])]);
  });
});

describe('Function: recordBuildFailure()', () => {
  const failure = (releaseId: string, region = 'eu-west-1') => ({
    releaseId,
    region,
    reason: 'tarball rejected: ../etc escapes the root',
    attempts: 2,
  });

  for (const state of ['queued', 'building', 'snapshotting', 'registering', 'available'] as RegionState[]) {
    it(`records a failure over a region ${state}, and tells the bus with every field`, async () => {
      // prepare
      const { deps } = setup();
      const release = deps.releases.seed('web-base', 'r1', ['eu-west-1']);
      await deps.releases.updateRegion(release.releaseId, 'eu-west-1', { state });
      // act
      const result = await recordBuildFailure(deps, failure(release.releaseId));
      // assess
      assert.equal(result.published, true);
      const [event] = deps.events.ofType('Build Failed');
      assert.equal(event?.eventBusName, deps.config.busName);
      assert.deepEqual(BuildFailedDetail.parse(event?.detail), {
        version: 1,
        stream: 'web-base',
        revision: 'r1',
        sequence: 1,
        releaseId: release.releaseId,
        region: 'eu-west-1',
        reason: 'tarball rejected: ../etc escapes the root',
        attempts: 2,
        failedAt: '2026-11-20T10:05:00.000Z',
      });
      const stored = (await deps.releases.get(release.releaseId))?.regions['eu-west-1'];
      assert.deepEqual(stored, {
        state: 'failed',
        reason: 'tarball rejected: ../etc escapes the root',
        attempts: 2,
        updatedAt: '2026-11-20T10:05:00.000Z',
      });
      assert.ok(deps.logger.lines.some((l) => l.level === 'error' && l.message === 'build failed'));
      assert.deepEqual(deps.logger.of('build failed'), failure(release.releaseId));
    });
  }

  it('records a failure for a region the release has no record of yet (queued)', async () => {
    // prepare
    const { deps } = setup();
    const release = deps.releases.seed('web-base', 'r1', ['eu-west-1']);
    // act
    const result = await recordBuildFailure(deps, failure(release.releaseId, 'us-east-1'));
    // assess
    assert.equal(result.published, true);
    assert.equal((await deps.releases.get(release.releaseId))?.regions['us-east-1']?.state, 'failed');
  });

  for (const state of ['announced', 'failed'] as RegionState[]) {
    it(`ignores a failure over a region already ${state}: nothing told, nothing changed, a warning`, async () => {
      // prepare
      const { deps } = setup();
      const release = deps.releases.seed('web-base', 'r1', ['eu-west-1']);
      await deps.releases.updateRegion(release.releaseId, 'eu-west-1', { state, imageId: 'ami-1' });
      // act
      const result = await recordBuildFailure(deps, failure(release.releaseId));
      // assess
      assert.equal(result.published, false);
      assert.equal(deps.events.events.length, 0);
      const stored = (await deps.releases.get(release.releaseId))?.regions['eu-west-1'];
      assert.equal(stored?.state, state);
      assert.equal(stored?.reason, undefined);
      assert.deepEqual(deps.logger.lines, [
        { level: 'warn', message: 'build failure ignored: region already final' },
      ]);
      assert.deepEqual(deps.logger.of('build failure ignored: region already final'), {
        ...failure(release.releaseId),
        state,
      });
    });
  }

  it('does not overwrite a region announced between its read and its update', async () => {
    // prepare: the store answers a read from before the announcement
    const { deps } = setup();
    const release = deps.releases.seed('web-base', 'r1', ['eu-west-1']);
    const stale = await deps.releases.get(release.releaseId);
    await deps.releases.updateRegion(release.releaseId, 'eu-west-1', {
      state: 'announced',
      imageId: 'ami-1',
    });
    deps.releases.get = async () => structuredClone(stale);
    // act
    await recordBuildFailure(deps, failure(release.releaseId));
    // assess
    assert.equal(deps.releases.releases.get(release.releaseId)?.regions['eu-west-1']?.state, 'announced');
  });

  it('refuses an unknown release, naming it and the region', async () => {
    // prepare
    const { deps } = setup();
    // act + assess
    await assert.rejects(
      recordBuildFailure(deps, failure('web-base#00000009', 'us-east-1')),
      (err: unknown) =>
        err instanceof ReleaseNotFoundError &&
        err.releaseId === 'web-base#00000009' &&
        err.message.includes('(build failure in us-east-1)'),
    );
  });
});

describe('Function: buildFailedEvent()', () => {
  const job = {
    releaseId: 'web-base#00000001',
    stream: 'web-base',
    revision: 'r1',
    sequence: 1,
    region: 'eu-west-1',
  };

  it('says there was no reason when given none, and goes to the named bus', () => {
    // act
    const event = buildFailedEvent(job, '', 3, new Date('2026-11-20T10:00:00Z'), 'central');
    // assess
    assert.equal(event.eventBusName, 'central');
    assert.deepEqual(BuildFailedDetail.parse(event.detail), {
      version: 1,
      ...job,
      reason: 'no reason given',
      attempts: 3,
      failedAt: '2026-11-20T10:00:00.000Z',
    });
  });

  it('keeps the reason given', () => {
    // act
    const event = buildFailedEvent(job, 'disk full', 1, new Date('2026-11-20T10:00:00Z'));
    // assess
    assert.equal(BuildFailedDetail.parse(event.detail).reason, 'disk full');
    assert.equal('eventBusName' in event, false);
  });
});

describe('Function: registerSnapshot()', () => {
  async function snapshotted(setup: ReturnType<typeof imagingSetup>, stream = 'web-base') {
    const release = setup.deps.releases.seed(stream, 'r1', ['eu-west-1']);
    const snapshot = await setup.imaging.of('eu-west-1').snapshots.create('vol-1', {
      description: 'x',
      tags: { ...releaseTags(release), [TAG.sha256]: SHA },
      clientToken: 't',
    });
    return { release, snapshot };
  }

  it('registers the image with its root device, description, tags and a client token of release and region', async () => {
    // prepare
    const setup = imagingSetup();
    const logger = new AttributeLogger();
    setup.deps.logger = logger;
    const { release, snapshot } = await snapshotted(setup);
    const images = setup.imaging.of('eu-west-1').images;
    const inputs: RegisterImageInput[] = [];
    const register = images.register.bind(images);
    images.register = async (input) => {
      inputs.push(input);
      return register(input);
    };
    // act
    const first = await registerSnapshot(setup.deps, notification(snapshot.snapshotId));
    const again = await registerSnapshot(setup.deps, notification(snapshot.snapshotId));
    // assess
    assert.equal(first.outcome, 'registered');
    assert.equal(again.outcome, 'already-registered');
    assert.deepEqual(inputs[0], {
      name: 'stemcell/web-base/r1',
      description: 'stemcell web-base r1 (sequence 1)',
      snapshotId: snapshot.snapshotId,
      architecture: 'x86_64',
      bootMode: setup.deps.config.streams['web-base']?.bootMode,
      rootDeviceName: '/dev/xvda',
      tags: { ...releaseTags(release), [TAG.region]: 'eu-west-1', [TAG.sha256]: SHA },
      clientToken: clientToken('register', release.releaseId, 'eu-west-1'),
    });
    const imageId = first.outcome === 'registered' ? first.imageId : '';
    const said = {
      releaseId: release.releaseId,
      region: 'eu-west-1',
      imageId,
      snapshotId: snapshot.snapshotId,
    };
    assert.deepEqual(
      logger.attributes.map((a) => [a.message, a.attributes]),
      [
        ['image registered', said],
        ['image already registered', said],
      ],
    );
  });

  it("keeps the bytes the builder recorded when the snapshot port reports none (EBS's describe does not)", async () => {
    // prepare
    const setup = imagingSetup();
    const { release, snapshot } = await snapshotted(setup);
    delete snapshot.deltaBytes;
    await setup.deps.releases.updateRegion(release.releaseId, 'eu-west-1', {
      deltaBytes: 8192,
      writtenBytes: 9000,
    });
    // act
    await registerSnapshot(setup.deps, notification(snapshot.snapshotId));
    // assess
    const region = (await setup.deps.releases.get(release.releaseId))?.regions['eu-west-1'];
    assert.equal(region?.state, 'registering');
    assert.equal(region?.deltaBytes, 8192);
    assert.equal(region?.writtenBytes, 9000);
  });

  it('says in its log which snapshot it could not find', async () => {
    // prepare
    const setup = imagingSetup();
    const logger = new AttributeLogger();
    setup.deps.logger = logger;
    // act
    await registerSnapshot(setup.deps, notification('snap-00000000000000404', 'us-east-1'));
    // assess
    assert.deepEqual(logger.lines, [{ level: 'warn', message: 'snapshot not found; nothing to register' }]);
    assert.deepEqual(logger.of('snapshot not found; nothing to register'), {
      region: 'us-east-1',
      snapshotId: 'snap-00000000000000404',
    });
  });

  it('names the snapshot and region when its stream is not configured', async () => {
    // prepare
    const setup = imagingSetup();
    const { snapshot } = await snapshotted(setup, 'gone-stream');
    // act + assess
    await assert.rejects(
      registerSnapshot(setup.deps, notification(snapshot.snapshotId)),
      (err: unknown) =>
        err instanceof UnknownStreamError &&
        err.message.includes(`(snapshot ${snapshot.snapshotId} in eu-west-1)`),
    );
  });
});

function notification(snapshotId: string, region = 'eu-west-1') {
  return { region, snapshotId, result: 'succeeded' as const, cause: '' };
}
