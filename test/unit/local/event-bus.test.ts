import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ImageReadyEvent } from '#events/stemcell.ts';
import { ManualClock, type Sleep } from '#local/clock.ts';
import { EventBusRegistry, type EventEnvelope, eventBusArn, LocalEventBus } from '#local/event-bus.ts';
import { serviceEvent } from '#local/service-events.ts';
import type { BusEvent } from '#ports';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-bus-'));
  roots.push(r);
  return r;
}

const HOME = '111111111111';
const MEMBER = '222222222222';
const REGION = 'eu-west-1';
const noSleep: Sleep = async () => {};

function imageReady(overrides: Record<string, unknown> = {}): BusEvent {
  return {
    source: 'stemcell',
    detailType: 'Image Ready',
    detail: {
      version: 1,
      stream: 'web-base',
      revision: '2026.11.21',
      sequence: 3,
      releaseId: 'web-base#00000003',
      region: 'eu-west-1',
      imageId: 'ami-0123456789abcdef0',
      imageName: 'stemcell/web-base/2026.11.21',
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      encrypted: true,
      kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k',
      snapshotId: 'snap-0123',
      source: { bucket: 'b', key: 'streams/web-base/2026.11.21.tar.zst', etag: 'e', sha256: 'a'.repeat(64) },
      createdAt: '2026-11-21T10:00:00.000Z',
      ...overrides,
    },
  };
}

function bus(
  root: string,
  extra: Partial<ConstructorParameters<typeof LocalEventBus>[1]> = {},
): LocalEventBus {
  return new LocalEventBus(root, {
    name: 'stemcell',
    accountId: HOME,
    region: REGION,
    sleep: noSleep,
    ...extra,
  });
}

