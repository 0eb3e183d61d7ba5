import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SubscriberSettings, subscriberSettingsFromConfig } from '#core/deps.ts';
import { applyImageReady } from '#core/members/subscriber.ts';
import { launchTemplateVersionDescription } from '#core/model/naming.ts';
import { type ImageReady, LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import {
  FakeClock,
  FakeMembers,
  FakePublisher,
  RecordingLogger,
  SHA,
  testConfig,
} from '#test/support/core-fakes.ts';

const ACCOUNT = '200000000001';
const CENTRAL = 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell';

function imageReady(sequence: number, imageId = `ami-${String(sequence).padStart(17, '0')}`): ImageReady {
  return {
    version: 1,
    stream: 'web-base',
    revision: `r${sequence}`,
    sequence,
    releaseId: `web-base#${String(sequence).padStart(8, '0')}`,
    region: 'eu-west-1',
    imageId,
    imageName: `stemcell/web-base/r${sequence}`,
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    encrypted: true,
    kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k',
    snapshotId: 'snap-1',
    source: { bucket: 'b', key: `streams/web-base/r${sequence}.tar`, etag: 'e', sha256: SHA },
    createdAt: '2026-11-20T10:00:00.000Z',
  };
}

function setup(
  settings: SubscriberSettings = {
    instanceRefresh: true,
    ssmParameter: '/stemcell/{stream}/{region}/image-id',
  },
) {
  const members = new FakeMembers();
  const deps = {
    accountId: ACCOUNT,
    members,
    centralBus: CENTRAL,
    events: new FakePublisher(),
    settings: () => settings,
    clock: new FakeClock(),
    logger: new RecordingLogger(),
  };
  const account = members.forAccount(ACCOUNT, 'eu-west-1');
  return { deps, account };
}

describe('Function: applyImageReady()', () => {
  it('creates a default version with the new image, writes the parameter, refreshes the group, reports back', async () => {
    // prepare
    const { deps, account } = setup();
    const template = account.addTemplate('web', 'web-base');
    account.addTemplate('db', 'db-base');
    account.addGroup('web-asg', template);
    // act
    const result = await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(account.defaultImage('web'), imageReady(1).imageId);
    assert.equal(account.defaultImage('db'), 'ami-00000000000000000', 'other streams untouched');
    assert.equal(
      template.versions.at(-1)?.versionDescription,
      launchTemplateVersionDescription(imageReady(1)),
    );
    assert.equal(account.parameters.get('/stemcell/web-base/eu-west-1/image-id'), imageReady(1).imageId);
    assert.equal(account.groups[0]?.refreshes, 1);
    assert.deepEqual(
      result.templates.map((t) => [t.launchTemplateName, t.outcome, t.versionNumber, t.instanceRefresh]),
      [['web', 'updated', 2, 'started']],
    );
    const reports = deps.events.ofType('Launch Template Updated');
    assert.equal(reports.length, 1);
    assert.equal(reports[0]?.eventBusName, CENTRAL);
    const detail = LaunchTemplateUpdatedDetail.parse(reports[0]?.detail);
    assert.equal(detail.accountId, ACCOUNT);
    assert.equal(detail.ssmParameter, '/stemcell/web-base/eu-west-1/image-id');
  });

  it('a repeated event creates no second version and starts no second refresh', async () => {
    // prepare
    const { deps, account } = setup();
    const template = account.addTemplate('web', 'web-base');
    const group = account.addGroup('web-asg', template);
    await applyImageReady(deps, imageReady(1));
    group.refreshing = false; // the first refresh has finished
    // act
    const again = await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(template.versions.length, 2);
    assert.equal(template.defaultVersionNumber, 2);
    assert.equal(group.refreshes, 1);
    assert.equal(again.templates[0]?.outcome, 'already-current');
  });

  it('never moves a template to a lower sequence when events arrive out of order', async () => {
    // prepare
    const { deps, account } = setup();
    const template = account.addTemplate('web', 'web-base');
    await applyImageReady(deps, imageReady(3));
    // act
    const late = await applyImageReady(deps, imageReady(2));
    // assess
    assert.equal(account.defaultImage('web'), imageReady(3).imageId);
    assert.equal(template.versions.length, 2);
    assert.equal(late.templates[0]?.outcome, 'skipped-older');
    assert.equal(late.ssmParameter, undefined);
    assert.equal(account.parameters.get('/stemcell/web-base/eu-west-1/image-id'), imageReady(3).imageId);
  });

  it('a retry after a crash between creating the version and making it default reuses that version', async () => {
    // prepare
    const { deps, account } = setup();
    const template = account.addTemplate('web', 'web-base');
    const setDefault = account.setDefaultVersion.bind(account);
    let failures = 1;
    account.setDefaultVersion = async (id, v) => {
      if (failures-- > 0) throw new Error('throttled');
      return setDefault(id, v);
    };
    await assert.rejects(applyImageReady(deps, imageReady(1)), /throttled/);
    // act
    await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(template.versions.length, 2);
    assert.equal(template.defaultVersionNumber, 2);
  });

  it('does not start a refresh while one is running, nor on groups not tagged for refresh', async () => {
    // prepare
    const { deps, account } = setup();
    const web = account.addTemplate('web', 'web-base');
    const running = account.addGroup('web-asg', web);
    running.refreshing = true;
    const api = account.addTemplate('api', 'web-base');
    const untagged = account.addGroup('api-asg', api, false);
    // act
    const result = await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(running.refreshes, 0);
    assert.equal(untagged.refreshes, 0);
    assert.deepEqual(
      result.templates.map((t) => [t.launchTemplateName, t.instanceRefresh]),
      [
        ['web', 'already-running'],
        ['api', 'not-requested'],
      ],
    );
  });

  it('moves a template stemcell has never managed, and honours settings without SSM or refresh', async () => {
    // prepare
    const { deps, account } = setup({ instanceRefresh: false });
    const template = account.addTemplate('web', 'web-base', 'ami-11111111111111111', 'hand-made v1');
    const group = account.addGroup('web-asg', template);
    // act
    await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(account.defaultImage('web'), imageReady(1).imageId);
    assert.equal(account.parameters.size, 0);
    assert.equal(group.refreshes, 0);
  });

  it('reads per-stream settings from the config', () => {
    const settings = subscriberSettingsFromConfig(testConfig());
    assert.deepEqual(settings('web-base'), {
      instanceRefresh: true,
      ssmParameter: '/stemcell/{stream}/{region}/image-id',
    });
    assert.deepEqual(settings('unknown'), { instanceRefresh: false });
  });
});
