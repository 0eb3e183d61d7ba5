// The subscriber's second report: Auto Scaling's instance-refresh end event → "Launch Template Updated" with the
// refresh's outcome, for the release whose version the refresh rolled out; end events of refreshes stemcell
// did not start are ignored, with a log line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Context, SQSEvent } from 'aws-lambda';
import { applyImageReady } from '#core/members/subscriber.ts';
import { reportInstanceRefresh } from '#core/members/subscriber-refresh.ts';
import { TAG } from '#core/model/naming.ts';
import { INSTANCE_REFRESH_END, type InstanceRefreshEndedEnvelope } from '#events/aws.ts';
import { type SampleName, sample } from '#events/samples/index.ts';
import { LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler } from '#functions/subscriber/handler.ts';
import {
  AttributeLogger,
  FakeClock,
  FakeMembers,
  FakePublisher,
  imageReadyDetail,
} from '#test/support/core-fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';

function world() {
  const members = new FakeMembers();
  const account = members.forAccount(ACCOUNT, REGION);
  const template = account.addTemplate('web', 'web-base');
  account.addGroup('web-asg', template);
  const events = new FakePublisher();
  const logger = new AttributeLogger();
  const deps = {
    accountId: ACCOUNT,
    members,
    centralBus: 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell',
    events,
    settings: () => ({ instanceRefresh: true }),
    clock: new FakeClock(),
    logger,
  };
  return { members, account, template, events, logger, deps };
}

/** AWS's documented sample of `name`, for the group and refresh given. */
function endEvent(
  name: SampleName,
  group: string,
  instanceRefreshId: string,
  account = ACCOUNT,
): InstanceRefreshEndedEnvelope {
  const event = sample<InstanceRefreshEndedEnvelope>(name);
  return {
    ...event,
    account,
    region: REGION,
    detail: { AutoScalingGroupName: group, InstanceRefreshId: instanceRefreshId },
  };
}

