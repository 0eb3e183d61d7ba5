// The launch check the subscriber runs before every move, over a scripted view of what the account sees: each
// of its five checks refuses on its own, in order, naming why; the questions it asks follow what is launched and
// by whom; the Allowed AMIs criteria are judged as EC2's user guide says.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allowedImagesVerdict, checkLaunchable } from '#core/images/launchable.ts';
import type { AllowedImagesSettings } from '#ports';
import { FAKE_KEY_ARN, FakeLaunchView, PUBLISHER } from '#test/support/launch-fakes.ts';

const MEMBER = '222222222222';
const IMAGE = 'ami-0123456789abcdef0';
const NOW = new Date('2026-11-25T10:00:00.000Z');
const ASG_ROLE = `arn:aws:iam::${MEMBER}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;

function view(): FakeLaunchView {
  return new FakeLaunchView(MEMBER, 'eu-west-1');
}

const request = { imageId: IMAGE, instanceType: 't3.micro', via: 'auto-scaling' as const };
const enabled = (criteria: AllowedImagesSettings['criteria']): AllowedImagesSettings => ({
  state: 'enabled',
  criteria,
});

describe('Function: checkLaunchable()', () => {
  it('asks, as the account, for the image, its key and grant, Allowed AMIs, the type, then the dry run', async () => {
    // prepare
    const v = view();
    // act
    const verdict = await checkLaunchable(v, request, NOW);
    // assess
    assert.deepEqual(verdict, { launchable: true, notes: [] });
    assert.deepEqual(v.asked, [
      `describeImage ${IMAGE}`,
      `describeKey ${FAKE_KEY_ARN}`,
      `grantedOperations ${FAKE_KEY_ARN} ${ASG_ROLE}`,
      'allowedImages',
      'describeInstanceType t3.micro',
      `dryRun ${IMAGE} t3.micro auto-scaling`,
    ]);
  });

  it('asks no grant when the account launches itself, and nothing of a key for an unencrypted image', async () => {
    // prepare
    const direct = view();
    const plain = view();
    plain.image = { encrypted: false };
    // act
    const a = await checkLaunchable(direct, { ...request, via: 'account' }, NOW);
    const b = await checkLaunchable(plain, request, NOW);
    // assess
    assert.equal(a.launchable, true);
    assert.equal(b.launchable, true);
    assert.ok(!direct.asked.some((q) => q.startsWith('grantedOperations')));
    assert.ok(direct.asked.includes(`describeKey ${FAKE_KEY_ARN}`));
    assert.ok(!plain.asked.some((q) => q.startsWith('describeKey') || q.startsWith('grantedOperations')));
  });

  it('refuses an image the account cannot see, or that is not available, and asks nothing more', async () => {
    // prepare
    const hidden = view();
    hidden.hidden = true;
    const pending = view();
    pending.image = { state: 'pending' };
    // act
    const a = await checkLaunchable(hidden, request, NOW);
    const b = await checkLaunchable(pending, request, NOW);
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'image',
      reason: `image ${IMAGE} is not visible to account ${MEMBER} in eu-west-1 (DescribeImages): not shared with it, deregistered, or never in this region`,
    });
    assert.deepEqual(hidden.asked, [`describeImage ${IMAGE}`]);
    assert.deepEqual(b, {
      launchable: false,
      check: 'image',
      reason: `image ${IMAGE} is pending in eu-west-1`,
    });
  });

  it('names Allowed AMIs when it hides the image of the publisher, and only then', async () => {
    // prepare
    const excluded = view();
    excluded.hidden = true;
    excluded.allowed = enabled([{ imageProviders: ['amazon'] }]);
    const admitted = view();
    admitted.hidden = true;
    admitted.allowed = enabled([{ imageProviders: [PUBLISHER] }]);
    // act
    const a = await checkLaunchable(excluded, { ...request, publisherAccountId: PUBLISHER }, NOW);
    const b = await checkLaunchable(admitted, { ...request, publisherAccountId: PUBLISHER }, NOW);
    const c = await checkLaunchable(excluded, request, NOW);
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'allowed-images',
      reason: `image ${IMAGE} is hidden: Allowed AMIs is enabled in ${MEMBER} (eu-west-1) and admits no image of ${PUBLISHER}: its criteria allow image providers amazon`,
    });
    assert.equal(b.launchable === false && b.check, 'image');
    assert.equal(c.launchable === false && c.check, 'image', 'without the publisher nothing to judge by');
  });

  it('refuses a key the account may not describe, a key not enabled, and a missing grant', async () => {
    // prepare
    const denied = view();
    denied.keyDenied = 'AccessDeniedException: not authorized';
    const disabled = view();
    disabled.keyState = 'PendingDeletion';
    const noGrant = view();
    noGrant.grants = ['Decrypt', 'DescribeKey'];
    const grantsDenied = view();
    grantsDenied.grants = { denied: 'AccessDeniedException: kms:ListGrants' };
    const unnamed = view();
    unnamed.image = { kmsKeyId: undefined };
    // act
    const [a, b, c, d, e] = await Promise.all(
      [denied, disabled, noGrant, grantsDenied, unnamed].map((v) => checkLaunchable(v, request, NOW)),
    );
    const announced = await checkLaunchable(
      unnamed,
      { ...request, kmsKeyId: 'arn:aws:kms:eu-west-1:1:key/k' },
      NOW,
    );
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'key',
      reason: `DescribeKey ${FAKE_KEY_ARN} as ${MEMBER}: AccessDeniedException: not authorized`,
    });
    assert.deepEqual(b, {
      launchable: false,
      check: 'key',
      reason: `key ${FAKE_KEY_ARN} is PendingDeletion`,
    });
    assert.deepEqual(c, {
      launchable: false,
      check: 'key',
      reason: `key ${FAKE_KEY_ARN}: the Auto Scaling role of ${MEMBER} has no grant for ReEncryptFrom, GenerateDataKeyWithoutPlaintext, CreateGrant (infra/member.yml's AutoScalingKeyGrant in eu-west-1)`,
    });
    assert.deepEqual(d, {
      launchable: false,
      check: 'key',
      reason: `ListGrants on ${FAKE_KEY_ARN} as ${MEMBER}: AccessDeniedException: kms:ListGrants`,
    });
    assert.deepEqual(e, {
      launchable: false,
      check: 'key',
      reason: `image ${IMAGE} is encrypted, and neither DescribeImages nor the announcement names its key`,
    });
    assert.equal(announced.launchable, true);
    assert.ok(unnamed.asked.includes('describeKey arn:aws:kms:eu-west-1:1:key/k'));
  });

  it("names the grantee in the key's partition", async () => {
    // prepare
    const v = view();
    v.image = { kmsKeyId: 'arn:aws-cn:kms:cn-north-1:111111111111:key/k' };
    // act
    await checkLaunchable(v, request, NOW);
    // assess
    assert.ok(
      v.asked.includes(
        `grantedOperations arn:aws-cn:kms:cn-north-1:111111111111:key/k ${ASG_ROLE.replace('arn:aws:', 'arn:aws-cn:')}`,
      ),
    );
  });

  it('refuses where Allowed AMIs is enabled and excludes the publisher; passes its own images and audit mode', async () => {
    // prepare
    const excluded = view();
    excluded.allowed = {
      ...enabled([{ imageProviders: ['amazon', '999999999999'] }]),
      managedBy: 'declarative-policy',
    };
    const own = view();
    own.allowed = enabled([{ imageProviders: ['none'] }]);
    own.image = { ownerId: MEMBER };
    const audit = view();
    audit.allowed = { state: 'audit-mode', criteria: [{ imageProviders: ['amazon'] }] };
    // act
    const a = await checkLaunchable(excluded, request, NOW);
    const b = await checkLaunchable(own, request, NOW);
    const c = await checkLaunchable(audit, request, NOW);
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'allowed-images',
      reason: `Allowed AMIs is enabled in ${MEMBER} (eu-west-1, by a declarative policy) and admits no image of ${PUBLISHER}: its criteria allow image providers amazon, 999999999999`,
    });
    assert.equal(b.launchable, true);
    assert.ok(!own.asked.includes('allowedImages'), "the setting never restricts the account's own images");
    assert.deepEqual(c, {
      launchable: true,
      notes: [
        `Allowed AMIs (audit mode) would not admit ${IMAGE}: its criteria allow image providers amazon`,
      ],
    });
  });

  it('refuses an instance type that does not run the image, and lets the dry run judge a type not described', async () => {
    // prepare
    const arm = view();
    const uefi = view();
    uefi.image = { bootMode: 'uefi' };
    const unknown = view();
    unknown.types['zz9.huge'] = undefined;
    // act
    const a = await checkLaunchable(arm, { ...request, instanceType: 't4g.micro' }, NOW);
    const b = await checkLaunchable(uefi, { ...request, instanceType: 't2.micro' }, NOW);
    const c = await checkLaunchable(unknown, { ...request, instanceType: 'zz9.huge' }, NOW);
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'instance-type',
      reason: `instance type t4g.micro is arm64, the image is x86_64 (${IMAGE})`,
    });
    assert.ok(!arm.asked.some((q) => q.startsWith('dryRun')));
    assert.deepEqual(b, {
      launchable: false,
      check: 'instance-type',
      reason: `instance type t2.micro boots legacy-bios, the image needs uefi (${IMAGE})`,
    });
    assert.deepEqual(c, {
      launchable: true,
      notes: ['instance type zz9.huge is not described in eu-west-1: the dry run judges it'],
    });
    assert.ok(unknown.asked.includes(`dryRun ${IMAGE} zz9.huge auto-scaling`));
  });

  it("refuses what EC2's dry run refuses, with EC2's words; without a template type it dry-runs a small one", async () => {
    // prepare
    const refusing = view();
    refusing.dryRunAnswer = {
      allowed: false,
      code: 'UnauthorizedOperation',
      message: 'explicit deny in an SCP',
    };
    const noted = view();
    noted.dryRunAnswer = { allowed: true, note: 'no default VPC' };
    const arm = view();
    arm.image = { architecture: 'arm64' };
    // act
    const a = await checkLaunchable(refusing, request, NOW);
    const b = await checkLaunchable(noted, request, NOW);
    const c = await checkLaunchable(arm, { imageId: IMAGE, via: 'account' }, NOW);
    // assess
    assert.deepEqual(a, {
      launchable: false,
      check: 'dry-run',
      reason: `RunInstances (dry run) of ${IMAGE} on t3.micro as ${MEMBER} in eu-west-1: UnauthorizedOperation: explicit deny in an SCP`,
    });
    assert.deepEqual(b, { launchable: true, notes: ['no default VPC'] });
    assert.equal(c.launchable, true);
    assert.ok(arm.asked.includes(`dryRun ${IMAGE} t4g.micro account`));
    assert.ok(!arm.asked.some((q) => q.startsWith('describeInstanceType')));
  });
});

