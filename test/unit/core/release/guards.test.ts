// The core's guards that users rely on, each tested from the state that trips it: an unencrypted image, an
// event from another bucket, a snapshot in error behind a "succeeded" notification, a launch template whose
// default is not version 1, and subscriber rules left in a bad state. Each test fails if its guard is dropped
// (scripts/plant-survivors.sh plants each of those bugs and checks).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planSubscriberRules, subscriberPattern, syncSubscribers } from '#core/members/forwarding-rules.ts';
import { applyImageReady } from '#core/members/subscriber.ts';
import { memberBusArn, releaseTags, TAG } from '#core/model/naming.ts';
import { announceImage } from '#core/release/announce.ts';
import { ingest } from '#core/release/ingest.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { BuildFailedDetail } from '#events/stemcell.ts';
import {
  accountIds,
  FakeBusRules,
  FakeClock,
  FakeMembers,
  FakeObjects,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  imagingSetup,
  OU_A,
  RecordingLogger,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

const REGION = 'eu-west-1';

async function registeredImage(setup: ReturnType<typeof imagingSetup>) {
  const { deps, imaging } = setup;
  const release = deps.releases.seed('web-base', '2026.11.20', [REGION]);
  const snapshot = await imaging.of(REGION).snapshots.create('vol-1', {
    description: 'x',
    tags: { ...releaseTags(release), [TAG.sha256]: SHA },
    clientToken: 't',
  });
  const registered = await registerSnapshot(deps, {
    region: REGION,
    snapshotId: snapshot.snapshotId,
    result: 'succeeded',
    cause: '',
  });
  assert.equal(registered.outcome, 'registered');
  if (registered.outcome !== 'registered') throw new Error('not registered');
  return { release, imageId: registered.imageId };
}

describe('Function: announceImage()', () => {
  it('refuses an unencrypted image: nothing shared, nothing announced, the region not marked announced', async () => {
    // prepare
    const setup = imagingSetup();
    const { release, imageId } = await registeredImage(setup);
    const image = setup.imaging.of(REGION).images.images.get(imageId);
    assert.ok(image);
    image.encrypted = false;
    // act
    const run = announceImage(setup.deps, { region: REGION, imageId, state: 'available', errorMessage: '' });
    // assess
    await assert.rejects(
      run,
      new RegExp(`image ${imageId} in ${REGION} is not encrypted: refusing to announce`),
    );
    assert.equal(setup.deps.events.ofType('Image Ready').length, 0);
    assert.deepEqual(setup.imaging.of(REGION).images.shares, [], 'an unencrypted image is not shared');
    const region = (await setup.deps.releases.get(release.releaseId))?.regions[REGION];
    assert.equal(region?.state, 'registering');
  });
});

describe('Function: registerSnapshot()', () => {
  it('records a failure for a snapshot in error state whose notification says succeeded, instead of retrying', async () => {
    // prepare
    const setup = imagingSetup();
    const { deps, imaging } = setup;
    const release = deps.releases.seed('web-base', '2026.11.20', [REGION]);
    const snapshot = await imaging.of(REGION).snapshots.create('vol-1', {
      description: 'x',
      tags: { ...releaseTags(release), [TAG.sha256]: SHA },
      clientToken: 't',
    });
    snapshot.state = 'error';
    // act: a throw here would redeliver the event until the DLQ
    const result = await registerSnapshot(deps, {
      region: REGION,
      snapshotId: snapshot.snapshotId,
      result: 'succeeded',
      cause: '',
    });
    // assess
    assert.deepEqual(result, { outcome: 'failed', releaseId: release.releaseId });
    assert.equal(imaging.of(REGION).images.registerCalls, 0);
    const region = (await deps.releases.get(release.releaseId))?.regions[REGION];
    assert.equal(region?.state, 'failed');
    assert.match(region?.reason ?? '', new RegExp(`snapshot ${snapshot.snapshotId}.*error`));
    const failed = deps.events.ofType('Build Failed');
    assert.equal(failed.length, 1);
    assert.equal(BuildFailedDetail.parse(failed[0]?.detail).region, REGION);
  });

  it('still asks for a retry while the snapshot is pending behind a succeeded notification', async () => {
    // prepare
    const { deps, imaging } = imagingSetup();
    const release = deps.releases.seed('web-base', '2026.11.20', [REGION]);
    const snapshot = await imaging.of(REGION).snapshots.create('vol-1', {
      description: 'x',
      tags: releaseTags(release),
      clientToken: 't',
    });
    snapshot.state = 'pending';
    // act
    const run = registerSnapshot(deps, {
      region: REGION,
      snapshotId: snapshot.snapshotId,
      result: 'succeeded',
      cause: '',
    });
    // assess
    await assert.rejects(run, /is pending, not completed yet/);
    assert.equal(deps.events.ofType('Build Failed').length, 0);
  });
});

describe('Function: ingest()', () => {
  it('reads no SHA-256 from its own bucket for an event from another bucket', async () => {
    // prepare: our bucket holds an object under the same key, with a published SHA-256
    const objects = new FakeObjects('stemcell-tarballs');
    const key = 'streams/web-base/2026.11.20.tar.zst';
    await objects.put(key, Buffer.alloc(0), { sha256: SHA });
    const queue = new FakeQueue('build.fifo');
    const deps = {
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      releases: new FakeReleaseStore(),
      events: new FakePublisher(),
      objects,
      buildQueue: () => queue,
    };
    // act
    const result = await ingest(deps, {
      bucket: 'someone-elses-bucket',
      key,
      etag: 'abc',
      time: '2026-11-20T10:00:00.000Z',
    });
    // assess
    assert.equal(result.release.source.bucket, 'someone-elses-bucket');
    assert.equal(result.release.source.sha256, undefined, 'the SHA-256 of another object is not taken');
    const job = JSON.parse(queue.messages[0]?.body ?? '{}') as { source?: { sha256?: string } };
    assert.equal(job.source?.sha256, undefined);
  });

  it('takes the SHA-256 from its own bucket for an event from that bucket', async () => {
    // prepare (the counterpart of the test above: the guard must not drop the good case either)
    const objects = new FakeObjects('stemcell-tarballs');
    const key = 'streams/web-base/2026.11.20.tar.zst';
    await objects.put(key, Buffer.alloc(0), { sha256: SHA.toUpperCase() });
    const deps = {
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      releases: new FakeReleaseStore(),
      events: new FakePublisher(),
      objects,
      buildQueue: () => new FakeQueue('build.fifo'),
    };
    // act
    const result = await ingest(deps, {
      bucket: 'stemcell-tarballs',
      key,
      etag: '"abc"',
      time: '2026-11-20T10:00:00.000Z',
    });
    // assess
    assert.equal(result.release.source.sha256, SHA);
    assert.equal(result.release.source.etag, 'abc');
  });
});

describe('Function: applyImageReady()', () => {
  it('makes the new version from the default version, keeping the settings of later versions', async () => {
    // prepare: version 1 is the original; the user made version 2 (other settings) the default
    const members = new FakeMembers();
    const account = members.forAccount('200000000001', REGION);
    const template = account.addTemplate('web', 'web-base');
    template.versions[0]!.settings = 't3.small';
    template.versions.push({ versionNumber: 2, imageId: 'ami-00000000000000000', settings: 'm7g.large' });
    template.versions.push({ versionNumber: 3, imageId: 'ami-00000000000000000', settings: 'c7g.xlarge' });
    template.latestVersionNumber = 3;
    template.defaultVersionNumber = 2;
    const deps = {
      accountId: '200000000001',
      members,
      centralBus: 'stemcell',
      events: new FakePublisher(),
      settings: () => ({ instanceRefresh: false }),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
    };
    // act
    const result = await applyImageReady(deps, {
      version: 1,
      stream: 'web-base',
      revision: 'r1',
      sequence: 1,
      releaseId: 'web-base#00000001',
      region: REGION,
      imageId: 'ami-0000000000000000a',
      imageName: 'stemcell/web-base/r1',
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      encrypted: true,
      kmsKeyId: 'k',
      snapshotId: 'snap-1',
      source: { bucket: 'b', key: 'k', etag: 'e', sha256: SHA },
      createdAt: '2026-11-20T10:00:00.000Z',
    });
    // assess
    assert.equal(result.templates[0]?.outcome, 'updated');
    assert.equal(template.defaultVersionNumber, 4);
    const made = template.versions.find((v) => v.versionNumber === 4);
    assert.equal(made?.imageId, 'ami-0000000000000000a');
    assert.equal(made?.settings, 'm7g.large', 'copied from the default version 2, not from 1 nor the latest');
  });
});

describe('Function: planSubscriberRules()', () => {
  const opts = { homeRegion: REGION, maxTargetsPerRule: 5 };
  const target = (id: string) => ({ id, arn: memberBusArn(REGION, id) });
  const rule = (n: number, ids: string[], arn = (id: string) => memberBusArn(REGION, id)) => ({
    name: `stemcell-subscribers-${n}`,
    eventPattern: subscriberPattern(),
    targets: ids.map((id) => ({ id, arn: arn(id) })),
  });

  it('brings a rule that already holds 6 targets back to 5, moving the sixth to another rule', () => {
    // prepare
    const ids = accountIds(6);
    // act
    const plan = planSubscriberRules([rule(1, ids)], [{ accountIds: ids }], opts);
    // assess
    const first = plan.rules.find((r) => r.name === 'stemcell-subscribers-1');
    assert.deepEqual(first?.targets, ids.slice(0, 5).map(target));
    assert.deepEqual(first?.remove, [ids[5]]);
    const second = plan.rules.find((r) => r.name === 'stemcell-subscribers-2');
    assert.equal(second?.create, true);
    assert.deepEqual(second?.targets, [target(ids[5]!)]);
    for (const r of plan.rules) assert.ok(r.targets.length <= 5, `${r.name} holds ${r.targets.length}`);
  });

  it('keeps an account held by two rules in one of them only', () => {
    // prepare
    const [a, b, c] = accountIds(3);
    // act
    const plan = planSubscriberRules(
      [rule(1, [a!, b!]), rule(2, [b!, c!])],
      [{ accountIds: [a!, b!, c!] }],
      opts,
    );
    // assess
    const holders = plan.rules.filter((r) => r.targets.some((t) => t.id === b));
    assert.deepEqual(
      holders.map((r) => r.name),
      ['stemcell-subscribers-1'],
    );
    assert.deepEqual(plan.rules.find((r) => r.name === 'stemcell-subscribers-2')?.remove, [b]);
    assert.deepEqual(plan.deleteRules, []);
  });

  it('puts again a target whose ARN is stale, and only that one', () => {
    // prepare: account b's target points at a bus that is not the member default bus
    const [a, b] = accountIds(2);
    const stale = (id: string) =>
      id === b ? `arn:aws:events:us-east-1:${id}:event-bus/old` : memberBusArn(REGION, id);
    // act
    const plan = planSubscriberRules([rule(1, [a!, b!], stale)], [{ accountIds: [a!, b!] }], opts);
    // assess
    const only = plan.rules[0];
    assert.deepEqual(only?.add, [target(b!)]);
    assert.deepEqual(only?.remove, []);
    assert.deepEqual(only?.targets, [target(a!), target(b!)]);
  });

  it('syncSubscribers() repairs all three on the bus itself', async () => {
    // prepare: a bus left in a bad state (6 targets on one rule, a duplicate, a stale ARN)
    const ids = accountIds(8);
    const rules = new FakeBusRules();
    rules.rules.set('stemcell-subscribers-1', rule(1, ids.slice(0, 6)));
    rules.rules.set(
      'stemcell-subscribers-2',
      rule(2, [ids[0]!, ids[6]!, ids[7]!], (id) =>
        id === ids[7] ? 'arn:aws:events:eu-west-1:1:event-bus/x' : memberBusArn(REGION, id),
      ),
    );
    const organization = new FakeOrganization(ids.map((id) => ({ id, ou: OU_A })));
    // act
    await syncSubscribers({
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      organization,
      rules,
    });
    // assess
    const seen = new Map<string, number>();
    for (const r of rules.rules.values()) {
      assert.ok(r.targets.length <= 5, `${r.name} holds ${r.targets.length}`);
      for (const t of r.targets) {
        seen.set(t.id, (seen.get(t.id) ?? 0) + 1);
        assert.equal(t.arn, memberBusArn(REGION, t.id));
      }
    }
    assert.deepEqual([...seen.keys()].sort(), ids);
    assert.ok(
      [...seen.values()].every((n) => n === 1),
      'every account on exactly one rule',
    );
  });
});
