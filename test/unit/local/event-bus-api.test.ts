// The local EventBridge held to the API rules EventBridge documents: PutEvents entry validation (source and
// detail-type required, detail a JSON object, 256 KiB per entry measured as EventBridge measures it, no "aws."
// source from a caller), which bus an entry names (name or ARN), rule and target management (ListRules by prefix
// in name order, PutRule updating in place, PutTargets validation of ids and event bus ARNs of any partition,
// 5 targets per rule, what persists), the default retry schedule, the dead-letter record (rule ARN as
// EventBridge spells it), and the stored deliveries when storing, removing or dead-lettering one fails. Written
// from the mutants StrykerJS left alive in src/local/event-bus.ts (bench/mutation/groups.ts, group local-queues).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Sleep } from '#local/clock.ts';
import { EventBusRegistry, type EventEnvelope, eventBusArn, LocalEventBus } from '#local/event-bus.ts';
import type { BusEvent } from '#ports';

const HOME = '111111111111';
const MEMBER = '222222222222';
const REGION = 'eu-west-1';
const noSleep: Sleep = async () => {};
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-bus-api-'));
  roots.push(r);
  return r;
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

const test = (detail: unknown = { n: 1 }, extra: Partial<BusEvent> = {}): BusEvent =>
  ({ source: 'stemcell.test', detailType: 'Test', detail, ...extra }) as BusEvent;

function collect(target: LocalEventBus, name = 'all', pattern: object = { source: ['stemcell.test'] }) {
  const got: EventEnvelope[] = [];
  target.addRule(name, pattern, (e) => {
    got.push(e);
  });
  return got;
}

describe('Class: EventBusRegistry', () => {
  it('resolves registered buses by ARN, refuses a second bus under one ARN, and forgets an unregistered one', () => {
    // prepare
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const a = bus(root, { registry });
    // act + assess
    registry.register(a); // the same bus again is fine
    assert.equal(registry.resolve(a.arn), a);
    assert.throws(() => bus(tempRoot(), { registry }), {
      message: `event bus ${a.arn} is already registered`,
    });
    const b = bus(root, { registry, name: 'other' });
    assert.deepEqual(registry.list(), [a, b]);
    registry.unregister(a.arn);
    assert.equal(registry.resolve(a.arn), undefined);
    assert.deepEqual(registry.list(), [b]);
  });
});