describe('Function: reportInstanceRefresh()', () => {
  it("reports a refresh stemcell started as the release's template, with how it ended", async () => {
    // prepare: revision r2 moves the template and starts the refresh (reported "started")
    const w = world();
    await applyImageReady(w.deps, imageReadyDetail(2));
    const first = LaunchTemplateUpdatedDetail.parse(w.events.events[0]?.detail);
    const tag = w.account.groups[0]?.tags[TAG.instanceRefresh];
    w.events.events.length = 0;
    // act
    const result = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'refresh-1'),
    );
    // assess
    assert.equal(tag, `refresh-1 ${w.template.launchTemplateId}:2 r2`);
    assert.equal(first.instanceRefresh, 'started');
    assert.deepEqual(result, {
      outcome: 'reported',
      releaseId: 'web-base#00000002',
      instanceRefresh: 'failed',
    });
    assert.equal(w.events.events.length, 1);
    const sent = w.events.events[0];
    assert.equal(sent?.detailType, 'Launch Template Updated');
    assert.equal(sent?.eventBusName, w.deps.centralBus);
    const report = LaunchTemplateUpdatedDetail.parse(sent?.detail);
    // The same template, release and image as the first report; only the refresh part differs.
    const { instanceRefresh: _a, updatedAt: _b, ssmParameter: _c, ...same } = first;
    const { instanceRefresh, refresh, updatedAt: _d, ...rest } = report;
    assert.deepEqual(rest, same);
    assert.equal(instanceRefresh, 'failed');
    assert.deepEqual(refresh, { autoScalingGroupName: 'web-asg', instanceRefreshId: 'refresh-1' });
  });

  it('maps every documented end event to its outcome', async () => {
    const cases: [SampleName, string][] = [
      ['autoscaling-instance-refresh-succeeded', 'succeeded'],
      ['autoscaling-instance-refresh-failed', 'failed'],
      ['autoscaling-instance-refresh-cancelled', 'cancelled'],
      ['autoscaling-instance-refresh-rollback-succeeded', 'rolled-back'],
      ['autoscaling-instance-refresh-rollback-failed', 'failed'],
    ];
    assert.equal(cases.length, Object.keys(INSTANCE_REFRESH_END).length);
    for (const [name, outcome] of cases) {
      const w = world();
      await applyImageReady(w.deps, imageReadyDetail(2));
      const result = await reportInstanceRefresh(w.deps, endEvent(name, 'web-asg', 'refresh-1'));
      assert.equal(result.outcome === 'reported' && result.instanceRefresh, outcome, name);
    }
  });

  it('ignores, with a log line, refreshes stemcell did not start and groups it never refreshed', async () => {
    // prepare: one refresh of stemcell's on web-asg; an operator's group without the tag
    const w = world();
    await applyImageReady(w.deps, imageReadyDetail(2));
    w.account.addGroup('other-asg', w.template);
    w.events.events.length = 0;
    // act
    const results = [
      await reportInstanceRefresh(
        w.deps,
        endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'manual'),
      ),
      await reportInstanceRefresh(w.deps, endEvent('autoscaling-instance-refresh-failed', 'other-asg', 'x')),
      await reportInstanceRefresh(w.deps, endEvent('autoscaling-instance-refresh-failed', 'gone-asg', 'y')),
      await reportInstanceRefresh(
        w.deps,
        endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'refresh-1', '200000000009'),
      ),
    ];
    // assess
    assert.deepEqual(
      results.map((r) => r.outcome),
      ['ignored', 'ignored', 'ignored', 'ignored'],
    );
    assert.match(
      results[0]?.outcome === 'ignored' ? results[0].reason : '',
      /not the refresh stemcell started/,
    );
    assert.deepEqual(w.events.events, [], 'nothing reported');
    assert.equal(w.logger.lines.filter((l) => l.message === 'instance refresh end ignored').length, 4);
  });

  it('a later release that starts a new refresh makes the older refresh end unknown to stemcell', async () => {
    // prepare: r2 starts refresh-1; it ends; r3 starts refresh-2
    const w = world();
    await applyImageReady(w.deps, imageReadyDetail(2));
    const group = w.account.groups[0];
    if (group) group.refreshing = false;
    await applyImageReady(w.deps, imageReadyDetail(3));
    w.events.events.length = 0;
    // act
    const late = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-succeeded', 'web-asg', 'refresh-1'),
    );
    const current = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'refresh-2'),
    );
    // assess
    assert.equal(late.outcome, 'ignored');
    assert.deepEqual(current, {
      outcome: 'reported',
      releaseId: 'web-base#00000003',
      instanceRefresh: 'failed',
    });
    assert.equal(LaunchTemplateUpdatedDetail.parse(w.events.events[0]?.detail).revision, 'r3');
  });
});

