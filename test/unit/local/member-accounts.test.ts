import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { LocalConfig } from '#config/schema.ts';
import { TAG } from '#core/model/naming.ts';
import {
  INSTANCE_REFRESH_END_PATTERN,
  type InstanceRefreshEndedEnvelope,
  InstanceRefreshEndedEvent,
} from '#events/aws.ts';
import { ManualClock } from '#local/clock.ts';
import { compileEventPattern } from '#local/event-pattern.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-members-'));
  roots.push(r);
  return r;
}

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';
const streamTag = { [TAG.stream]: 'web' };

describe('Class: LocalMemberAccounts', () => {
  it('lists launch templates by tag, with default and latest versions', async () => {
    const members = new LocalMemberAccounts(tempRoot());
    const lt = members.createLaunchTemplate(ACCOUNT, REGION, {
      name: 'web',
      imageId: 'ami-1',
      tags: streamTag,
    });
    members.createLaunchTemplate(ACCOUNT, REGION, {
      name: 'other',
      imageId: 'ami-1',
      tags: { [TAG.stream]: 'db' },
    });
    const account = members.forAccount(ACCOUNT, REGION);
    assert.deepEqual(await account.listLaunchTemplates(TAG.stream, 'web'), [
      {
        launchTemplateId: lt.launchTemplateId,
        launchTemplateName: 'web',
        defaultVersionNumber: 1,
        latestVersionNumber: 1,
        tags: streamTag,
      },
    ]);
    assert.match(lt.launchTemplateId, /^lt-[0-9a-f]{17}$/);
    assert.deepEqual(
      await members.forAccount('200000000002', REGION).listLaunchTemplates(TAG.stream, 'web'),
      [],
    );
    assert.deepEqual(
      await members.forAccount(ACCOUNT, 'us-east-1').listLaunchTemplates(TAG.stream, 'web'),
      [],
    );
  });

  it('creates a new version from a source version and moves the default to it', async () => {
    // prepare
    const members = new LocalMemberAccounts(tempRoot());
    const lt = members.createLaunchTemplate(ACCOUNT, REGION, {
      name: 'web',
      imageId: 'ami-1',
      tags: streamTag,
    });
    const account = members.forAccount(ACCOUNT, REGION);
    // act
    const v2 = await account.createLaunchTemplateVersion(lt.launchTemplateId, {
      sourceVersion: 1,
      imageId: 'ami-2',
      versionDescription: 'stemcell stream=web sequence=2 release=web#00000002',
      clientToken: 'web#00000002/lt',
    });
    await account.setDefaultVersion(lt.launchTemplateId, v2.versionNumber);
    // assess
    assert.deepEqual(v2, {
      versionNumber: 2,
      imageId: 'ami-2',
      versionDescription: 'stemcell stream=web sequence=2 release=web#00000002',
    });
    assert.deepEqual(await account.getLaunchTemplateVersion(lt.launchTemplateId, 2), v2);
    assert.equal(account.defaultImageId(lt.launchTemplateId), 'ami-2');
    const [listed] = await account.listLaunchTemplates(TAG.stream, 'web');
    assert.equal(listed?.defaultVersionNumber, 2);
    assert.equal(listed?.latestVersionNumber, 2);
  });

  it('returns the first version for a retried client token instead of creating another', async () => {
    const members = new LocalMemberAccounts(tempRoot());
    const lt = members.createLaunchTemplate(ACCOUNT, REGION, {
      name: 'web',
      imageId: 'ami-1',
      tags: streamTag,
    });
    const account = members.forAccount(ACCOUNT, REGION);
    const request = { sourceVersion: 1, imageId: 'ami-2', versionDescription: 'd', clientToken: 'token-1' };
    const first = await account.createLaunchTemplateVersion(lt.launchTemplateId, request);
    const retry = await members
      .forAccount(ACCOUNT, REGION)
      .createLaunchTemplateVersion(lt.launchTemplateId, request);
    assert.deepEqual(retry, first);
    assert.equal(account.launchTemplateVersions(lt.launchTemplateId).length, 2);
    await assert.rejects(
      account.createLaunchTemplateVersion(lt.launchTemplateId, { ...request, imageId: 'ami-3' }),
      { name: 'IdempotentParameterMismatch' },
    );
  });

  it('rejects unknown templates and versions with EC2 error codes', async () => {
    const members = new LocalMemberAccounts(tempRoot());
    const lt = members.createLaunchTemplate(ACCOUNT, REGION, { name: 'web', imageId: 'ami-1' });
    const account = members.forAccount(ACCOUNT, REGION);
    await assert.rejects(account.getLaunchTemplateVersion('lt-00000000000000000', 1), {
      name: 'InvalidLaunchTemplateId.NotFound',
    });
    await assert.rejects(account.setDefaultVersion(lt.launchTemplateId, 7), {
      name: 'InvalidLaunchTemplateId.VersionNotFound',
    });
    assert.throws(
      () => members.createLaunchTemplate(ACCOUNT, REGION, { name: 'web', imageId: 'ami-1' }),
      /already exists/,
    );
  });

  it('writes SSM parameters with increasing versions', async () => {
    const account = new LocalMemberAccounts(tempRoot()).forAccount(ACCOUNT, REGION);
    await account.putParameter('/stemcell/web/eu-west-1/image-id', 'ami-1');
    await account.putParameter('/stemcell/web/eu-west-1/image-id', 'ami-2');
    assert.deepEqual(account.getParameter('/stemcell/web/eu-west-1/image-id'), {
      value: 'ami-2',
      version: 2,
    });
  });

  it('starts an instance refresh, refuses a second while it runs, and allows one after it succeeds', async () => {
    // prepare
    const clock = new ManualClock();
    const members = new LocalMemberAccounts(tempRoot(), { clock, instanceRefreshSeconds: 60 });
    members.createAutoScalingGroup(ACCOUNT, REGION, {
      name: 'web-asg',
      tags: { ...streamTag, [TAG.refresh]: 'true' },
    });
    const account = members.forAccount(ACCOUNT, REGION);
    // act + assess
    assert.deepEqual(await account.listAutoScalingGroups(TAG.stream, 'web'), [
      { name: 'web-asg', tags: { ...streamTag, [TAG.refresh]: 'true' } },
    ]);
    assert.equal(await account.instanceRefreshInProgress('web-asg'), false);
    await account.startInstanceRefresh('web-asg');
    assert.equal(await account.instanceRefreshInProgress('web-asg'), true);
    await assert.rejects(account.startInstanceRefresh('web-asg'), { name: 'InstanceRefreshInProgress' });
    clock.advance(60_000);
    assert.equal(await account.instanceRefreshInProgress('web-asg'), false);
    assert.deepEqual(
      account.instanceRefreshes('web-asg').map((r) => r.status),
      ['Successful'],
    );
  });

  it('keeps a refresh pinned InProgress until told otherwise', async () => {
    const clock = new ManualClock();
    const members = new LocalMemberAccounts(tempRoot(), { clock });
    members.createAutoScalingGroup(ACCOUNT, REGION, { name: 'web-asg', tags: streamTag });
    const account = members.forAccount(ACCOUNT, REGION);
    account.setInstanceRefresh('web-asg', 'InProgress');
    clock.advance(24 * 3600_000);
    assert.equal(await account.instanceRefreshInProgress('web-asg'), true);
  });

  it('seeds launch templates and Auto Scaling groups from the config once, and keeps state across instances', async () => {
    // prepare
    const root = tempRoot();
    const local = {
      launchTemplates: [
        {
          account: ACCOUNT,
          region: REGION,
          name: 'web',
          stream: 'web',
          imageId: 'ami-0',
          autoScalingGroup: 'web-asg',
          refresh: true,
        },
        {
          account: ACCOUNT,
          region: REGION,
          name: 'web-batch',
          stream: 'web',
          imageId: 'ami-0',
          refresh: false,
        },
      ],
    } as unknown as LocalConfig;
    // act
    new LocalMemberAccounts(root).seedFromConfig(local);
    new LocalMemberAccounts(root).seedFromConfig(local);
    const account = new LocalMemberAccounts(root).forAccount(ACCOUNT, REGION);
    // assess
    const templates = await account.listLaunchTemplates(TAG.stream, 'web');
    assert.deepEqual(templates.map((t) => t.launchTemplateName).sort(), ['web', 'web-batch']);
    const [group] = await account.listAutoScalingGroups(TAG.stream, 'web');
    assert.equal(group?.name, 'web-asg');
    assert.equal(group?.tags[TAG.refresh], 'true');
    assert.equal(
      group?.launchTemplateId,
      templates.find((t) => t.launchTemplateName === 'web')?.launchTemplateId,
    );
  });
});