describe('Class: LocalEventBus (PutEvents)', () => {
  it('puts the EventBridge envelope: version 0, a fresh id per event, the account, region and resources', async () => {
    // prepare
    const central = bus(tempRoot());
    const got = collect(central);
    // act
    await central.publish([
      test({ n: 1 }),
      test({ n: 2 }, { resources: ['arn:aws:ec2:eu-west-1::image/ami-1'] }),
    ]);
    await central.drain();
    // assess
    assert.equal(got.length, 2);
    const [first, second] = got;
    assert.equal(first?.version, '0');
    assert.equal(first?.source, 'stemcell.test');
    assert.equal(first?.['detail-type'], 'Test');
    assert.equal(first?.account, HOME);
    assert.equal(first?.region, REGION);
    assert.deepEqual(first?.resources, []);
    assert.deepEqual(first?.detail, { n: 1 });
    assert.deepEqual(second?.resources, ['arn:aws:ec2:eu-west-1::image/ami-1']);
    assert.match(first?.id ?? '', /^[0-9a-f-]{36}$/);
    assert.notEqual(first?.id, second?.id);
  });

  it('refuses an entry without source or detail-type, or whose detail is not a JSON object, naming the entry', async () => {
    // prepare
    const central = bus(tempRoot());
    const got = collect(central);
    const refused: [BusEvent, string, RegExp][] = [
      [
        test({}, { source: '' }),
        'ValidationException',
        /^PutEvents entry 1 \( \/ Test\): source and detail-type are required$/,
      ],
      [
        test({}, { detailType: '' }),
        'ValidationException',
        /^PutEvents entry 1 \(stemcell\.test \/ \): source and detail-type are required$/,
      ],
      [
        test([1, 2]),
        'ValidationException',
        /^PutEvents entry 1 \(stemcell\.test \/ Test\): detail must be a JSON object$/,
      ],
      [test(null), 'ValidationException', /detail must be a JSON object/],
      [test('text'), 'ValidationException', /detail must be a JSON object/],
      [
        test({}, { source: 'aws.ec2' }),
        'NotAuthorizedForSourceException',
        /only AWS services may put events with source aws\.ec2/,
      ],
    ];
    // act + assess: the first, valid entry of each batch is not put either
    for (const [entry, name, message] of refused) {
      await assert.rejects(central.publish([test(), entry]), { name, message }, message.source);
    }
    await central.drain();
    assert.equal(got.length, 0);
    assert.equal(central.pendingDeliveries(), 0);
  });

  it('refuses an entry above 256 KiB and takes one below', async () => {
    const central = bus(tempRoot());
    const got = collect(central);
    await assert.rejects(central.publish([test({ blob: 'x'.repeat(256 * 1024) })]), {
      name: 'ValidationException',
      message: /entry is \d+ bytes, more than the 256 KiB EventBridge takes/,
    });
    await central.publish([test({ blob: 'x'.repeat(255 * 1024) })]);
    await central.drain();
    assert.equal(got.length, 1);
  });

  it('measures an entry as EventBridge does (UTF-8 bytes of source, detail-type, detail, resources) and takes exactly 256 KiB', async () => {
    // prepare: entries whose documented size is 256 KiB exactly, with and without resources, and one byte more
    const central = bus(tempRoot());
    const got = collect(central);
    const detailType = 'Tést'; // 5 bytes in UTF-8
    const resources = ['arn:aws:ec2:eu-west-1::image/ami-1', 'arn:aws:s3:::b/ü'];
    const fixed = (res: string[]) =>
      Buffer.byteLength('stemcell.test') +
      Buffer.byteLength(detailType) +
      Buffer.byteLength('{"blob":""}') +
      res.reduce((n, r) => n + Buffer.byteLength(r), 0);
    const sized = (res: string[] | undefined, extra: number) =>
      test({ blob: 'x'.repeat(256 * 1024 - fixed(res ?? []) + extra) }, { detailType, resources: res });
    // act + assess
    await central.publish([sized(resources, 0)]);
    await central.publish([sized(undefined, 0)]);
    for (const res of [resources, undefined]) {
      await assert.rejects(central.publish([sized(res, 1)]), {
        name: 'ValidationException',
        message: `PutEvents entry 0 (stemcell.test / ${detailType}): entry is ${256 * 1024 + 1} bytes, more than the 256 KiB EventBridge takes`,
      });
    }
    await central.drain();
    assert.equal(got.length, 2);
  });

  it('refuses an unknown stemcell detail-type, listing the known ones', async () => {
    const central = bus(tempRoot());
    await assert.rejects(central.publish([{ source: 'stemcell', detailType: 'Nope', detail: {} }]), {
      name: 'ValidationException',
      message: /unknown detail-type for source stemcell; expected one of Release Started, Image Ready, /,
    });
  });

  it('puts an entry on the bus its EventBusName names, by name or ARN, and refuses a bus that does not exist', async () => {
    // prepare
    const registry = new EventBusRegistry();
    const root = tempRoot();
    const central = bus(root, { registry });
    const other = bus(root, { registry, name: 'other' });
    const member = bus(root, { registry, accountId: MEMBER });
    const onCentral = collect(central);
    const onOther = collect(other);
    const onMember = collect(member);
    // act
    await central.publish([
      test({ to: 'self-by-name' }, { eventBusName: 'stemcell' }),
      test({ to: 'self-by-arn' }, { eventBusName: central.arn }),
      test({ to: 'other-by-name' }, { eventBusName: 'other' }),
      test({ to: 'member-by-arn' }, { eventBusName: member.arn }),
    ]);
    await central.drain();
    // assess
    assert.deepEqual(
      onCentral.map((e) => e.detail.to),
      ['self-by-name', 'self-by-arn'],
    );
    assert.deepEqual(
      onOther.map((e) => e.detail.to),
      ['other-by-name'],
    );
    assert.deepEqual(
      onMember.map((e) => [e.detail.to, e.account]),
      [['member-by-arn', HOME]],
    );
    await assert.rejects(central.publish([test({}, { eventBusName: 'missing' })]), {
      name: 'ResourceNotFoundException',
      message: 'PutEvents entry 0: event bus missing does not exist',
    });
    const alone = bus(tempRoot(), { name: 'alone' });
    await assert.rejects(alone.publish([test({}, { eventBusName: central.arn })]), {
      name: 'ResourceNotFoundException',
    });
  });

  it('takes its own name or ARN as EventBusName without a registry to look them up in', async () => {
    // prepare
    const alone = bus(tempRoot(), { name: 'alone' });
    const got = collect(alone);
    // act
    await alone.publish([
      test({ to: 'by-name' }, { eventBusName: 'alone' }),
      test({ to: 'by-arn' }, { eventBusName: alone.arn }),
    ]);
    await alone.drain();
    // assess
    assert.deepEqual(
      got.map((e) => e.detail.to),
      ['by-name', 'by-arn'],
    );
  });

  it('gives each target its own copy of the event', async () => {
    const central = bus(tempRoot());
    const seen: unknown[] = [];
    central.addRule('r', { source: ['stemcell.test'] }, [
      (e) => {
        (e.detail as { n: number }).n = 99;
      },
      (e) => {
        seen.push(e.detail);
      },
    ]);
    await central.publish([test({ n: 1 })]);
    await central.drain();
    assert.deepEqual(seen, [{ n: 1 }]);
  });
});