describe('Function: reportInstanceRefresh() among several groups and templates', () => {
  it('logs why an end is ignored and what was reported, naming the group, refresh and region', async () => {
    // prepare
    const w = world();
    await applyImageReady(w.deps, imageReadyDetail(2));
    w.account.addGroup('manual-asg', w.template, false);
    // act
    const foreign = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'refresh-1', '200000000009'),
    );
    const untagged = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'manual-asg', 'x'),
    );
    await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-succeeded', 'web-asg', 'refresh-1'),
    );
    // assess
    assert.deepEqual(foreign, { outcome: 'ignored', reason: 'an event of account 200000000009' });
    assert.deepEqual(untagged, {
      outcome: 'ignored',
      reason: 'stemcell started no instance refresh on this group',
    });
    assert.deepEqual(w.logger.of('instance refresh end ignored'), {
      autoScalingGroupName: 'web-asg',
      instanceRefreshId: 'refresh-1',
      region: REGION,
      reason: 'an event of account 200000000009',
    });
    assert.deepEqual(w.logger.of('instance refresh end reported'), {
      releaseId: 'web-base#00000002',
      autoScalingGroupName: 'web-asg',
      region: REGION,
      instanceRefresh: 'succeeded',
    });
  });

  it('finds the group the end names among several stemcell refreshed, and the template the refresh used', async () => {
    // prepare: two groups on "web" and one on "api", all of stream web-base, each refreshed by r2
    const w = world();
    w.account.addGroup('web-asg-2', w.template);
    const api = w.account.addTemplate('api', 'web-base');
    w.account.addGroup('api-asg', api);
    await applyImageReady(w.deps, imageReadyDetail(2));
    const refreshOf = (name: string) =>
      w.account.groups.find((g) => g.name === name)?.tags[TAG.instanceRefresh]?.split(' ')[0] ?? '';
    w.events.events.length = 0;
    // act
    const second = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'web-asg-2', refreshOf('web-asg-2')),
    );
    const onApi = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-succeeded', 'api-asg', refreshOf('api-asg')),
    );
    // assess
    assert.equal(second.outcome, 'reported');
    assert.equal(onApi.outcome, 'reported');
    const [fromSecond, fromApi] = w.events.events.map((e) => LaunchTemplateUpdatedDetail.parse(e.detail));
    assert.deepEqual(fromSecond?.refresh, {
      autoScalingGroupName: 'web-asg-2',
      instanceRefreshId: refreshOf('web-asg-2'),
    });
    assert.equal(fromSecond?.launchTemplateName, 'web');
    assert.equal(fromApi?.launchTemplateName, 'api');
    assert.equal(fromApi?.launchTemplateId, api.launchTemplateId);
  });

  it('ignores an end whose launch template version no longer names a stemcell release', async () => {
    // prepare: the version the refresh used, its description changed by hand
    const w = world();
    await applyImageReady(w.deps, imageReadyDetail(2));
    const version = w.template.versions.find((v) => v.versionNumber === 2);
    assert.ok(version);
    version.versionDescription = 'hand-made';
    w.events.events.length = 0;
    // act
    const result = await reportInstanceRefresh(
      w.deps,
      endEvent('autoscaling-instance-refresh-failed', 'web-asg', 'refresh-1'),
    );
    // assess
    assert.deepEqual(result, {
      outcome: 'ignored',
      reason: `launch template ${w.template.launchTemplateId} version 2 holds no stemcell release`,
    });
    assert.deepEqual(w.events.events, []);
  });
});

describe('Function: subscriber handler (refresh ends)', () => {
  it('takes Image Ready and refresh ends from one queue, each to its core function', async () => {
    // prepare
    const w = world();
    const tools = createPowertools({ serviceName: 'stemcell-subscriber-test', quiet: true });
    const handler = createHandler(w.deps, tools);
    const ready = sample<{ detail: Record<string, unknown> }>('stemcell-image-ready');
    Object.assign(ready.detail, imageReadyDetail(2));
    const end = sample<{ account: string; detail: Record<string, unknown> }>(
      'autoscaling-instance-refresh-cancelled',
    );
    end.account = ACCOUNT;
    Object.assign(end.detail, { AutoScalingGroupName: 'web-asg', InstanceRefreshId: 'refresh-1' });
    const record = (body: unknown, group: string, n: number) => ({
      messageId: `m${n}`,
      receiptHandle: `h${n}`,
      body: JSON.stringify(body),
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: '1',
        SenderId: 'x',
        ApproximateFirstReceiveTimestamp: '1',
        MessageGroupId: group,
        MessageDeduplicationId: `d${n}`,
      },
      messageAttributes: {},
      md5OfBody: 'x',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:200000000001:stemcell-subscriber.fifo',
      awsRegion: REGION,
    });
    const event = {
      Records: [record(ready, 'image-ready', 1), record(end, 'instance-refresh', 2)],
    } as SQSEvent;
    // act
    const response = await handler(event, {
      functionName: 'stemcell-subscriber',
      awsRequestId: 'r',
    } as Context);
    // assess
    assert.deepEqual(response, { batchItemFailures: [] });
    const reports = w.events.events.map((e) => LaunchTemplateUpdatedDetail.parse(e.detail));
    assert.deepEqual(
      reports.map((r) => [r.instanceRefresh, r.refresh?.instanceRefreshId]),
      [
        ['started', undefined],
        ['cancelled', 'refresh-1'],
      ],
    );
  });
});
