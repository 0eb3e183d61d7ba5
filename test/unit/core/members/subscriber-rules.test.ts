// What a member account sees from its subscriber beyond the main path (subscriber.test.ts): the SSM parameter
// when templates disagree, the report sent back, versions a concurrent delivery wrote, a reused client token,
// the re-read after the write (settleDefault), how the refreshes it starts are reported, and the settings
// local mode reads from the config.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SubscriberSettings, subscriberSettingsFromConfig } from '#core/deps.ts';
import { applyImageReady, refreshOutcome, settleDefault } from '#core/members/subscriber.ts';
import { instanceRefreshTag, launchTemplateVersionDescription, TAG } from '#core/model/naming.ts';
import { LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import type { InstanceRefreshStatus, MemberAccount } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeMembers,
  FakePublisher,
  imageReadyDetail as imageReady,
  testConfig,
} from '#test/support/core-fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';
const CENTRAL = 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell';
const PARAMETER = '/stemcell/{stream}/{region}/image-id';

function setup(settings: SubscriberSettings = { instanceRefresh: true, ssmParameter: PARAMETER }) {
  const members = new FakeMembers();
  const deps = {
    accountId: ACCOUNT,
    members,
    centralBus: CENTRAL,
    events: new FakePublisher(),
    settings: () => settings,
    clock: new FakeClock('2026-11-20T10:05:00.000Z'),
    logger: new AttributeLogger(),
  };
  return { deps, account: members.forAccount(ACCOUNT, REGION) };
}

/** A version stemcell wrote for `sequence` (as a delivery of it would), not made the default. */
async function stemcellVersion(account: MemberAccount, launchTemplateId: string, sequence: number) {
  const image = imageReady(sequence);
  return account.createLaunchTemplateVersion(launchTemplateId, {
    sourceVersion: 1,
    imageId: image.imageId,
    versionDescription: launchTemplateVersionDescription(image),
    clientToken: `other-delivery-${sequence}`,
  });
}

const parameterName = '/stemcell/web-base/eu-west-1/image-id';