describe('Class: LocalEventBus (rules and targets)', () => {
  it('lists the rules whose name starts with the prefix, in name order', async () => {
    const central = bus(tempRoot());
    for (const name of ['b-2', 'a-1', 'b-10', 'c']) await central.putRule(name, '{"source":["x"]}', '');
    assert.deepEqual(
      (await central.listRules('b-')).map((r) => r.name),
      ['b-10', 'b-2'],
    );
    assert.deepEqual(
      (await central.listRules('')).map((r) => r.name),
      ['a-1', 'b-10', 'b-2', 'c'],
    );
  });

  it('PutRule on an existing rule replaces its pattern and description and keeps its targets', async () => {
    // prepare
    const root = tempRoot();
    const central = bus(root);
    await central.putRule('r', '{"source":["old"]}', 'old');
    await central.putTargets('r', [{ id: 'm', arn: eventBusArn(REGION, MEMBER, 'stemcell') }]);
    // act
    await central.putRule('r', '{"source":["new"]}', 'new');
    // assess
    const expected = [
      {
        name: 'r',
        eventPattern: '{"source":["new"]}',
        targets: [{ id: 'm', arn: eventBusArn(REGION, MEMBER, 'stemcell') }],
      },
    ];
    assert.deepEqual(await central.listRules('r'), expected);
    assert.deepEqual(await bus(root).listRules('r'), expected, 'as written');
    const written = JSON.parse(
      readFileSync(join(root, 'event-buses', HOME, REGION, 'stemcell', 'rules.json'), 'utf8'),
    );
    assert.equal(written.rules[0].description, 'new');
  });

  it('a rule made locally and then put with PutRule persists, without its in-process targets', async () => {
    const root = tempRoot();
    const central = bus(root);
    central.addRule('r', { source: ['x'] }, () => {});
    await central.putRule('r', '{"source":["x"]}', '');
    assert.deepEqual(await bus(root).listRules(''), [
      { name: 'r', eventPattern: '{"source":["x"]}', targets: [] },
    ]);
  });

  it('refuses invalid rule names and target ids, and targets of an unknown rule', async () => {
    const central = bus(tempRoot());
    for (const name of ['', 'a b', 'x'.repeat(65), 'r/1']) {
      await assert.rejects(central.putRule(name, '{"source":["x"]}', ''), {
        name: 'ValidationException',
        message: `rule name ${JSON.stringify(name)} is not valid ([.-_A-Za-z0-9]{1,64})`,
      });
    }
    await central.putRule(`.-_${'x'.repeat(61)}`, '{"source":["x"]}', '');
    await central.putRule('r', '{"source":["x"]}', '');
    for (const id of ['', 'a b', 'x'.repeat(65)]) {
      await assert.rejects(central.putTargets('r', [{ id, arn: eventBusArn(REGION, MEMBER, 'stemcell') }]), {
        name: 'ValidationException',
        message: `target id ${JSON.stringify(id)} is not valid`,
      });
    }
    await assert.rejects(
      central.putTargets('r', [{ id: 't', arn: 'arn:aws:events:eu-west-1:2222:event-bus/s' }]),
      {
        message: /^target t: "arn:aws:events:eu-west-1:2222:event-bus\/s" is not an event bus ARN/,
      },
    );
    await assert.rejects(central.putTargets('nope', []), {
      name: 'ResourceNotFoundException',
      message: 'Rule nope does not exist on EventBus stemcell.',
    });
    await assert.rejects(central.removeTargets('nope', ['t']), { name: 'ResourceNotFoundException' });
    assert.deepEqual((await central.listRules('r'))[0]?.targets, [], 'a refused PutTargets changed nothing');
  });

  it('PutTargets takes an event bus ARN of any partition and refuses one with anything before or after it', async () => {
    // prepare
    const central = bus(tempRoot());
    await central.putRule('r', '{"source":["x"]}', '');
    const good = eventBusArn(REGION, MEMBER, 'stemcell');
    // act + assess: EventBridge answers an ARN that is not one with a ValidationException
    for (const arn of [` ${good}`, `x${good}`, `${good} `, `${good}:rule`, `${good}\nx`]) {
      await assert.rejects(
        central.putTargets('r', [{ id: 't', arn }]),
        {
          name: 'ValidationException',
          message: `target t: ${JSON.stringify(arn)} is not an event bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>), the only target the local bus takes by ARN`,
        },
        JSON.stringify(arn),
      );
    }
    const partitions = [
      { id: 'cn', arn: `arn:aws-cn:events:cn-north-1:${MEMBER}:event-bus/stemcell` },
      { id: 'gov', arn: `arn:aws-us-gov:events:us-gov-west-1:${MEMBER}:event-bus/stemcell` },
    ];
    await central.putTargets('r', partitions);
    assert.deepEqual((await central.listRules('r'))[0]?.targets, partitions);
  });

  it('a LimitExceededException names the rule and the count', async () => {
    const central = bus(tempRoot());
    await central.putRule('r', '{"source":["x"]}', '');
    const six = [1, 2, 3, 4, 5, 6].map((i) => ({
      id: `t${i}`,
      arn: eventBusArn(REGION, `00000000000${i}`, 's'),
    }));
    await assert.rejects(central.putTargets('r', six), {
      name: 'LimitExceededException',
      message:
        'The requested resource exceeds the maximum number allowed: rule r would have 6 targets, at most 5 are allowed.',
    });
    assert.deepEqual((await central.listRules('r'))[0]?.targets, []);
    assert.equal(central.maxTargetsPerRule, 5);
  });

  it('deleting a rule persists at once', async () => {
    const root = tempRoot();
    const central = bus(root);
    await central.putRule('gone', '{"source":["x"]}', '');
    await central.putRule('kept', '{"source":["x"]}', '');
    await central.deleteRule('gone');
    assert.deepEqual(
      (await bus(root).listRules('')).map((r) => r.name),
      ['kept'],
    );
  });

  it('rules read back stay persisted through the next write; rules made with addRule are never written', async () => {
    // prepare
    const root = tempRoot();
    await bus(root).putRule('kept', '{"source":["x"]}', '');
    const second = bus(root);
    second.addRule('local', { source: ['x'] }, { id: 'h', handler: () => {} });
    // act
    await second.putRule('added', '{"source":["y"]}', '');
    // assess
    assert.deepEqual(
      (await bus(root).listRules('')).map((r) => r.name),
      ['added', 'kept'],
    );
  });

  it('removing targets persists', async () => {
    const root = tempRoot();
    const central = bus(root);
    await central.putRule('r', '{"source":["x"]}', '');
    await central.putTargets('r', [
      { id: 'a', arn: eventBusArn(REGION, MEMBER, 'stemcell') },
      { id: 'b', arn: eventBusArn(REGION, MEMBER, 'other') },
    ]);
    await central.removeTargets('r', ['a']);
    assert.deepEqual(
      (await bus(root).listRules('r'))[0]?.targets.map((t) => t.id),
      ['b'],
    );
  });

  it('addRule: more targets for the same pattern, ids for handlers and buses, and no second pattern', async () => {
    // prepare
    const root = tempRoot();
    const central = bus(root);
    const member = bus(root, { accountId: MEMBER, name: 'member-bus' });
    // act
    central.addRule('r', { source: ['x'] }, () => {});
    central.addRule('r', '{"source":["x"]}', [() => {}, { id: 'named', handler: () => {} }, member]);
    // assess
    const [rule] = await central.listRules('r');
    assert.deepEqual(rule?.targets, [
      { id: 'r-1', arn: `arn:aws:lambda:${REGION}:${HOME}:function:r-1` },
      { id: 'r-2', arn: `arn:aws:lambda:${REGION}:${HOME}:function:r-2` },
      { id: 'named', arn: `arn:aws:lambda:${REGION}:${HOME}:function:named` },
      { id: `bus-${MEMBER}-${REGION}-member-bus`, arn: member.arn },
    ]);
    assert.throws(() => central.addRule('r', { source: ['y'] }, () => {}), {
      name: 'ValidationException',
      message: 'rule r already exists with another pattern',
    });
    assert.throws(() => central.addRule('s', { source: ['y'] }, { id: 'bad id', handler: () => {} }), {
      name: 'ValidationException',
      message: 'target id "bad id" is not valid',
    });
    assert.throws(() => central.addRule('bad name', { source: ['y'] }, () => {}), {
      name: 'ValidationException',
      message: 'rule name "bad name" is not valid ([.-_A-Za-z0-9]{1,64})',
    });
    assert.deepEqual(await central.listRules('s'), [], 'a refused rule is not kept');
  });

  it('gives a bus target an id of the valid characters, at most 64 long', async () => {
    const root = tempRoot();
    const central = bus(root);
    const longName = `a/b${'x'.repeat(70)}`;
    const member = bus(root, { accountId: MEMBER, name: longName });
    central.addRule('r', { source: ['x'] }, member);
    const id = (await central.listRules('r'))[0]?.targets[0]?.id ?? '';
    assert.equal(id, `bus-${MEMBER}-${REGION}-a_b${'x'.repeat(70)}`.slice(0, 64));
    assert.equal(id.length, 64);
  });
});

