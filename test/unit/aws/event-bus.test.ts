import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DeleteRuleCommand,
  EventBridgeClient,
  ListRulesCommand,
  ListTargetsByRuleCommand,
  PutEventsCommand,
  PutTargetsCommand,
  RemoveTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import { mockClient } from 'aws-sdk-client-mock';
import { EventBridgeBusRules, EventBridgePublisher, PublishError } from '#aws/event-bus.ts';

const client = () =>
  new EventBridgeClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const noSleep = async () => {};
const event = (n: number) => ({ source: 'stemcell', detailType: 'Image Ready', detail: { n } });

describe('Class: EventBridgePublisher', () => {
  it('sends PutEvents in batches of 10 with JSON details on the default bus', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock.on(PutEventsCommand).callsFake((input) => ({
      FailedEntryCount: 0,
      Entries: input.Entries.map(() => ({ EventId: 'e' })),
    }));
    const publisher = new EventBridgePublisher({ client: eb, eventBusName: 'stemcell', sleep: noSleep });
    // act
    await publisher.publish(Array.from({ length: 25 }, (_, i) => event(i)));
    // assess
    const calls = mock.commandCalls(PutEventsCommand).map((c) => c.args[0].input.Entries ?? []);
    assert.deepEqual(
      calls.map((c) => c.length),
      [10, 10, 5],
    );
    assert.deepEqual(calls[0]?.[0], {
      Source: 'stemcell',
      DetailType: 'Image Ready',
      Detail: '{"n":0}',
      EventBusName: 'stemcell',
    });
  });

  it('resends only the failed entries, matched by index', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock
      .on(PutEventsCommand)
      .resolvesOnce({
        FailedEntryCount: 1,
        Entries: [{ EventId: 'a' }, { ErrorCode: 'InternalFailure', ErrorMessage: 'x' }, { EventId: 'c' }],
      })
      .resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'b' }] });
    const publisher = new EventBridgePublisher({ client: eb, sleep: noSleep });
    // act
    await publisher.publish([event(0), event(1), event(2)]);
    // assess
    const second = mock.commandCalls(PutEventsCommand)[1]?.args[0].input.Entries;
    assert.deepEqual(
      second?.map((e) => e.Detail),
      ['{"n":1}'],
    );
  });

  it('gives up after the bounded attempts with the failing codes', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: 'ThrottlingException', ErrorMessage: 'slow down' }],
    });
    const publisher = new EventBridgePublisher({ client: eb, attempts: 3, sleep: noSleep });
    // act / assess
    await assert.rejects(publisher.publish([event(0)]), (err: unknown) => {
      assert.ok(err instanceof PublishError);
      assert.match(err.message, /ThrottlingException/);
      return true;
    });
    assert.equal(mock.commandCalls(PutEventsCommand).length, 3);
  });
});

describe('Class: EventBridgeBusRules', () => {
  it('follows NextToken through rules and their targets', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock
      .on(ListRulesCommand, { NextToken: undefined })
      .resolves({ Rules: [{ Name: 'stemcell-subscribers-0', EventPattern: '{}' }], NextToken: 't' })
      .on(ListRulesCommand, { NextToken: 't' })
      .resolves({ Rules: [{ Name: 'stemcell-subscribers-1', EventPattern: '{}' }] });
    mock
      .on(ListTargetsByRuleCommand, { Rule: 'stemcell-subscribers-0', NextToken: undefined })
      .resolves({ Targets: [{ Id: 'a', Arn: 'arn:a' }], NextToken: 'u' })
      .on(ListTargetsByRuleCommand, { Rule: 'stemcell-subscribers-0', NextToken: 'u' })
      .resolves({ Targets: [{ Id: 'b', Arn: 'arn:b' }] })
      .on(ListTargetsByRuleCommand, { Rule: 'stemcell-subscribers-1' })
      .resolves({ Targets: [] });
    const rules = new EventBridgeBusRules({ eventBusName: 'stemcell', client: eb });
    // act
    const listed = await rules.listRules('stemcell-subscribers-');
    // assess
    assert.deepEqual(listed, [
      {
        name: 'stemcell-subscribers-0',
        eventPattern: '{}',
        targets: [
          { id: 'a', arn: 'arn:a' },
          { id: 'b', arn: 'arn:b' },
        ],
      },
      { name: 'stemcell-subscribers-1', eventPattern: '{}', targets: [] },
    ]);
    assert.equal(mock.commandCalls(ListRulesCommand)[0]?.args[0].input.EventBusName, 'stemcell');
    assert.equal(mock.commandCalls(ListRulesCommand)[0]?.args[0].input.NamePrefix, 'stemcell-subscribers-');
  });

  it('puts cross-account targets with the delivery role, retries and a DLQ', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock.on(PutTargetsCommand).resolves({ FailedEntryCount: 0 });
    const rules = new EventBridgeBusRules({
      eventBusName: 'stemcell',
      client: eb,
      targetRoleArn: 'arn:aws:iam::111111111111:role/delivery',
      deadLetterArn: 'arn:aws:sqs:eu-west-1:111111111111:dlq',
    });
    // act
    await rules.putTargets('r', [
      { id: 'acct', arn: 'arn:aws:events:eu-west-1:222222222222:event-bus/stemcell' },
    ]);
    // assess
    assert.deepEqual(mock.commandCalls(PutTargetsCommand)[0]?.args[0].input, {
      Rule: 'r',
      EventBusName: 'stemcell',
      Targets: [
        {
          Id: 'acct',
          Arn: 'arn:aws:events:eu-west-1:222222222222:event-bus/stemcell',
          RoleArn: 'arn:aws:iam::111111111111:role/delivery',
          DeadLetterConfig: { Arn: 'arn:aws:sqs:eu-west-1:111111111111:dlq' },
          RetryPolicy: { MaximumRetryAttempts: 185 },
        },
      ],
    });
  });

  it('fails loudly when PutTargets reports failed entries', async () => {
    const eb = client();
    mockClient(eb)
      .on(PutTargetsCommand)
      .resolves({
        FailedEntryCount: 1,
        FailedEntries: [{ TargetId: 'x', ErrorCode: 'LimitExceededException' }],
      });
    const rules = new EventBridgeBusRules({ eventBusName: 'stemcell', client: eb });
    await assert.rejects(rules.putTargets('r', [{ id: 'x', arn: 'arn:x' }]), /LimitExceededException/);
  });

  it('removes remaining targets before deleting a rule, and ignores a rule already gone', async () => {
    // prepare
    const eb = client();
    const mock = mockClient(eb);
    mock.on(ListTargetsByRuleCommand).resolves({ Targets: [{ Id: 'a', Arn: 'arn:a' }] });
    mock.on(RemoveTargetsCommand).resolves({ FailedEntryCount: 0 });
    mock.on(DeleteRuleCommand).resolves({});
    const rules = new EventBridgeBusRules({ eventBusName: 'stemcell', client: eb });
    // act
    await rules.deleteRule('r');
    // assess
    assert.deepEqual(mock.commandCalls(RemoveTargetsCommand)[0]?.args[0].input, {
      Rule: 'r',
      EventBusName: 'stemcell',
      Ids: ['a'],
    });
    assert.deepEqual(mock.commandCalls(DeleteRuleCommand)[0]?.args[0].input, {
      Name: 'r',
      EventBusName: 'stemcell',
    });

    const gone = client();
    const err = new Error('no rule');
    err.name = 'ResourceNotFoundException';
    mockClient(gone).on(ListTargetsByRuleCommand).rejects(err);
    await new EventBridgeBusRules({ eventBusName: 'stemcell', client: gone }).deleteRule('r');
  });
});