describe('Function: applyImageReady()', () => {
  it('writes the parameter when one template moves and another already holds a newer image', async () => {
    // prepare: "api", listed first, already moved to 3 (its version 3); "web" is still on the original image
    const { deps, account } = setup();
    const api = account.addTemplate('api', 'web-base');
    await stemcellVersion(account, api.launchTemplateId, 1);
    const three = await stemcellVersion(account, api.launchTemplateId, 3);
    await account.setDefaultVersion(api.launchTemplateId, three.versionNumber);
    const web = account.addTemplate('web', 'web-base');
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual(
      result.templates.map((t) => [t.launchTemplateName, t.outcome, t.versionNumber]),
      [
        ['api', 'skipped-older', 3],
        ['web', 'updated', 2],
      ],
    );
    assert.equal(account.defaultImage('web'), imageReady(2).imageId);
    assert.equal(web.defaultVersionNumber, 2);
    assert.deepEqual(
      [result.templates[1]?.instanceRefresh, result.templates[1]?.refreshedGroups],
      ['not-requested', []],
      'refresh asked for, but web has no group to refresh',
    );
    assert.equal(account.defaultImage('api'), imageReady(3).imageId);
    assert.equal(account.parameters.get(parameterName), imageReady(2).imageId);
    assert.equal(result.ssmParameter, parameterName);
  });

  it('writes no parameter and reports nothing in an account with no template of the stream', async () => {
    // prepare
    const { deps, account } = setup();
    account.addTemplate('db', 'db-base');
    // act
    const result = await applyImageReady(deps, imageReady(1));
    // assess
    assert.deepEqual(result, { accountId: ACCOUNT, region: REGION, templates: [] });
    assert.equal(account.parameters.size, 0);
    assert.deepEqual(deps.events.events, []);
  });

  it('reports each template back to the central bus with the release, the version and when', async () => {
    // prepare
    const { deps, account } = setup({ instanceRefresh: false, ssmParameter: PARAMETER });
    const web = account.addTemplate('web', 'web-base');
    // act
    const result = await applyImageReady(deps, imageReady(4));
    // assess
    const [report] = deps.events.events;
    assert.equal(deps.events.events.length, 1);
    assert.equal(report?.detailType, 'Launch Template Updated');
    assert.equal(report?.eventBusName, CENTRAL);
    assert.deepEqual(LaunchTemplateUpdatedDetail.parse(report?.detail), {
      version: 1,
      stream: 'web-base',
      revision: 'r4',
      sequence: 4,
      releaseId: 'web-base#00000004',
      accountId: ACCOUNT,
      region: REGION,
      imageId: imageReady(4).imageId,
      launchTemplateId: web.launchTemplateId,
      launchTemplateName: 'web',
      versionNumber: 2,
      outcome: 'updated',
      ssmParameter: parameterName,
      instanceRefresh: 'not-requested',
      updatedAt: '2026-11-20T10:05:00.000Z',
    });
    assert.deepEqual(result, {
      accountId: ACCOUNT,
      region: REGION,
      ssmParameter: parameterName,
      templates: [
        {
          launchTemplateId: web.launchTemplateId,
          launchTemplateName: 'web',
          outcome: 'updated',
          versionNumber: 2,
          instanceRefresh: 'not-requested',
          refreshedGroups: [],
        },
      ],
    });
    assert.deepEqual(deps.logger.of('image ready applied'), {
      releaseId: 'web-base#00000004',
      region: REGION,
      templates: ['web:updated'],
    });
  });

  it('never steps back behind a newer version a concurrent delivery wrote but has not made default yet', async () => {
    // prepare: the default holds 1; a delivery of 3 created its version and has not set it yet
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    await account.setDefaultVersion(
      web.launchTemplateId,
      (await stemcellVersion(account, web.launchTemplateId, 1)).versionNumber,
    );
    await stemcellVersion(account, web.launchTemplateId, 3);
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.equal(result.templates[0]?.outcome, 'skipped-older');
    assert.equal(result.templates[0]?.versionNumber, 2);
    assert.equal(web.versions.length, 3, 'no version made for 2');
    assert.equal(account.defaultImage('web'), imageReady(1).imageId);
  });

  it('takes a template whose default already has the image, put there by hand, as current', async () => {
    // prepare: someone set the new image on the template by hand (no stemcell description)
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base', imageReady(5).imageId, 'by hand');
    // act
    const result = await applyImageReady(deps, imageReady(5));
    // assess
    assert.equal(result.templates[0]?.outcome, 'already-current');
    assert.equal(web.versions.length, 1);
    assert.equal(account.groups.length, 0);
  });

  it('moves a template whose default has an older image put there by hand', async () => {
    // prepare
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base', imageReady(4).imageId, 'by hand');
    // act
    const result = await applyImageReady(deps, imageReady(5));
    // assess
    assert.equal(result.templates[0]?.outcome, 'updated');
    assert.equal(web.defaultVersionNumber, 2);
    assert.equal(account.defaultImage('web'), imageReady(5).imageId);
  });

  it('when EC2 refuses the reused token, takes the version the duplicate delivery made', async () => {
    // prepare: a duplicate delivery made version 4 (image and description of this release) from another source
    // version; an operator's version 2 has the same image with another description, and version 3 a copy of
    // the release's description with another image
    const { deps, account } = setup({ instanceRefresh: false });
    const web = account.addTemplate('web', 'web-base');
    await account.createLaunchTemplateVersion(web.launchTemplateId, {
      sourceVersion: 1,
      imageId: imageReady(2).imageId,
      versionDescription: 'operator test',
      clientToken: 'op',
    });
    await account.createLaunchTemplateVersion(web.launchTemplateId, {
      sourceVersion: 1,
      imageId: 'ami-0000000000000000f',
      versionDescription: launchTemplateVersionDescription(imageReady(2)),
      clientToken: 'op-copy',
    });
    await account.createLaunchTemplateVersion(web.launchTemplateId, {
      sourceVersion: 1,
      imageId: imageReady(2).imageId,
      versionDescription: launchTemplateVersionDescription(imageReady(2)),
      clientToken: 'duplicate',
    });
    account.createLaunchTemplateVersion = async () => {
      throw Object.assign(new Error('token reused with other parameters'), {
        name: 'IdempotentParameterMismatch',
      });
    };
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.equal(result.templates[0]?.outcome, 'updated');
    assert.equal(result.templates[0]?.versionNumber, 4);
    assert.equal(web.defaultVersionNumber, 4);
    assert.equal(account.defaultImage('web'), imageReady(2).imageId);
  });

  it('fails with EC2 error when the token is refused and no version of the release exists', async () => {
    // prepare
    const { deps, account } = setup({ instanceRefresh: false });
    const web = account.addTemplate('web', 'web-base');
    const refused = Object.assign(new Error('token reused with other parameters'), {
      name: 'IdempotentParameterMismatch',
    });
    account.createLaunchTemplateVersion = async () => {
      throw refused;
    };
    // act + assess
    await assert.rejects(applyImageReady(deps, imageReady(2)), refused);
    assert.equal(web.defaultVersionNumber, 1);
  });

  it('fails with any other error EC2 gives on the create, leaving the default alone', async () => {
    // prepare: the release's version exists (as if made), yet EC2 answers something else
    const { deps, account } = setup({ instanceRefresh: false });
    const web = account.addTemplate('web', 'web-base');
    await account.createLaunchTemplateVersion(web.launchTemplateId, {
      sourceVersion: 1,
      imageId: imageReady(2).imageId,
      versionDescription: launchTemplateVersionDescription(imageReady(2)),
      clientToken: 'elsewhere',
    });
    await account.setDefaultVersion(web.launchTemplateId, 1);
    account.createLaunchTemplateVersion = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'RequestLimitExceeded' });
    };
    // act + assess
    await assert.rejects(applyImageReady(deps, imageReady(2)), /Rate exceeded/);
    assert.equal(web.defaultVersionNumber, 1);
  });

  it('reports skipped-older, at the winner, when a higher delivery sets its version right after ours', async () => {
    // prepare: as our set-default lands, a delivery of 9 creates and sets its version
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    const group = account.addGroup('web-asg', web);
    const setDefault = account.setDefaultVersion.bind(account);
    let raced = false;
    account.setDefaultVersion = async (id, version) => {
      await setDefault(id, version);
      if (raced) return;
      raced = true;
      await setDefault(id, (await stemcellVersion(account, id, 9)).versionNumber);
    };
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual(
      result.templates.map((t) => [t.outcome, t.versionNumber, t.instanceRefresh]),
      [['skipped-older', 3, 'not-requested']],
    );
    assert.equal(account.defaultImage('web'), imageReady(9).imageId);
    assert.equal(group.refreshes, 0, 'the winner refreshes, not us');
    assert.deepEqual(deps.logger.of('a higher sequence holds the launch template'), {
      launchTemplateId: web.launchTemplateId,
      sequence: 2,
      versionNumber: 3,
    });
  });

  it('puts the highest version back when a lower delivery sets its version after ours', async () => {
    // prepare: a delivery of 1 that read before our write sets its version (made earlier) after ours
    const { deps, account } = setup({ instanceRefresh: false });
    const web = account.addTemplate('web', 'web-base');
    const lower = await stemcellVersion(account, web.launchTemplateId, 1);
    const setDefault = account.setDefaultVersion.bind(account);
    const sets: number[] = [];
    account.setDefaultVersion = async (id, version) => {
      sets.push(version);
      await setDefault(id, version);
      if (sets.length === 1) await setDefault(id, lower.versionNumber);
    };
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual(sets, [3, 3]);
    assert.equal(result.templates[0]?.outcome, 'updated');
    assert.equal(web.defaultVersionNumber, 3);
    assert.equal(account.defaultImage('web'), imageReady(2).imageId);
  });
});