describe('Class: LocalEventBus (retries and dead letters)', () => {
  it('retries with the default policy: 4 attempts, 100 ms doubling', async () => {
    const sleeps: number[] = [];
    const central = bus(tempRoot(), {
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    let calls = 0;
    central.addRule('r', { source: ['stemcell.test'] }, () => {
      calls++;
      throw new Error('down');
    });
    await central.publish([test()]);
    await central.drain();
    assert.equal(calls, 4);
    assert.deepEqual(sleeps, [100, 200, 400]);
    assert.equal(central.deadLetters()[0]?.attempts, 4);
  });

  it('caps the backoff at maxDelayMs and refuses fewer than one attempt', async () => {
    const sleeps: number[] = [];
    const central = bus(tempRoot(), {
      retry: { maxAttempts: 5, baseDelayMs: 700 },
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    central.addRule('r', { source: ['stemcell.test'] }, () => {
      throw new Error('down');
    });
    await central.publish([test()]);
    await central.drain();
    assert.deepEqual(sleeps, [700, 1400, 2000, 2000]);
    assert.throws(
      () => bus(tempRoot(), { retry: { maxAttempts: 0 } }),
      /retry\.maxAttempts must be at least 1/,
    );
    const once = bus(tempRoot(), { retry: { maxAttempts: 1 } });
    let calls = 0;
    once.addRule('r', { source: ['stemcell.test'] }, () => {
      calls++;
      throw new Error('down');
    });
    await once.publish([test()]);
    await once.drain();
    assert.equal(calls, 1);
  });

  it('records the dead letter with the rule ARN EventBridge gives (bus name in it unless default) and tells the observer', async () => {
    // prepare
    const root = tempRoot();
    const letters: string[] = [];
    const named = bus(root, {
      retry: { maxAttempts: 1 },
      onDeadLetter: (l) => {
        letters.push(l.ruleArn);
        throw new Error('observer broke');
      },
    });
    const fallback = bus(root, { name: undefined, retry: { maxAttempts: 1 } });
    for (const b of [named, fallback]) {
      b.addRule(
        'r',
        { source: ['stemcell.test'] },
        { id: 'h', handler: () => Promise.reject('not an Error') },
      );
    }
    // act
    await named.publish([test()]);
    await fallback.publish([test()]);
    await named.drain();
    await fallback.drain();
    // assess
    assert.equal(fallback.name, 'default');
    assert.equal(fallback.arn, `arn:aws:events:${REGION}:${HOME}:event-bus/default`);
    const [letter] = named.deadLetters();
    assert.equal(letter?.ruleArn, `arn:aws:events:${REGION}:${HOME}:rule/stemcell/r`);
    assert.equal(letter?.ruleName, 'r');
    assert.equal(letter?.targetArn, `arn:aws:lambda:${REGION}:${HOME}:function:h`);
    assert.equal(letter?.errorCode, 'Error');
    assert.equal(letter?.errorMessage, 'not an Error');
    assert.equal(fallback.deadLetters()[0]?.ruleArn, `arn:aws:events:${REGION}:${HOME}:rule/r`);
    assert.deepEqual(letters, [letter?.ruleArn], 'the observer was told, and its failure swallowed');
    assert.equal(named.pendingDeliveries(), 0, 'a dead letter ends the delivery');
    named.clearDeadLetters();
    assert.deepEqual(named.deadLetters(), []);
    assert.equal(fallback.deadLetters().length, 1, 'each bus keeps its own');
  });
});

describe('Class: LocalEventBus (stored deliveries)', () => {
  it('resumes stored deliveries once, skips other files, and dead-letters one whose rule is gone', async () => {
    // prepare: deliveries as a crashed process left them
    const root = tempRoot();
    const central = bus(root);
    assert.equal(central.resumeDeliveries(), 0, 'no deliveries folder yet');
    assert.equal(central.pendingDeliveries(), 0);
    const dir = join(root, 'event-buses', HOME, REGION, 'stemcell', 'deliveries');
    mkdirSync(dir, { recursive: true });
    const event = {
      version: '0',
      id: 'e1',
      source: 'stemcell.test',
      'detail-type': 'Test',
      detail: { n: 1 },
    };
    const stored = (id: string, ruleName: string, targetId: string) =>
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({ id, ruleName, targetId, event, acceptedAt: '2026-12-01T00:00:00.000Z' }),
      );
    stored('d1', 'r', 'h');
    stored('d2', 'gone', 'h');
    stored('d3', 'r', 'gone');
    writeFileSync(join(dir, 'notes.txt'), 'not a delivery');
    const got: unknown[] = [];
    central.addRule('r', { source: ['stemcell.test'] }, { id: 'h', handler: (e) => void got.push(e.detail) });
    assert.equal(central.pendingDeliveries(), 3);
    // act
    const resumed = central.resumeDeliveries();
    const again = central.resumeDeliveries();
    await central.drain();
    // assess
    assert.equal(resumed, 1);
    assert.equal(again, 0, 'one in flight is not resumed twice');
    assert.deepEqual(got, [{ n: 1 }]);
    const letters = central.deadLetters().sort((a, b) => a.targetId.localeCompare(b.targetId));
    assert.deepEqual(
      letters.map((l) => [l.ruleName, l.targetId, l.errorCode, l.attempts, l.targetArn]),
      [
        ['r', 'gone', 'ResourceNotFoundException', 0, ''],
        ['gone', 'h', 'ResourceNotFoundException', 0, ''],
      ],
    );
    assert.match(
      letters[1]?.errorMessage ?? '',
      /^rule gone or its target h no longer exists on EventBus stemcell$/,
    );
    assert.equal(central.pendingDeliveries(), 0);
    assert.equal(central.resumeDeliveries(), 0);
  });

  it('a deliveries folder that cannot be read is an error, not "nothing pending"', () => {
    const root = tempRoot();
    const central = bus(root);
    const busDir = join(root, 'event-buses', HOME, REGION, 'stemcell');
    mkdirSync(busDir, { recursive: true });
    writeFileSync(join(busDir, 'deliveries'), 'not a folder');
    assert.throws(() => central.resumeDeliveries(), { code: 'ENOTDIR' });
    assert.throws(() => central.pendingDeliveries(), { code: 'ENOTDIR' });
  });

  it("keeps none of an event's deliveries when one of them cannot be stored", async () => {
    // prepare: two targets owed; the clock (read once for the envelope, then once per delivery) fails on the second
    let reads = 0;
    const central = bus(tempRoot(), {
      clock: {
        now: () => {
          if (++reads === 3) throw new Error('clock broke');
          return new Date('2026-12-01T00:00:00.000Z');
        },
      },
    });
    const got: unknown[] = [];
    central.addRule('r', { source: ['stemcell.test'] }, [() => void got.push(1), () => void got.push(2)]);
    // act
    await assert.rejects(central.publish([test()]), { message: 'clock broke' });
    await central.drain();
    // assess
    assert.equal(reads, 3);
    assert.equal(central.pendingDeliveries(), 0, 'the first delivery, stored already, was removed again');
    assert.deepEqual(got, []);
  });

  it('a delivery whose file outlived it (it could not be removed) is delivered again by a later resumeDeliveries()', async () => {
    // prepare: a delivery in flight, its file read while it is
    const root = tempRoot();
    const central = bus(root);
    const dir = join(root, 'event-buses', HOME, REGION, 'stemcell', 'deliveries');
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    const got: unknown[] = [];
    central.addRule(
      'r',
      { source: ['stemcell.test'] },
      {
        id: 'h',
        handler: async (e) => {
          got.push(e.detail);
          await gate;
        },
      },
    );
    await central.publish([test({ n: 1 })]);
    const [name] = readdirSync(dir);
    const file = readFileSync(join(dir, name ?? ''), 'utf8');
    release();
    await central.drain();
    assert.equal(central.pendingDeliveries(), 0);
    // act: the file is back, as if its removal had failed
    writeFileSync(join(dir, name ?? ''), file);
    const resumed = central.resumeDeliveries();
    await central.drain();
    // assess: at least once
    assert.equal(resumed, 1);
    assert.deepEqual(got, [{ n: 1 }, { n: 1 }]);
    assert.equal(central.pendingDeliveries(), 0);
  });

  it('a delivery whose dead letter cannot be written fails drain() once and stays owed for resumeDeliveries()', async () => {
    // prepare: the dead letters' file is a folder, and the target fails the first time only
    const root = tempRoot();
    const central = bus(root, { retry: { maxAttempts: 1 } });
    const lettersPath = join(root, 'event-buses', HOME, REGION, 'stemcell', 'dead-letters.json');
    mkdirSync(lettersPath, { recursive: true });
    let calls = 0;
    central.addRule(
      'r',
      { source: ['stemcell.test'] },
      {
        id: 'h',
        handler: () => {
          if (++calls === 1) throw new Error('down');
        },
      },
    );
    // act + assess
    await central.publish([test()]);
    await assert.rejects(central.drain(), { code: 'EISDIR' });
    await central.drain(); // the failure is reported once, not held for ever
    assert.equal(central.pendingDeliveries(), 1, 'not delivered, not a dead letter: still owed');
    rmSync(lettersPath, { recursive: true });
    assert.equal(central.resumeDeliveries(), 1, 'no longer in flight here');
    await central.drain();
    assert.equal(calls, 2);
    assert.equal(central.pendingDeliveries(), 0);
    assert.deepEqual(central.deadLetters(), []);
  });

  it('stores one delivery per matching rule target until it is done', async () => {
    const central = bus(tempRoot());
    const { promise: gate, resolve: release } = Promise.withResolvers<void>();
    central.addRule('r', { source: ['stemcell.test'] }, [() => gate, () => gate]);
    central.addRule('other', { source: ['else'] }, () => {});
    await central.publish([test()]);
    assert.equal(central.pendingDeliveries(), 2);
    release();
    await central.drain();
    assert.equal(central.pendingDeliveries(), 0);
  });
});