describe('Class: LocalEventBus', () => {
  it('delivers matching events to rule targets as the full EventBridge envelope, and not others', async () => {
    // prepare
    const central = bus(tempRoot());
    const got: EventEnvelope[] = [];
    central.addRule('image-ready', { source: ['stemcell'], 'detail-type': ['Image Ready'] }, (e) => {
      got.push(e);
    });
    // act
    await central.publish([imageReady(), { source: 'other', detailType: 'Image Ready', detail: {} }]);
    await central.drain();
    // assess
    assert.equal(got.length, 1);
    const parsed = ImageReadyEvent.parse(got[0]);
    assert.equal(parsed.account, HOME);
    assert.equal(parsed.region, REGION);
    assert.equal(parsed.version, '0');
    assert.equal(parsed.detail.imageId, 'ami-0123456789abcdef0');
  });

  it('does not call targets inside publish()', async () => {
    const central = bus(tempRoot());
    let called = false;
    central.addRule('r', { source: ['stemcell'] }, () => {
      called = true;
    });
    await central.publish([imageReady()]);
    assert.equal(called, false);
    await central.drain();
    assert.equal(called, true);
  });

  it('refuses stemcell events whose detail breaks the schema, naming the field, and puts none of the batch', async () => {
    const central = bus(tempRoot());
    const got: unknown[] = [];
    central.addRule('r', { source: ['stemcell'] }, (e) => {
      got.push(e);
    });
    await assert.rejects(central.publish([imageReady(), imageReady({ region: 'mars' })]), {
      name: 'ValidationException',
      message: /entry 1 .*detail\.region/,
    });
    // every issue, each by its path in the detail
    const { bucket: _, ...withoutBucket } = (imageReady().detail as { source: Record<string, string> })
      .source;
    await assert.rejects(central.publish([imageReady({ region: 'mars', source: withoutBucket })]), {
      name: 'ValidationException',
      message:
        /^PutEvents entry 0 \(stemcell \/ Image Ready\): detail\.region: [^;]+; detail\.source\.bucket: [^;]+$/,
    });
    await assert.rejects(
      central.publish([{ source: 'stemcell', detailType: 'Nope', detail: {} }]),
      /unknown detail-type/,
    );
    await assert.rejects(central.publish([{ source: 'aws.s3', detailType: 'Object Created', detail: {} }]), {
      name: 'NotAuthorizedForSourceException',
    });
    await central.drain();
    assert.equal(got.length, 0);
  });

  it('refuses a sixth target on a rule with LimitExceededException, for ARNs and local targets alike', async () => {
    // prepare
    const central = bus(tempRoot());
    await central.putRule('fanout-1', '{"source":["stemcell"]}', 'to members');
    const five = [1, 2, 3, 4, 5].map((i) => ({
      id: `t${i}`,
      arn: eventBusArn(REGION, `00000000000${i}`, 'stemcell'),
    }));
    await central.putTargets('fanout-1', five);
    // act + assess
    await assert.rejects(
      central.putTargets('fanout-1', [{ id: 't6', arn: eventBusArn(REGION, '000000000006', 's') }]),
      {
        name: 'LimitExceededException',
      },
    );
    // updating an existing id stays within the limit
    await central.putTargets('fanout-1', [
      { id: 't5', arn: eventBusArn(REGION, '000000000009', 'stemcell') },
    ]);
    const [rule] = await central.listRules('fanout-');
    assert.equal(rule?.targets.length, 5);
    assert.equal(
      rule?.targets.find((t) => t.id === 't5')?.arn,
      eventBusArn(REGION, '000000000009', 'stemcell'),
    );
    const six = Array.from({ length: 6 }, () => () => {});
    assert.throws(() => central.addRule('local', { source: ['x'] }, six), { name: 'LimitExceededException' });
    assert.deepEqual(await central.listRules('local'), []);
  });

  it('retries a failing target with backoff, then records it in the dead letters with the error', async () => {
    // prepare
    const sleeps: number[] = [];
    const central = bus(tempRoot(), {
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 15 },
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    let calls = 0;
    central.addRule(
      'flaky',
      { source: ['stemcell'] },
      {
        id: 'subscriber',
        handler: () => {
          calls++;
          throw new TypeError('subscriber exploded');
        },
      },
    );
    // act
    await central.publish([imageReady()]);
    await central.drain();
    // assess
    assert.equal(calls, 3);
    assert.deepEqual(sleeps, [10, 15]);
    const [letter] = central.deadLetters();
    assert.equal(letter?.targetId, 'subscriber');
    assert.equal(letter?.errorCode, 'TypeError');
    assert.equal(letter?.errorMessage, 'subscriber exploded');
    assert.equal(letter?.attempts, 3);
    assert.equal(letter?.event['detail-type'], 'Image Ready');
  });

  it('succeeds without a dead letter when a retry works', async () => {
    const central = bus(tempRoot());
    let calls = 0;
    central.addRule('once-flaky', { source: ['stemcell'] }, () => {
      if (++calls === 1) throw new Error('transient');
    });
    await central.publish([imageReady()]);
    await central.drain();
    assert.equal(calls, 2);
    assert.deepEqual(central.deadLetters(), []);
  });

  it('delivers to member-account buses by ARN through the registry, keeping the envelope', async () => {
    // prepare
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const central = bus(root, { registry });
    const member = new LocalEventBus(root, {
      name: 'stemcell',
      accountId: MEMBER,
      region: REGION,
      registry,
      sleep: noSleep,
    });
    const received: EventEnvelope[] = [];
    member.addRule('subscriber', { source: ['stemcell'], 'detail-type': ['Image Ready'] }, (e) => {
      received.push(e);
    });
    await central.putRule(
      'stemcell-subscribers-1',
      '{"source":["stemcell"],"detail-type":["Image Ready"]}',
      '',
    );
    await central.putTargets('stemcell-subscribers-1', [{ id: MEMBER, arn: member.arn }]);
    // act
    await central.publish([imageReady()]);
    await central.drain();
    // assess
    assert.equal(received.length, 1);
    assert.equal(received[0]?.account, HOME, 'the event keeps the account it was put from');
  });

  it('dead-letters deliveries to a bus ARN nobody registered', async () => {
    const central = bus(tempRoot(), { registry: new EventBusRegistry() });
    await central.putRule('r', '{"source":["stemcell"]}', '');
    const ghost = eventBusArn(REGION, '999999999999', 'stemcell');
    await central.putTargets('r', [{ id: 'ghost', arn: ghost }]);
    await central.publish([imageReady()]);
    await central.drain();
    const [letter] = central.deadLetters();
    assert.equal(letter?.targetArn, ghost);
    assert.equal(letter?.errorCode, 'ResourceNotFoundException');
    assert.equal(letter?.errorMessage, `event bus ${ghost} does not exist`);
  });

  it('drain() waits for deliveries caused by deliveries, across buses', async () => {
    // prepare: a member subscriber reports back to the central bus, where a second rule listens
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const central = bus(root, { registry });
    const member = new LocalEventBus(root, {
      name: 'stemcell',
      accountId: MEMBER,
      region: REGION,
      registry,
      sleep: noSleep,
    });
    central.addRule('to-member', { 'detail-type': ['Image Ready'] }, member);
    member.addRule('subscriber', { 'detail-type': ['Image Ready'] }, async () => {
      await member.publish([
        { source: 'member.test', detailType: 'Reported', detail: { ok: true }, eventBusName: central.arn },
      ]);
    });
    const reports: EventEnvelope[] = [];
    central.addRule('reports', { 'detail-type': ['Reported'] }, (e) => {
      reports.push(e);
    });
    // act
    await central.publish([imageReady()]);
    await central.drain();
    // assess
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.account, MEMBER);
  });

  it('drain() also waits for buses a rule forwarded to when no registry links them', async () => {
    // prepare
    const root = tempRoot();
    const central = bus(root);
    const member = new LocalEventBus(root, {
      name: 'stemcell',
      accountId: MEMBER,
      region: REGION,
      sleep: noSleep,
    });
    let handled = 0;
    member.addRule('subscriber', { 'detail-type': ['Image Ready'] }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      handled++;
    });
    central.addRule('to-member', { 'detail-type': ['Image Ready'] }, member);
    // act
    await central.publish([imageReady()]);
    await central.drain();
    // assess
    assert.equal(handled, 1);
  });

  it('drain() waits for a bus an entry was put on, also one registered that keeps its own deliveries', async () => {
    // prepare: "other" was made without the registry (its own delivery tracker) and registered afterwards
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const central = bus(root, { registry });
    const other = bus(root, { name: 'other' });
    registry.register(other);
    let handled = 0;
    other.addRule('slow', { 'detail-type': ['Image Ready'] }, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      handled++;
    });
    // act
    await central.publish([{ ...imageReady(), eventBusName: 'other' }]);
    await central.drain();
    // assess
    assert.equal(handled, 1);
  });

  it('routes service events emitted by AWS stand-ins', async () => {
    const central = bus(tempRoot());
    const got: EventEnvelope[] = [];
    central.addRule(
      's3',
      { source: ['aws.s3'], detail: { object: { key: [{ prefix: 'streams/' }] } } },
      (e) => {
        got.push(e);
      },
    );
    central.emit(
      serviceEvent({
        source: 'aws.s3',
        'detail-type': 'Object Created',
        account: HOME,
        region: REGION,
        resources: [],
        detail: { object: { key: 'streams/a/1.tar' } },
      }),
    );
    central.emit(
      serviceEvent({
        source: 'aws.s3',
        'detail-type': 'Object Created',
        account: HOME,
        region: REGION,
        resources: [],
        detail: { object: { key: 'other/x' } },
      }),
    );
    await central.drain();
    assert.equal(got.length, 1);
  });

  it('keeps rules and their ARN targets across instances over the same root', async () => {
    // prepare
    const root = tempRoot();
    const first = bus(root);
    await first.putRule('stemcell-subscribers-1', '{"source":["stemcell"]}', 'members');
    await first.putTargets('stemcell-subscribers-1', [
      { id: 'a', arn: eventBusArn(REGION, MEMBER, 'stemcell') },
    ]);
    first.addRule('local-only', { source: ['x'] }, () => {});
    // act
    const second = bus(root);
    // assess
    assert.deepEqual(await second.listRules(''), [
      {
        name: 'stemcell-subscribers-1',
        eventPattern: '{"source":["stemcell"]}',
        targets: [{ id: 'a', arn: eventBusArn(REGION, MEMBER, 'stemcell') }],
      },
    ]);
  });

  it('deletes a rule with its remaining targets, idempotently, so no more events reach them', async () => {
    // prepare
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const central = bus(root, { registry });
    const member = new LocalEventBus(root, {
      name: 'stemcell',
      accountId: MEMBER,
      region: REGION,
      registry,
      sleep: noSleep,
    });
    let received = 0;
    member.addRule('subscriber', { source: ['stemcell'] }, () => {
      received++;
    });
    await central.putRule('r', '{"source":["stemcell"]}', '');
    await central.putTargets('r', [{ id: 'a', arn: member.arn }]);
    // act
    await central.deleteRule('r');
    await central.deleteRule('r');
    await central.publish([imageReady()]);
    await central.drain();
    // assess
    assert.equal(received, 0);
    assert.deepEqual(await central.listRules('r'), []);
    assert.deepEqual(await bus(root).listRules(''), [], 'the deletion persisted');
    await assert.rejects(central.putTargets('r', []), { name: 'ResourceNotFoundException' });
  });

  it('removes targets by id, ignoring ids it does not have', async () => {
    const central = bus(tempRoot());
    await central.putRule('r', '{"source":["stemcell"]}', '');
    await central.putTargets('r', [
      { id: 'a', arn: eventBusArn(REGION, MEMBER, 'stemcell') },
      { id: 'b', arn: eventBusArn(REGION, '333333333333', 'stemcell') },
    ]);
    await central.removeTargets('r', ['a', 'zzz']);
    const [rule] = await central.listRules('r');
    assert.deepEqual(
      rule?.targets.map((t) => t.id),
      ['b'],
    );
  });

  it('rejects invalid patterns and non-bus target ARNs', async () => {
    const central = bus(tempRoot());
    await assert.rejects(central.putRule('r', '{"source":"stemcell"}', ''), {
      name: 'InvalidEventPatternException',
    });
    await central.putRule('r', '{"source":["stemcell"]}', '');
    await assert.rejects(
      central.putTargets('r', [{ id: 'q', arn: 'arn:aws:sqs:eu-west-1:111111111111:q' }]),
      {
        name: 'ValidationException',
      },
    );
  });

  it('stamps events with the injected clock, in EventBridge time format', async () => {
    const clock = new ManualClock('2026-11-21T10:11:12.345Z');
    const central = bus(tempRoot(), { clock });
    const got: EventEnvelope[] = [];
    central.addRule('r', { source: ['stemcell'] }, (e) => {
      got.push(e);
    });
    await central.publish([imageReady()]);
    await central.drain();
    assert.equal(got[0]?.time, '2026-11-21T10:11:12Z');
  });
});