describe('Function: settleDefault()', () => {
  it("keeps an operator's own version as default, even over a higher stemcell version", async () => {
    // prepare
    const { account } = setup();
    const web = account.addTemplate('web', 'web-base');
    await stemcellVersion(account, web.launchTemplateId, 4);
    // act
    const settled = await settleDefault(account, web.launchTemplateId, 'web-base');
    // assess
    assert.equal(settled, 1);
    assert.equal(web.defaultVersionNumber, 1);
  });

  it('fails naming the template once it is no longer tagged for the stream', async () => {
    const { account } = setup();
    const web = account.addTemplate('web', 'web-base');
    web.tags = { [TAG.stream]: 'db-base' };
    await assert.rejects(
      settleDefault(account, web.launchTemplateId, 'web-base'),
      new RegExp(`launch template ${web.launchTemplateId} is no longer tagged for web-base`),
    );
  });

  it('gives up after 8 re-reads while something keeps setting a lower version', async () => {
    // prepare: every set-default is undone by a lower one
    const { account } = setup();
    const web = account.addTemplate('web', 'web-base');
    const lower = await stemcellVersion(account, web.launchTemplateId, 1);
    await account.setDefaultVersion(web.launchTemplateId, lower.versionNumber);
    await stemcellVersion(account, web.launchTemplateId, 2);
    let sets = 0;
    account.setDefaultVersion = async () => {
      sets++;
    };
    // act + assess
    await assert.rejects(
      settleDefault(account, web.launchTemplateId, 'web-base'),
      new RegExp(`launch template ${web.launchTemplateId}: the default version kept changing for 8 re-reads`),
    );
    assert.equal(sets, 8);
  });
});