describe('Function: allowedImagesVerdict()', () => {
  const image = {
    ownerId: PUBLISHER,
    name: 'stemcell/web/2026.11.20',
    createdAt: '2026-11-20T10:00:00.000Z',
  };
  const admitted = (
    criteria: AllowedImagesSettings['criteria'],
    of: Partial<typeof image> & { deprecatedAt?: string; allowed?: boolean } = {},
  ) => allowedImagesVerdict(enabled(criteria), { ...image, ...of }, MEMBER, NOW).admitted;

  it('admits everything when disabled or in audit mode, and nothing of others when enabled without criteria', () => {
    assert.equal(
      allowedImagesVerdict({ state: 'disabled', criteria: [] }, image, MEMBER, NOW).admitted,
      true,
    );
    assert.equal(
      allowedImagesVerdict({ state: 'audit-mode', criteria: [] }, image, MEMBER, NOW).admitted,
      true,
    );
    assert.equal(admitted([]), false);
  });

  it('needs every field of one criterion to match, any criterion will do', () => {
    assert.equal(admitted([{ imageProviders: [PUBLISHER], imageNames: ['stemcell/web/*'] }]), true);
    assert.equal(admitted([{ imageProviders: [PUBLISHER], imageNames: ['stemcell/db/*'] }]), false);
    assert.equal(
      admitted([{ imageNames: ['stemcell/db/*'] }, { imageNames: ['stemcell/w?b/2026.*'] }]),
      true,
    );
    assert.equal(admitted([{ imageProviders: ['none'] }]), false);
    assert.equal(admitted([{ imageProviders: ['amazon', 'aws-marketplace', 'aws-backup-vault'] }]), false);
    assert.equal(admitted([{ imageProviders: [PUBLISHER], marketplaceProductCodes: ['abc123'] }]), false);
  });

  it('judges age and deprecation by the days since, on the clock given', () => {
    assert.equal(admitted([{ imageProviders: [PUBLISHER], maximumDaysSinceCreated: 5 }]), true);
    assert.equal(admitted([{ imageProviders: [PUBLISHER], maximumDaysSinceCreated: 4 }]), false);
    const deprecated = { deprecatedAt: '2026-11-23T10:00:00.000Z' };
    assert.equal(admitted([{ maximumDaysSinceDeprecated: 2 }], deprecated), true);
    assert.equal(admitted([{ maximumDaysSinceDeprecated: 1 }], deprecated), false);
    assert.equal(
      admitted([{ maximumDaysSinceDeprecated: 0 }], { deprecatedAt: '2027-01-01T00:00:00.000Z' }),
      true,
    );
  });

  it("lets EC2's own verdict decide, and leaves undecided what only EC2 could judge", () => {
    assert.equal(admitted([{ imageProviders: [PUBLISHER], opaque: ['image watermarks'] }]), undefined);
    assert.equal(
      admitted([{ imageProviders: [PUBLISHER], opaque: ['image watermarks'] }], { allowed: false }),
      false,
    );
    assert.equal(admitted([{ imageProviders: ['amazon'] }], { allowed: true }), true);
    assert.equal(admitted([{ imageNames: ['x*'] }], { name: undefined } as never), undefined);
  });
});
