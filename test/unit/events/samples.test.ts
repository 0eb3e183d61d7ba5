import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import { applyImageReady } from '#core/members/subscriber.ts';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { announceImage } from '#core/release/announce.ts';
import { recordBuildFailure } from '#core/release/build-failure.ts';
import { ingest } from '#core/release/ingest.ts';
import { registerSnapshot } from '#core/release/register.ts';
import { halt } from '#core/rollout/rollout.ts';
import {
  AmiStateChangeEvent,
  BuildJob,
  InstanceRefreshEndedEvent,
  ObjectCreatedEvent,
  SnapshotNotificationEvent,
  SqsSchema,
} from '#events/aws.ts';
import { SAMPLE_NAMES, type SampleName, sample } from '#events/samples/index.ts';
import {
  ImageReadyDetail,
  ImageReadyEvent,
  LaunchTemplateUpdatedEvent,
  StemcellDetailSchemas,
  type StemcellDetailType,
} from '#events/stemcell.ts';
import type { BusEvent } from '#ports';
import {
  FakeClock,
  FakeImaging,
  FakeMembers,
  FakeObjects,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  OU_A,
  RecordingLogger,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';
import { MemoryRolloutStore, RecordingTimer } from '#test/support/rollout-fakes.ts';

const stemcellEnvelope = (detailType: StemcellDetailType) =>
  EventBridgeSchema.extend({ detail: StemcellDetailSchemas[detailType] });

/** How each sample is checked: the schema its consumer parses it with. */
const checks: Record<SampleName, (event: unknown) => void> = {
  's3-object-created': (e) => ObjectCreatedEvent.parse(e),
  'ebs-snapshot-notification': (e) => SnapshotNotificationEvent.parse(e),
  'ebs-snapshot-notification-failed': (e) => SnapshotNotificationEvent.parse(e),
  'ebs-snapshot-notification-legacy': (e) => SnapshotNotificationEvent.parse(e),
  'ec2-ami-state-change': (e) => AmiStateChangeEvent.parse(e),
  'autoscaling-instance-refresh-succeeded': (e) => InstanceRefreshEndedEvent.parse(e),
  'autoscaling-instance-refresh-failed': (e) => InstanceRefreshEndedEvent.parse(e),
  'autoscaling-instance-refresh-cancelled': (e) => InstanceRefreshEndedEvent.parse(e),
  'autoscaling-instance-refresh-rollback-succeeded': (e) => InstanceRefreshEndedEvent.parse(e),
  'autoscaling-instance-refresh-rollback-failed': (e) => InstanceRefreshEndedEvent.parse(e),
  'sqs-build-job': (e) => {
    for (const record of SqsSchema.parse(e).Records) BuildJob.parse(JSON.parse(record.body));
  },
  'sqs-ebs-snapshot-notification': (e) => {
    for (const record of SqsSchema.parse(e).Records) SnapshotNotificationEvent.parse(JSON.parse(record.body));
  },
  'stemcell-release-started': (e) => stemcellEnvelope('Release Started').parse(e),
  'stemcell-image-ready': (e) => ImageReadyEvent.parse(e),
  'stemcell-release-complete': (e) => stemcellEnvelope('Release Complete').parse(e),
  'stemcell-build-failed': (e) => stemcellEnvelope('Build Failed').parse(e),
  'stemcell-release-rejected': (e) => stemcellEnvelope('Release Rejected').parse(e),
  'stemcell-launch-template-updated': (e) => LaunchTemplateUpdatedEvent.parse(e),
  'stemcell-launch-template-updated-refresh': (e) => LaunchTemplateUpdatedEvent.parse(e),
  'stemcell-release-halted': (e) => stemcellEnvelope('Release Halted').parse(e),
};

/** What EventBridge delivers for an event put on a bus. */
function envelope(event: BusEvent) {
  return {
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': event.detailType,
    source: event.source,
    account: '111111111111',
    time: '2026-11-20T10:00:00Z',
    region: 'eu-west-1',
    resources: event.resources ?? [],
    detail: JSON.parse(JSON.stringify(event.detail)),
  };
}

describe('Event samples', () => {
  for (const name of SAMPLE_NAMES) {
    it(`${name} parses with its schema`, () => {
      checks[name](sample(name));
    });
  }

  it("register's schema parses only what register reads (snapshot_id, result, cause)", () => {
    // prepare: a notification with nothing but the fields register uses (no event, source or times)
    const minimal = sample<{ detail: Record<string, unknown> }>('ebs-snapshot-notification');
    minimal.detail = {
      result: 'succeeded',
      snapshot_id: 'arn:aws:ec2::eu-west-1:snapshot/snap-0123456789abcdef0',
    };
    // act
    const parsed = SnapshotNotificationEvent.parse(minimal);
    // assess
    assert.deepEqual(Object.keys(parsed.detail).sort(), ['cause', 'result', 'snapshot_id']);
    assert.equal(parsed.detail.cause, '');
    assert.throws(() => SnapshotNotificationEvent.parse({ ...minimal, detail: { result: 'succeeded' } }));
  });

  it('a sample with a broken field fails its schema', () => {
    const broken = sample<{ detail: { region: string } }>('stemcell-image-ready');
    broken.detail.region = 'Europe';
    assert.throws(() => checks['stemcell-image-ready'](broken));
  });
});

describe('Emitted events', () => {
  async function runFlow() {
    const imaging = new FakeImaging();
    const published = new FakePublisher();
    const objects = new FakeObjects();
    const base = {
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      releases: new FakeReleaseStore(),
      events: published,
    };
    await objects.put('streams/web-base/2026.11.20.tar.zst', Buffer.alloc(0), { sha256: SHA });
    const { release } = await ingest(
      { ...base, objects, buildQueue: (r: string) => new FakeQueue(r) },
      {
        bucket: objects.bucket,
        key: 'streams/web-base/2026.11.20.tar.zst',
        etag: 'e',
        time: '2026-11-20T10:00:00Z',
      },
    );
    // Other content under the same revision: refused ("Release Rejected").
    await ingest(
      { ...base, objects, buildQueue: (r: string) => new FakeQueue(r) },
      {
        bucket: objects.bucket,
        key: 'streams/web-base/2026.11.20.tar.zst',
        etag: 'other',
        time: '2026-11-20T10:01:00Z',
      },
    );
    const deps = {
      ...base,
      imaging: imaging.of,
      organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
    };
    for (const region of ['eu-west-1', 'us-east-1']) {
      const snapshot = await imaging.of(region).snapshots.create('vol', {
        description: '',
        tags: { ...releaseTags(release), [TAG.sha256]: SHA },
        clientToken: '',
      });
      const registered = await registerSnapshot(deps, {
        region,
        snapshotId: snapshot.snapshotId,
        result: 'succeeded',
        cause: '',
      });
      assert.ok(registered.outcome === 'registered');
      await announceImage(deps, {
        region,
        imageId: registered.imageId,
        state: 'available',
        errorMessage: '',
      });
    }
    const other = await base.releases.create({
      stream: 'web-base',
      revision: '2026.11.21',
      source: { bucket: 'b', key: 'k', etag: 'e' },
      regions: ['eu-west-1'],
      uploadedAt: '2026-11-20T10:00:00Z',
    });
    await recordBuildFailure(deps, {
      releaseId: other.release.releaseId,
      region: 'eu-west-1',
      reason: 'boom',
      attempts: 3,
    });
    const members = new FakeMembers();
    members.forAccount('200000000001', 'eu-west-1').addTemplate('web', 'web-base');
    const imageReady = ImageReadyDetail.parse(published.ofType('Image Ready')[0]?.detail);
    await applyImageReady(
      {
        accountId: '200000000001',
        members,
        centralBus: 'stemcell',
        events: published,
        settings: () => ({ instanceRefresh: true, ssmParameter: '/stemcell/{stream}' }),
        clock: base.clock,
        logger: base.logger,
      },
      imageReady,
    );
    // A rollout wave that halts: "Release Halted".
    const rollouts = new MemoryRolloutStore();
    await rollouts.put(
      {
        releaseId: release.releaseId,
        stream: release.stream,
        state: 'rolling',
        waves: [
          { name: 'canary', accounts: ['200000000001'], bakeMinutes: 1, state: 'baking', announcedAt: {} },
        ],
        images: {},
        version: 1,
      },
      0,
    );
    assert.ok(
      await halt({ ...deps, rollouts, timer: new RecordingTimer() }, release, 0, 'instance refresh failed', [
        { accountId: '200000000001', region: 'eu-west-1' },
      ]),
    );
    return published.events;
  }

  it('every detail-type is emitted by the flow and parses, in its envelope, with the schema consumers use', async () => {
    // act
    const events = await runFlow();
    // assess
    const types = new Set(events.map((e) => e.detailType));
    assert.deepEqual([...types].sort(), Object.keys(StemcellDetailSchemas).sort());
    for (const event of events) {
      assert.equal(event.source, 'stemcell');
      const delivered = envelope(event);
      stemcellEnvelope(event.detailType as StemcellDetailType).parse(delivered);
      if (event.detailType === 'Image Ready') ImageReadyEvent.parse(delivered);
      if (event.detailType === 'Launch Template Updated') LaunchTemplateUpdatedEvent.parse(delivered);
    }
  });

  it('emitted details carry the same fields as the documented samples', async () => {
    const events = await runFlow();
    const sampleOf: Record<StemcellDetailType, SampleName> = {
      'Release Started': 'stemcell-release-started',
      'Image Ready': 'stemcell-image-ready',
      'Release Complete': 'stemcell-release-complete',
      'Build Failed': 'stemcell-build-failed',
      'Release Rejected': 'stemcell-release-rejected',
      'Launch Template Updated': 'stemcell-launch-template-updated',
      'Release Halted': 'stemcell-release-halted',
    };
    for (const event of events) {
      const documented = sample<{ detail: Record<string, unknown> }>(
        sampleOf[event.detailType as StemcellDetailType],
      );
      assert.deepEqual(
        Object.keys(event.detail as object).sort(),
        Object.keys(documented.detail).sort(),
        `${event.detailType} fields`,
      );
    }
  });
});