describe('Function: applyImageReady() instance refresh', () => {
  /** Auto Scaling answers each group's refresh status at report time. */
  function withStatuses(account: MemberAccount, statuses: Record<string, InstanceRefreshStatus | undefined>) {
    const seen: string[] = [];
    account.describeInstanceRefresh = async (group, instanceRefreshId) => {
      seen.push(`${group} ${instanceRefreshId}`);
      return statuses[group];
    };
    return seen;
  }

  it('reports the worst of the groups it refreshed, and names them', async () => {
    // prepare: three groups of one template; the second's refresh already failed by the describe
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    account.addGroup('a-asg', web);
    account.addGroup('b-asg', web);
    account.addGroup('c-asg', web);
    const seen = withStatuses(account, { 'a-asg': 'Successful', 'b-asg': 'Failed', 'c-asg': 'InProgress' });
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual(seen, ['a-asg refresh-1', 'b-asg refresh-1', 'c-asg refresh-1']);
    assert.deepEqual(result.templates[0]?.refreshedGroups, ['a-asg', 'b-asg', 'c-asg']);
    assert.equal(result.templates[0]?.instanceRefresh, 'failed');
  });

  it('tags each group it refreshes with the refresh, the template version and the revision', async () => {
    // prepare
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    account.addGroup('web-asg', web);
    // act
    await applyImageReady(deps, imageReady(7));
    // assess: what Auto Scaling's end event is later matched against (subscriber-refresh.ts)
    assert.equal(
      account.groups[0]?.tags[TAG.instanceRefresh],
      instanceRefreshTag({
        instanceRefreshId: 'refresh-1',
        launchTemplateId: web.launchTemplateId,
        versionNumber: 2,
        revision: 'r7',
      }),
    );
  });

  it('reports a refresh that already succeeded as succeeded, over one already running', async () => {
    // prepare
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    account.addGroup('a-asg', web).refreshing = true;
    account.addGroup('b-asg', web);
    withStatuses(account, { 'b-asg': 'Successful' });
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual(result.templates[0]?.refreshedGroups, ['b-asg']);
    assert.equal(result.templates[0]?.instanceRefresh, 'succeeded');
  });

  it('refreshes only the groups of the template that moved, among those tagged for the stream', async () => {
    // prepare: "api" is already current, so its group is not refreshed; a group of web tagged for another
    // stream is not stemcell's to refresh for web-base
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    const api = account.addTemplate('api', 'web-base', imageReady(2).imageId, 'by hand');
    const webGroup = account.addGroup('web-asg', web);
    const apiGroup = account.addGroup('api-asg', api);
    const foreign = account.addGroup('foreign-asg', web);
    foreign.tags[TAG.stream] = 'db-base';
    // act
    const result = await applyImageReady(deps, imageReady(2));
    // assess
    assert.deepEqual([webGroup.refreshes, apiGroup.refreshes, foreign.refreshes], [1, 0, 0]);
    assert.deepEqual(
      result.templates.map((t) => [t.launchTemplateName, t.outcome, t.instanceRefresh, t.refreshedGroups]),
      [
        ['web', 'updated', 'started', ['web-asg']],
        ['api', 'already-current', 'not-requested', []],
      ],
    );
  });
});

describe('Function: refreshOutcome()', () => {
  it("maps each of Auto Scaling's refresh statuses to what the report says", () => {
    const statuses: Array<[InstanceRefreshStatus | undefined, string]> = [
      ['Pending', 'started'],
      ['InProgress', 'started'],
      ['Baking', 'started'],
      ['Successful', 'succeeded'],
      ['Failed', 'failed'],
      ['RollbackFailed', 'failed'],
      ['Cancelling', 'cancelled'],
      ['Cancelled', 'cancelled'],
      ['RollbackInProgress', 'rolled-back'],
      ['RollbackSuccessful', 'rolled-back'],
      [undefined, 'started'],
    ];
    assert.deepEqual(
      statuses.map(([status]) => [status, refreshOutcome(status)]),
      statuses,
    );
  });
});

describe('Function: subscriberSettingsFromConfig()', () => {
  it('gives a stream without an SSM parameter none, and its refresh setting as configured', () => {
    // prepare
    const config = testConfig({
      streams: {
        'web-base': { regions: [REGION], subscribers: { instanceRefresh: false } },
        'db-base': { regions: [REGION] },
      },
    });
    // act
    const settings = subscriberSettingsFromConfig(config);
    // assess
    assert.deepEqual(settings('web-base'), { instanceRefresh: false });
    assert.deepEqual(settings('db-base'), { instanceRefresh: true });
    assert.deepEqual(settings('not-configured'), { instanceRefresh: false });
  });
});
