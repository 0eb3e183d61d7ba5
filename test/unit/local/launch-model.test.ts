// The local launch model's own rules, each on its own: which images an account sees (owner, launch permission
// by account, organization or OU path, Allowed AMIs), what it may ask of the key (as the key service decides),
// and what the local dry run refuses. EC2, KMS, Organizations and the member state are small stand-ins here;
// test/unit/contract-local.test.ts runs the model over the real local adapters (real key policy and grants), and
// test/integration/flow/launchable.test.ts over the whole local flow.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LocalImages } from '#local/images.ts';
import type { LocalKeyService } from '#local/key-service.ts';
import { LocalLaunchModel } from '#local/launch-model.ts';
import type { LocalMemberAccounts } from '#local/member-accounts.ts';
import type { LocalOrganizationDirectory } from '#local/organization.ts';
import type { AllowedImagesSettings, ImageInfo } from '#ports';

const OWNER = '111111111111';
const MEMBER = '200000000001';
const IMAGE = 'ami-00000000000000001';
const ORG_ARN = 'arn:aws:organizations::111111111111:organization/o-abcdef1234';
const ouArn = (ou: string) =>
  ou.startsWith('r-')
    ? `arn:aws:organizations::111111111111:root/o-abcdef1234/${ou}`
    : `arn:aws:organizations::111111111111:ou/o-abcdef1234/${ou}`;

function image(overrides: Partial<ImageInfo> = {}): ImageInfo {
  return {
    imageId: IMAGE,
    name: 'stemcell/web/r1',
    state: 'available',
    snapshotId: 'snap-1',
    architecture: 'x86_64',
    bootMode: 'uefi',
    encrypted: true,
    kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k1',
    tags: {},
    createdAt: '2026-11-20T10:00:00.000Z',
    sharedWith: { organizationArns: [], ouArns: [], accountIds: [] },
    ...overrides,
  };
}

function setup(opts: { image?: ImageInfo; parentOf?: Record<string, string> } = {}) {
  const state = {
    denial: undefined as string | undefined,
    grants: [] as { granteePrincipal: string; operations: string[] }[],
    allowed: { state: 'disabled', criteria: [] } as AllowedImagesSettings,
    scp: undefined as string | undefined,
  };
  const asked: unknown[] = [];
  const images = {
    get: async (id: string) => {
      if (id === 'ami-throws') throw new Error('InvalidAMIID.Malformed');
      return id === opts.image?.imageId ? opts.image : undefined;
    },
    ownerOf: () => OWNER,
  } as unknown as LocalImages;
  const keys = {
    explainDenial: (keyId: string, request: unknown) => {
      asked.push({ keyId, request });
      if (keyId.endsWith('/missing')) {
        const err = new Error(`Key '${keyId}' does not exist`);
        err.name = 'NotFoundException';
        throw err;
      }
      return state.denial;
    },
    describeKey: async (keyId: string) => ({ keyId: 'k1', arn: keyId, accountId: OWNER, state: 'Enabled' }),
    listGrants: async (_keyId: string, grantee?: string) =>
      state.grants.filter((g) => grantee === undefined || g.granteePrincipal === grantee),
  } as unknown as LocalKeyService;
  const parents = opts.parentOf ?? {};
  const organization = {
    rootId: 'r-abcd',
    parentOf: (id: string) => parents[id],
    describe: async () => ({ id: 'o-abcdef1234', arn: ORG_ARN, managementAccountId: OWNER }),
    ouArn: async (ou: string) => ouArn(ou),
  } as unknown as LocalOrganizationDirectory;
  const members = {
    forAccount: () => ({ allowedImagesSettings: () => state.allowed, launchDenial: () => state.scp }),
  } as unknown as LocalMemberAccounts;
  const model = new LocalLaunchModel({
    region: (r) => {
      if (r !== 'eu-west-1') throw new Error(`region ${r} is not a target`);
      return { images };
    },
    keys,
    organization,
    members,
    clock: { now: () => new Date('2026-11-25T00:00:00.000Z') },
  });
  return { model, state, asked };
}

const shared = (s: Partial<ImageInfo['sharedWith']>) =>
  image({ sharedWith: { organizationArns: [], ouArns: [], accountIds: [], ...s } });

