// The subscriber's launch check before each move: asked as the member account, with what the template launches
// (its default version's instance type, through its Auto Scaling group or not), the announced key and the
// publisher; a refusal keeps the template where it is, writes no parameter, starts no refresh, and goes back
// to the centre with its check and reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyImageReady } from '#core/members/subscriber.ts';
import {
  FakeClock,
  FakeMembers,
  FakePublisher,
  imageReadyDetail,
  RecordingLogger,
} from '#test/support/core-fakes.ts';
import { FakeLaunchModel } from '#test/support/launch-fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';
const CENTRAL = 'arn:aws:events:eu-west-1:111111111111:event-bus/stemcell';

function setup() {
  const members = new FakeMembers();
  const launch = new FakeLaunchModel();
  const logger = new RecordingLogger();
  const deps = {
    accountId: ACCOUNT,
    members,
    launch,
    centralBus: CENTRAL,
    events: new FakePublisher(),
    settings: () => ({ instanceRefresh: true, ssmParameter: '/stemcell/{stream}/{region}/image-id' }),
    clock: new FakeClock(),
    logger,
  };
  return {
    deps,
    account: members.forAccount(ACCOUNT, REGION),
    view: launch.forAccount(ACCOUNT, REGION),
    logger,
  };
}

const reports = (deps: ReturnType<typeof setup>['deps']) =>
  deps.events.ofType('Launch Template Updated').map((e) => e.detail as Record<string, unknown>);

describe('Function: applyImageReady() and the launch check', () => {
  it('keeps a template the account cannot launch: no version, no parameter, no refresh; reports the refusal', async () => {
    // prepare
    const { deps, account, view } = setup();
    const template = account.addTemplate('web', 'web-base');
    const group = account.addGroup('web-asg', template);
    view.hidden = true;
    const image = imageReadyDetail(2);
    // act
    const result = await applyImageReady(deps, image);
    // assess
    assert.equal(account.defaultImage('web'), 'ami-00000000000000000');
    assert.equal(template.versions.length, 1);
    assert.equal(account.parameters.size, 0);
    assert.equal(group.refreshes, 0);
    const reason = `image ${image.imageId} is not visible to account ${ACCOUNT} in ${REGION} (DescribeImages): not shared with it, deregistered, or never in this region`;
    assert.deepEqual(
      result.templates.map((t) => [t.outcome, t.versionNumber, t.instanceRefresh, t.refusal]),
      [['refused', 1, 'not-requested', { check: 'image', reason }]],
    );
    assert.equal(result.ssmParameter, undefined);
    const [report] = reports(deps);
    assert.equal(report?.outcome, 'refused');
    assert.deepEqual(report?.refusal, { check: 'image', reason });
    assert.equal(report?.versionNumber, 1);
    assert.equal(report?.ssmParameter, undefined);
  });

  it("asks as the account, with the default version's instance type, as the group that launches it", async () => {
    // prepare
    const { deps, account, view } = setup();
    const web = account.addTemplate('web', 'web-base');
    web.versions.push({ versionNumber: 2, imageId: 'ami-00000000000000000', instanceType: 'm7i.large' });
    web.latestVersionNumber = 2;
    web.defaultVersionNumber = 2;
    account.addGroup('web-asg', web);
    const solo = account.addTemplate('solo', 'web-base');
    const image = imageReadyDetail(2);
    view.image = { kmsKeyId: undefined }; // EC2 shows no key: the announced one is asked about
    // act
    await applyImageReady(deps, image);
    // assess
    const asg = `arn:aws:iam::${ACCOUNT}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    assert.deepEqual(view.asked, [
      `describeImage ${image.imageId}`,
      `describeKey ${image.kmsKeyId}`,
      `grantedOperations ${image.kmsKeyId} ${asg}`,
      'allowedImages',
      'describeInstanceType m7i.large',
      `dryRun ${image.imageId} m7i.large auto-scaling`,
      // the template no group launches: the account itself, no grant asked, the default type of the image
      `describeImage ${image.imageId}`,
      `describeKey ${image.kmsKeyId}`,
      'allowedImages',
      `dryRun ${image.imageId} t3.micro account`,
    ]);
    assert.equal(account.defaultImage('web'), image.imageId);
    assert.equal(account.defaultImage('solo'), image.imageId);
    assert.ok(solo);
  });

  it('names the publisher when Allowed AMIs hides the image: the central bus is its account', async () => {
    // prepare
    const { deps, account, view } = setup();
    account.addTemplate('web', 'web-base');
    view.hidden = true;
    view.allowed = { state: 'enabled', criteria: [{ imageProviders: ['amazon'] }] };
    // act
    const result = await applyImageReady(deps, imageReadyDetail(2));
    // assess
    assert.equal(result.templates[0]?.refusal?.check, 'allowed-images');
    assert.match(result.templates[0]?.refusal?.reason ?? '', /admits no image of 111111111111/);
  });

  it('moves what the account can launch and keeps the rest; the parameter follows the moved template', async () => {
    // prepare
    const { deps, account, view, logger } = setup();
    account.addTemplate('web', 'web-base');
    const arm = account.addTemplate('arm', 'web-base');
    const v1 = arm.versions[0];
    if (v1) v1.instanceType = 't4g.micro';
    const image = imageReadyDetail(2);
    // act
    const result = await applyImageReady(deps, image);
    // assess
    assert.deepEqual(
      result.templates.map((t) => [t.launchTemplateName, t.outcome, t.refusal?.check]),
      [
        ['web', 'updated', undefined],
        ['arm', 'refused', 'instance-type'],
      ],
    );
    assert.equal(account.defaultImage('web'), image.imageId);
    assert.equal(account.defaultImage('arm'), 'ami-00000000000000000');
    assert.equal(account.parameters.get('/stemcell/web-base/eu-west-1/image-id'), image.imageId);
    assert.deepEqual(
      reports(deps).map((r) => [r.launchTemplateName, r.outcome]),
      [
        ['web', 'updated'],
        ['arm', 'refused'],
      ],
    );
    assert.ok(
      logger.lines.some(
        (l) => l.level === 'warn' && l.message === 'launch check refused: the launch template stays',
      ),
      'a refusal is logged',
    );
    assert.equal(view.asked.filter((q) => q.startsWith('dryRun')).length, 1, 'the misfit is not dry-run');
  });

  it('decides older and repeated events before it checks: only a move is checked', async () => {
    // prepare
    const { deps, account, view } = setup();
    account.addTemplate('web', 'web-base');
    await applyImageReady(deps, imageReadyDetail(3));
    const asked = view.asked.length;
    view.hidden = true;
    // act
    const older = await applyImageReady(deps, imageReadyDetail(2));
    const repeat = await applyImageReady(deps, imageReadyDetail(3));
    // assess
    assert.equal(older.templates[0]?.outcome, 'skipped-older');
    assert.equal(repeat.templates[0]?.outcome, 'already-current');
    assert.equal(view.asked.length, asked, 'nothing asked for a template that does not move');
  });

  it('fails the record, moving nothing, when a question cannot be answered now (throttled): SQS retries it', async () => {
    // prepare
    const { deps, account, view } = setup();
    account.addTemplate('web', 'web-base');
    view.describeImage = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'RequestLimitExceeded' });
    };
    // act + assess
    await assert.rejects(applyImageReady(deps, imageReadyDetail(2)), { name: 'RequestLimitExceeded' });
    assert.equal(account.defaultImage('web'), 'ami-00000000000000000');
    assert.equal(reports(deps).length, 0);
  });
});
