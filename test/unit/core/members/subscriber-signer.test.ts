// A member account that requires a signer (member.yml TrustedSignerKeyIds) moves no launch template to an image
// another key signed, or none signed: it reports the refusal (outcome refused, check signer), the release
// records that account as refused, and its templates, parameter and groups stay where they are.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyImageReady } from '#core/members/subscriber.ts';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import { type ImageReady, LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import {
  FakeClock,
  FakeMembers,
  FakePublisher,
  FakeReleaseStore,
  imageReadyDetail,
  RecordingLogger,
} from '#test/support/core-fakes.ts';
import { FakeLaunchModel } from '#test/support/launch-fakes.ts';
import { KMS_KEY_ARN, OTHER_KMS_KEY_ARN } from '#test/support/provenance-fakes.ts';

const ACCOUNT = '200000000001';
const CENTRAL = 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell';

function signedBy(signer: string | undefined, sequence = 1): ImageReady {
  const image = imageReadyDetail(sequence);
  return { ...image, source: { ...image.source, ...(signer ? { signer, signature: 'MEUCIQ==' } : {}) } };
}

function setup(trustedSigners: string[]) {
  const members = new FakeMembers();
  const deps = {
    accountId: ACCOUNT,
    members,
    launch: new FakeLaunchModel(),
    centralBus: CENTRAL,
    events: new FakePublisher(),
    settings: () => ({ instanceRefresh: true, ssmParameter: '/stemcell/{stream}/{region}/image-id' }),
    trustedSigners,
    clock: new FakeClock(),
    logger: new RecordingLogger(),
  };
  const account = members.forAccount(ACCOUNT, 'eu-west-1');
  const template = account.addTemplate('web', 'web-base');
  const group = account.addGroup('web-asg', template);
  return { deps, account, template, group };
}

describe('Subscriber: a member that requires a signer', () => {
  it("refuses another signer's image: templates do not move, the refusal is reported and the release shows it", async () => {
    const { deps, account, template, group } = setup([KMS_KEY_ARN]);
    const before = structuredClone(template.versions);
    const image = signedBy(OTHER_KMS_KEY_ARN);
    const result = await applyImageReady(deps, image);
    // Nothing moved: no version, same default, no parameter, no refresh.
    assert.deepEqual(template.versions, before);
    assert.equal(template.defaultVersionNumber, 1);
    assert.equal(account.defaultImage('web'), 'ami-00000000000000000');
    assert.equal(account.parameters.size, 0);
    assert.equal(group.refreshes, 0);
    assert.deepEqual(
      result.templates.map((t) => [t.outcome, t.refusal?.check]),
      [['refused', 'signer']],
    );
    const reports = deps.events.ofType('Launch Template Updated');
    assert.equal(reports.length, 1);
    const detail = LaunchTemplateUpdatedDetail.parse(reports[0]?.detail);
    assert.equal(detail.outcome, 'refused');
    assert.equal(detail.refusal?.check, 'signer');
    assert.match(
      detail.refusal?.reason ?? '',
      new RegExp(`signed by ${OTHER_KMS_KEY_ARN}, which this account does not trust`),
    );
    // The publisher records the report: the release shows the account as refused, with the reason.
    const releases = new FakeReleaseStore();
    const { release } = await releases.create({
      stream: image.stream,
      revision: image.revision,
      source: image.source,
      regions: ['eu-west-1'],
      uploadedAt: image.createdAt,
    });
    await recordLaunchTemplateUpdate(
      { releases, logger: new RecordingLogger() },
      { ...detail, releaseId: release.releaseId },
    );
    const account200 = (await releases.get(release.releaseId))?.accounts[`${ACCOUNT}/eu-west-1`];
    assert.equal(account200?.outcome, 'refused');
    assert.equal(account200?.refused?.[0]?.check, 'signer');
  });

  it('refuses an unsigned image too', async () => {
    const { deps, template } = setup([KMS_KEY_ARN]);
    const result = await applyImageReady(deps, signedBy(undefined));
    assert.equal(result.templates[0]?.outcome, 'refused');
    assert.match(
      result.templates[0]?.refusal?.reason ?? '',
      /is unsigned; this account accepts only images signed by/,
    );
    assert.equal(template.defaultVersionNumber, 1);
  });

  it("moves to its trusted signer's image, and an account that requires none moves to any", async () => {
    const trusting = setup([OTHER_KMS_KEY_ARN, KMS_KEY_ARN]);
    assert.equal(
      (await applyImageReady(trusting.deps, signedBy(KMS_KEY_ARN))).templates[0]?.outcome,
      'updated',
    );
    assert.equal(trusting.template.defaultVersionNumber, 2);
    const open = setup([]);
    assert.equal((await applyImageReady(open.deps, signedBy(undefined))).templates[0]?.outcome, 'updated');
  });
});