describe('Class: LocalMemberAccounts (Auto Scaling end events)', () => {
  /** A sink like the member's bus: what it was given, parsed as the subscriber parses it. */
  const sink = () => {
    const got: InstanceRefreshEndedEnvelope[] = [];
    return { got, emit: (e: unknown) => void got.push(InstanceRefreshEndedEvent.parse(e)) };
  };

  it('sends the documented end event when a refresh ends, once, matched by the member rule', async () => {
    // prepare: refreshes of 60 s; the next one fails
    const clock = new ManualClock('2026-11-20T10:00:00.000Z');
    const bus = sink();
    const members = new LocalMemberAccounts(tempRoot(), {
      clock,
      instanceRefreshSeconds: 60,
      autoScalingEvents: (accountId) => (accountId === ACCOUNT ? bus : undefined),
    });
    members.createAutoScalingGroup(ACCOUNT, REGION, { name: 'web-asg', tags: streamTag });
    const account = members.forAccount(ACCOUNT, REGION);
    account.failNextInstanceRefresh('web-asg');
    // act
    const { instanceRefreshId } = await account.startInstanceRefresh('web-asg');
    const early = members.deliverRefreshEvents();
    clock.advance(60_000);
    const due = members.deliverRefreshEvents();
    const again = members.deliverRefreshEvents();
    // assess
    assert.deepEqual([early, due, again], [0, 1, 0]);
    assert.equal(bus.got.length, 1);
    const [event] = bus.got;
    assert.equal(event?.['detail-type'], 'EC2 Auto Scaling Instance Refresh Failed');
    assert.deepEqual(event?.detail, {
      InstanceRefreshId: instanceRefreshId,
      AutoScalingGroupName: 'web-asg',
    });
    assert.equal(event?.account, ACCOUNT);
    assert.equal(event?.region, REGION);
    assert.match(
      event?.resources[0] ?? '',
      /^arn:aws:autoscaling:eu-west-1:200000000001:autoScalingGroup:.*:autoScalingGroupName\/web-asg$/,
    );
    assert.equal(compileEventPattern(INSTANCE_REFRESH_END_PATTERN)(JSON.parse(JSON.stringify(event))), true);
  });

  it('a refresh that ends as it starts sends its event at once; a new instance finds what a stopped one owed', async () => {
    // prepare
    const root = tempRoot();
    const clock = new ManualClock('2026-11-20T10:00:00.000Z');
    const bus = sink();
    const instant = new LocalMemberAccounts(root, { clock, autoScalingEvents: () => bus });
    instant.createAutoScalingGroup(ACCOUNT, REGION, { name: 'web-asg', tags: streamTag });
    // act: one refresh ending at once; one that runs 60 s, started by an instance that then "stops"
    await instant.forAccount(ACCOUNT, REGION).startInstanceRefresh('web-asg');
    const slow = new LocalMemberAccounts(root, {
      clock,
      instanceRefreshSeconds: 60,
      autoScalingEvents: () => undefined,
    });
    await slow.forAccount(ACCOUNT, REGION).startInstanceRefresh('web-asg');
    clock.advance(60_000);
    const restarted = new LocalMemberAccounts(root, { clock, autoScalingEvents: () => bus });
    const sent = restarted.deliverRefreshEvents();
    // assess
    assert.equal(sent, 1);
    assert.deepEqual(
      bus.got.map((e) => e['detail-type']),
      ['EC2 Auto Scaling Instance Refresh Succeeded', 'EC2 Auto Scaling Instance Refresh Succeeded'],
    );
  });

  it('tags a group (CreateOrUpdateTags), keeping its other tags', async () => {
    const members = new LocalMemberAccounts(tempRoot());
    members.createAutoScalingGroup(ACCOUNT, REGION, { name: 'web-asg', tags: streamTag });
    const account = members.forAccount(ACCOUNT, REGION);
    await account.tagAutoScalingGroup('web-asg', { [TAG.instanceRefresh]: 'r lt-1:2 r2' });
    assert.deepEqual(account.autoScalingGroupByName('web-asg')?.tags, {
      ...streamTag,
      [TAG.instanceRefresh]: 'r lt-1:2 r2',
    });
    await assert.rejects(account.tagAutoScalingGroup('nope', { a: 'b' }), { name: 'ValidationError' });
  });
});