describe('Class: LocalLaunchModel', () => {
  it("shows the owner its image as EC2 would, the member's view needing a launch permission", async () => {
    // prepare
    const { model } = setup({ image: image() });
    // act
    const own = await model.forAccount(OWNER, 'eu-west-1').describeImage(IMAGE);
    const member = await model.forAccount(MEMBER, 'eu-west-1').describeImage(IMAGE);
    // assess
    assert.deepEqual(own, {
      imageId: IMAGE,
      name: 'stemcell/web/r1',
      ownerId: OWNER,
      state: 'available',
      architecture: 'x86_64',
      bootMode: 'uefi',
      encrypted: true,
      kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k1',
      createdAt: '2026-11-20T10:00:00.000Z',
    });
    assert.equal(member, undefined);
  });

  it('shows nothing in a region it does not have, for an id it cannot read, or of a deregistered image', async () => {
    const { model } = setup({ image: image({ state: 'deregistered' }) });
    assert.equal(await model.forAccount(OWNER, 'ap-south-2').describeImage(IMAGE), undefined);
    assert.equal(await model.forAccount(OWNER, 'eu-west-1').describeImage('ami-throws'), undefined);
    assert.equal(await model.forAccount(OWNER, 'eu-west-1').describeImage(IMAGE), undefined);
  });

  it('shows an image shared by id, with the organization (to its members only), or with an OU on the path', async () => {
    // prepare
    const parentOf = { [MEMBER]: 'ou-1', '200000000002': 'r-abcd' };
    const byId = setup({ image: shared({ accountIds: [MEMBER] }) });
    const byOrg = setup({ image: shared({ organizationArns: [ORG_ARN] }), parentOf });
    const outsider = setup({ image: shared({ organizationArns: [ORG_ARN], ouArns: [ouArn('ou-1')] }) });
    const ownOu = setup({ image: shared({ ouArns: [ouArn('ou-1')] }), parentOf });
    const root = setup({ image: shared({ ouArns: [ouArn('r-abcd')] }), parentOf });
    const otherOu = setup({ image: shared({ ouArns: [ouArn('ou-2')] }), parentOf });
    const sees = async (s: ReturnType<typeof setup>, account = MEMBER) =>
      (await s.model.forAccount(account, 'eu-west-1').describeImage(IMAGE)) !== undefined;
    // act + assess
    assert.equal(await sees(byId), true);
    assert.equal(await sees(byOrg), true);
    assert.equal(await sees(outsider), false, 'in no organization: its permissions do not count');
    assert.equal(await sees(ownOu), true);
    assert.equal(await sees(root), true);
    assert.equal(await sees(root, '200000000002'), true);
    assert.equal(await sees(otherOu), false);
    assert.equal(await sees(ownOu, '200000000002'), false);
  });

  it('hides an image Allowed AMIs does not admit when enabled; in audit mode it only says so', async () => {
    // prepare
    const s = setup({ image: shared({ accountIds: [MEMBER] }) });
    const view = s.model.forAccount(MEMBER, 'eu-west-1');
    // act
    s.state.allowed = { state: 'enabled', criteria: [{ imageProviders: ['amazon'] }] };
    const hidden = await view.describeImage(IMAGE);
    s.state.allowed = { state: 'audit-mode', criteria: [{ imageProviders: ['amazon'] }] };
    const audited = await view.describeImage(IMAGE);
    s.state.allowed = {
      state: 'enabled',
      criteria: [{ imageProviders: [OWNER], maximumDaysSinceCreated: 10 }],
    };
    const admitted = await view.describeImage(IMAGE);
    // assess
    assert.equal(hidden, undefined);
    assert.equal(audited?.allowed, false);
    assert.equal(admitted?.allowed, true);
    assert.deepEqual(await view.allowedImages(), s.state.allowed);
  });

  it("asks the key service, as the account's subscriber role, for DescribeKey and ListGrants", async () => {
    // prepare
    const s = setup();
    const role = `arn:aws:iam::${MEMBER}:role/stemcell-subscriber`;
    const asg = `arn:aws:iam::${MEMBER}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    s.state.grants = [
      { granteePrincipal: asg, operations: ['Decrypt', 'CreateGrant'] },
      { granteePrincipal: asg, operations: ['Decrypt', 'DescribeKey'] },
      { granteePrincipal: 'arn:aws:iam::200000000009:root', operations: ['Encrypt'] },
    ];
    const view = s.model.forAccount(MEMBER, 'eu-west-1');
    const key = 'arn:aws:kms:eu-west-1:111111111111:key/k1';
    // act
    const described = await view.describeKey(key);
    const granted = await view.grantedOperations(key, asg);
    s.state.denial = 'no key policy statement allows it';
    const denied = await view.describeKey(key);
    const listDenied = await view.grantedOperations(key, asg);
    const missing = await view.describeKey('arn:aws:kms:eu-west-1:111111111111:key/missing');
    // assess
    assert.deepEqual(described, { keyId: 'k1', arn: key, accountId: OWNER, state: 'Enabled' });
    assert.deepEqual(granted, ['CreateGrant', 'Decrypt', 'DescribeKey']);
    assert.deepEqual(s.asked.slice(0, 2), [
      { keyId: key, request: { principal: role, operation: 'DescribeKey' } },
      { keyId: key, request: { principal: role, operation: 'ListGrants' } },
    ]);
    assert.deepEqual(denied, { denied: 'AccessDeniedException: no key policy statement allows it' });
    assert.deepEqual(listDenied, { denied: 'AccessDeniedException: no key policy statement allows it' });
    assert.deepEqual(missing, {
      denied: "NotFoundException: Key 'arn:aws:kms:eu-west-1:111111111111:key/missing' does not exist",
    });
  });

  it("describes instance types from the model's table, and none it does not know", async () => {
    const view = setup().model.forAccount(MEMBER, 'eu-west-1');
    assert.deepEqual(await view.describeInstanceType('t2.micro'), {
      architectures: ['x86_64'],
      bootModes: ['legacy-bios'],
    });
    assert.equal(await view.describeInstanceType('x9.large'), undefined);
  });

  it('dry-runs as EC2 would: a denying SCP first, then the image seen and available, then the type', async () => {
    // prepare
    const s = setup({ image: shared({ accountIds: [MEMBER] }) });
    const view = s.model.forAccount(MEMBER, 'eu-west-1');
    const run = (imageId: string, instanceType: string) =>
      view.dryRun({ imageId, instanceType, via: 'auto-scaling' });
    // act
    const ok = await run(IMAGE, 't3.micro');
    const unseen = await run('ami-00000000000000404', 't3.micro');
    const misfit = await run(IMAGE, 't2.micro');
    const unknown = await run(IMAGE, 'x9.large');
    s.state.scp = 'p-deny-ec2';
    const denied = await run(IMAGE, 't3.micro');
    // assess
    assert.deepEqual(ok, { allowed: true });
    assert.deepEqual(unseen, {
      allowed: false,
      code: 'InvalidAMIID.NotFound',
      message: "The image id '[ami-00000000000000404]' does not exist",
    });
    assert.deepEqual(misfit, {
      allowed: false,
      code: 'InvalidParameterValue',
      message: 'instance type t2.micro boots legacy-bios, the image needs uefi',
    });
    assert.deepEqual(unknown, {
      allowed: false,
      code: 'InvalidParameterValue',
      message: 'instance type x9.large is unknown to the launch model',
    });
    assert.deepEqual(denied, {
      allowed: false,
      code: 'UnauthorizedOperation',
      message: `You are not authorized to perform this operation: ec2:RunInstances is denied to ${MEMBER} by an explicit deny in a service control policy (p-deny-ec2)`,
    });
  });

  it('dry-run refuses an image that is not available', async () => {
    const s = setup({ image: image({ state: 'pending' }) });
    assert.deepEqual(
      await s.model
        .forAccount(OWNER, 'eu-west-1')
        .dryRun({ imageId: IMAGE, instanceType: 't3.micro', via: 'account' }),
      {
        allowed: false,
        code: 'InvalidAMIID.Unavailable',
        message: `The image ${IMAGE} is pending`,
      },
    );
  });
});
