import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context } from 'aws-lambda';
import { releaseTags, TAG } from '#core/model/naming.ts';
import { sample } from '#events/samples/index.ts';
import { createHandler as announceHandler } from '#functions/announce/handler.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as expireHandler } from '#functions/expire/handler.ts';
import { createHandler as ingestHandler } from '#functions/ingest/handler.ts';
import { createHandler as registerHandler } from '#functions/register/handler.ts';
import { createHandler as subscriberHandler } from '#functions/subscriber/handler.ts';
import { createHandler as syncHandler } from '#functions/sync-subscribers/handler.ts';
import {
  accountIds,
  FakeBusRules,
  FakeClock,
  FakeImaging,
  FakeMembers,
  FakeOrganization,
  FakePublisher,
  FakeQueue,
  FakeReleaseStore,
  OU_A,
  RecordingLogger,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

const tools = createPowertools({ serviceName: 'stemcell-test', quiet: true });

function context(functionName: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:111111111111:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

function central() {
  const imaging = new FakeImaging();
  const queues = new Map<string, FakeQueue>();
  const deps = {
    config: testConfig(),
    clock: new FakeClock(),
    logger: new RecordingLogger(),
    releases: new FakeReleaseStore(),
    events: new FakePublisher(),
    imaging: imaging.of,
    organization: new FakeOrganization([{ id: '200000000001', ou: OU_A }]),
    buildQueue: (region: string) => {
      const q = queues.get(region) ?? new FakeQueue(region);
      queues.set(region, q);
      return q;
    },
  };
  return { deps, imaging, queues };
}

/** The release, snapshot and image the samples name (snap-0123456789abcdef0, ami-0123456789abcdef0). */
async function sampleRelease(c: ReturnType<typeof central>) {
  const release = c.deps.releases.seed('web-base', '2026.11.20', ['eu-west-1']);
  const tags = { ...releaseTags(release), [TAG.sha256]: SHA };
  const { snapshots, images } = c.imaging.of('eu-west-1');
  snapshots.snapshots.set('snap-0123456789abcdef0', {
    snapshotId: 'snap-0123456789abcdef0',
    volumeId: 'vol-0123456789abcdef0',
    state: 'completed',
    tags,
    kmsKeyId: 'alias/stemcell',
  });
  return { release, images };
}

/** The sample's AMI (ami-0123456789abcdef0), registered and available. */
function sampleImage(release: Awaited<ReturnType<typeof sampleRelease>>['release']) {
  return {
    imageId: 'ami-0123456789abcdef0',
    name: 'stemcell/web-base/2026.11.20',
    state: 'available' as const,
    snapshotId: 'snap-0123456789abcdef0',
    architecture: 'x86_64' as const,
    bootMode: 'legacy-bios' as const,
    encrypted: true,
    kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k',
    tags: { ...releaseTags(release), [TAG.sha256]: SHA },
    createdAt: '2026-11-20T10:02:20Z',
    sharedWith: { organizationArns: [], ouArns: [], accountIds: [] },
  };
}

describe('Handler: ingest', () => {
  it('turns the S3 Object Created sample into a release and build jobs', async () => {
    // prepare
    const c = central();
    const handler = ingestHandler(c.deps, tools);
    // act
    const response = await handler(sample('s3-object-created') as never, context('ingest'));
    // assess
    assert.deepEqual(response, {
      releaseId: 'web-base#00000001',
      stream: 'web-base',
      revision: '2026.11.20',
      sequence: 1,
      created: true,
      enqueued: ['eu-west-1', 'us-east-1'],
    });
    assert.equal(c.queues.get('us-east-1')?.messages.length, 1);
  });

  it('rejects an event that is not an S3 EventBridge event', async () => {
    const c = central();
    await assert.rejects(ingestHandler(c.deps, tools)({ detail: {} } as never, context('ingest')));
    assert.equal(c.deps.releases.creates, 0);
  });
});

describe('Handler: register', () => {
  it('registers from the SQS-wrapped EBS sample and reports only the bad record as failed', async () => {
    // prepare
    const c = central();
    const { images } = await sampleRelease(c);
    const event = sample<{ Records: Array<{ messageId: string; body: string }> }>(
      'sqs-ebs-snapshot-notification',
    );
    const good = event.Records[0] as { messageId: string; body: string };
    event.Records.push({ ...good, messageId: 'bad-record', body: '{"not":"an EBS event"}' });
    event.Records.push({ ...good, messageId: 'duplicate' });
    // act
    const response = await registerHandler(c.deps, tools)(event as never, context('register'));
    // assess
    assert.deepEqual(response, { batchItemFailures: [{ itemIdentifier: 'bad-record' }] });
    assert.equal(images.images.size, 1, 'the duplicate record registered nothing new');
    assert.equal([...images.images.values()][0]?.name, 'stemcell/web-base/2026.11.20');
  });
});

describe('Handler: announce', () => {
  it('announces the image of the EC2 AMI State Change sample and records the Launch Template Updated sample', async () => {
    // prepare
    const c = central();
    const { release, images } = await sampleRelease(c);
    images.images.set('ami-0123456789abcdef0', sampleImage(release));
    const handler = announceHandler(c.deps, tools);
    // act
    const announced = await handler(sample('ec2-ami-state-change') as never, context('announce'));
    const recorded = await handler(sample('stemcell-launch-template-updated') as never, context('announce'));
    // assess
    assert.equal(announced.outcome, 'announced');
    assert.equal(c.deps.events.ofType('Image Ready').length, 1);
    assert.equal(c.deps.events.ofType('Release Complete').length, 1);
    assert.deepEqual(recorded, {
      outcome: 'account-recorded',
      releaseId: release.releaseId,
      accountId: '222222222222',
    });
    assert.equal(
      (await c.deps.releases.get(release.releaseId))?.accounts['222222222222/eu-west-1']?.outcome,
      'updated',
    );
  });
});

/** Bodies as the member bus rule puts them on the subscriber's FIFO queue (Lambda's SQS event shape). */
function sqsFifo(bodies: unknown[], groupOf: (body: unknown) => string = () => 'image-ready') {
  return {
    Records: bodies.map((body, i) => ({
      messageId: `m-${i}`,
      receiptHandle: `r-${i}`,
      body: JSON.stringify(body),
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '0',
        SenderId: 'events',
        ApproximateFirstReceiveTimestamp: '0',
        MessageGroupId: groupOf(body),
        MessageDeduplicationId: `d-${i}`,
        SequenceNumber: String(i + 1),
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:222222222222:stemcell-subscriber.fifo',
      awsRegion: 'eu-west-1',
    })),
  };
}

describe('Handler: subscriber', () => {
  it('moves the tagged launch template on the Image Ready sample; a repeat creates no second version', async () => {
    // prepare
    const members = new FakeMembers();
    const account = members.forAccount('222222222222', 'eu-west-1');
    const template = account.addTemplate('web', 'web-base');
    const events = new FakePublisher();
    const handler = subscriberHandler(
      {
        accountId: '222222222222',
        members,
        centralBus: 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell',
        events,
        settings: () => ({ instanceRefresh: true }),
        clock: new FakeClock(),
        logger: new RecordingLogger(),
      },
      tools,
    );
    // act
    const first = await handler(sqsFifo([sample('stemcell-image-ready')]) as never, context('subscriber'));
    await handler(sqsFifo([sample('stemcell-image-ready')]) as never, context('subscriber'));
    // assess
    assert.deepEqual(first.batchItemFailures, []);
    assert.equal(
      (events.ofType('Launch Template Updated')[0]?.detail as { outcome?: string } | undefined)?.outcome,
      'updated',
    );
    assert.equal(account.defaultImage('web'), 'ami-0123456789abcdef0');
    assert.equal(template.versions.length, 2);
    assert.equal(events.ofType('Launch Template Updated').length, 2);
  });

  it('fails a record whose detail breaks the contract, and the records after it in its group only', async () => {
    const bad = sample<{ detail: Record<string, unknown> }>('stemcell-image-ready');
    bad.detail.sequence = 0;
    const later = sample<{ detail: Record<string, unknown> }>('stemcell-image-ready');
    const otherStream = sample<{ detail: Record<string, unknown> }>('stemcell-image-ready');
    otherStream.detail.stream = 'batch-base';
    const members = new FakeMembers();
    const handler = subscriberHandler(
      {
        accountId: '222222222222',
        members,
        centralBus: 'central',
        events: new FakePublisher(),
        settings: () => ({ instanceRefresh: false }),
        clock: new FakeClock(),
        logger: new RecordingLogger(),
      },
      tools,
    );
    const event = sqsFifo([bad, later, otherStream], (body) => String((body as typeof bad).detail.stream));
    const response = await handler(event as never, context('subscriber'));
    assert.deepEqual(
      response.batchItemFailures.map((f) => f.itemIdentifier),
      [event.Records[0]?.messageId, event.Records[1]?.messageId],
      'the bad record and the one behind it in the same group come back; the other group goes on',
    );
  });
});

describe('Handler: sync-subscribers', () => {
  it('reconciles the rules on a scheduled event', async () => {
    // prepare
    const rules = new FakeBusRules();
    const deps = {
      config: testConfig(),
      clock: new FakeClock(),
      logger: new RecordingLogger(),
      organization: new FakeOrganization(accountIds(12).map((id) => ({ id, ou: OU_A }))),
      rules,
    };
    // act
    const result = await syncHandler(deps, tools)(
      { 'detail-type': 'Scheduled Event' },
      context('sync-subscribers'),
    );
    // assess
    assert.equal(result.rules.length, 3);
    assert.equal(rules.rules.size, 3);
  });

  it('has the reconciler tell accounts no rule targeted before of the newest announced image', async () => {
    // prepare: web-base announced in eu-west-1; the rules target the first account already, not the second
    const c = central();
    const { release, images } = await sampleRelease(c);
    images.images.set('ami-0123456789abcdef0', sampleImage(release));
    await announceHandler(c.deps, tools)(sample('ec2-ami-state-change') as never, context('announce'));
    c.deps.events.events = [];
    const [known, joiner] = accountIds(2);
    const organization = new FakeOrganization([known, joiner].map((id) => ({ id: id as string, ou: OU_A })));
    const rules = new FakeBusRules();
    await syncHandler({ ...c.deps, organization, rules }, tools)({}, context('sync-subscribers'));
    await rules.removeTargets([...rules.rules.keys()][0] as string, [joiner as string]);
    // act
    const result = await syncHandler(
      { ...c.deps, organization, rules, catchUp: { ...c.deps, organization } },
      tools,
    )({ 'detail-type': 'Scheduled Event' }, context('sync-subscribers'));
    // assess
    assert.deepEqual(result.joined, [joiner]);
    assert.deepEqual(result.caughtUp, [
      { releaseId: release.releaseId, region: 'eu-west-1', accountId: joiner },
    ]);
    const told = c.deps.events.ofType('Image Ready');
    assert.deepEqual(
      told.map((e) => [e.eventBusName, (e.detail as { imageId: string }).imageId]),
      [[`arn:aws:events:eu-west-1:${joiner}:event-bus/default`, 'ami-0123456789abcdef0']],
    );
  });

  it('tells the other joiners when one joiner’s bus refuses, and logs the one it could not tell', async () => {
    // prepare: web-base announced; two accounts no rule targets yet; the first PutEvents fails
    const c = central();
    const { release, images } = await sampleRelease(c);
    images.images.set('ami-0123456789abcdef0', sampleImage(release));
    await announceHandler(c.deps, tools)(sample('ec2-ami-state-change') as never, context('announce'));
    c.deps.events.events = [];
    c.deps.events.failNext = 1;
    const joiners = accountIds(2);
    const organization = new FakeOrganization(joiners.map((id) => ({ id, ou: OU_A })));
    const logger = new RecordingLogger();
    // act
    const result = await syncHandler(
      { ...c.deps, organization, rules: new FakeBusRules(), catchUp: { ...c.deps, organization, logger } },
      tools,
    )({}, context('sync-subscribers'));
    // assess
    assert.deepEqual(result.joined, joiners);
    assert.deepEqual(
      result.caughtUp.map((d) => d.accountId),
      [joiners[1]],
    );
    assert.equal(c.deps.events.ofType('Image Ready').length, 1);
    assert.ok(logger.lines.some((l) => l.level === 'error' && /not delivered/.test(l.message)));
  });
});

describe('Handler: expire', () => {
  it('runs expiry over every stream', async () => {
    // prepare
    const c = central();
    const deps = {
      config: c.deps.config,
      clock: c.deps.clock,
      logger: c.deps.logger,
      imaging: c.imaging.of,
      organization: c.deps.organization,
      members: new FakeMembers(),
    };
    // act
    const result = await expireHandler(deps, tools)({}, context('expire'));
    // assess
    assert.deepEqual(result, { dryRun: false, expired: [], keptInUse: [], waiting: [] });
  });
});
