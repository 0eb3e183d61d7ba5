// The local launch model's own rules, each on its own: region and image existence, state, launch permission
// by account, organization or OU path, instance type fit, and, for an encrypted image, the key checks made as
// the principal that launches (the Auto Scaling role or the account). The EBS, KMS and Organizations pieces
// are small recording stand-ins here; test/integration/flow/launchable.test.ts runs the model over the real
// local adapters (real key policy, grants and encrypted blocks).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LocalImages } from '#local/images.ts';
import { autoScalingRoleArn } from '#local/key-policy.ts';
import type { KeyCaller, LocalKeyService } from '#local/key-service.ts';
import { LocalLaunchModel } from '#local/launch-model.ts';
import type { LocalOrganizationDirectory } from '#local/organization.ts';
import type { LocalSnapshots } from '#local/snapshots.ts';
import type { ImageInfo, LaunchRequest } from '#ports';

const OWNER = '111111111111';
const MEMBER = '200000000001';
const ORG_ARN = 'arn:aws:organizations::111111111111:organization/o-abcdef1234';
const ouArn = (ou: string) =>
  ou.startsWith('r-')
    ? `arn:aws:organizations::111111111111:root/o-abcdef1234/${ou}`
    : `arn:aws:organizations::111111111111:ou/o-abcdef1234/${ou}`;

function image(overrides: Partial<ImageInfo> = {}): ImageInfo {
  return {
    imageId: 'ami-00000000000000001',
    name: 'stemcell/web/r1',
    state: 'available',
    snapshotId: 'snap-1',
    architecture: 'x86_64',
    bootMode: 'uefi',
    encrypted: false,
    kmsKeyId: 'arn:aws:kms:eu-west-1:111111111111:key/k1',
    tags: {},
    createdAt: '2026-11-20T10:00:00.000Z',
    sharedWith: { organizationArns: [], ouArns: [], accountIds: [] },
    ...overrides,
  };
}

function setup(opts: { image?: ImageInfo; parentOf?: Record<string, string> } = {}) {
  const images = new Map<string, ImageInfo>();
  if (opts.image) images.set(opts.image.imageId, opts.image);
  const calls = {
    denial: [] as unknown[],
    decrypt: [] as Array<{ ciphertext: string; context: Record<string, string>; caller: KeyCaller }>,
    blocks: [] as Array<{ hash: string; keys: string[] }>,
  };
  const state = {
    denial: undefined as string | undefined,
    decryptFails: undefined as string | undefined,
    manifest: {
      blocks: [null, 'h-first', null, 'h-middle', 'h-last', null] as Array<string | null>,
      dataKeys: {
        dk1: { ciphertext: Buffer.from('wrapped-1').toString('base64'), context: { v: 'snap-1' } },
      },
    } as
      | {
          blocks: Array<string | null>;
          dataKeys: Record<string, { ciphertext: string; context: Record<string, string> }>;
        }
      | undefined,
  };
  const localImages = {
    get: async (id: string) => {
      if (id === 'ami-throws') throw new Error('InvalidAMIID.Malformed');
      return images.get(id);
    },
    ownerOf: () => OWNER,
  } as unknown as LocalImages;
  const snapshots = {
    manifest: () => state.manifest,
    blocks: {
      get: async (hash: string, keys: ReadonlyMap<string, Buffer>) => {
        calls.blocks.push({ hash, keys: [...keys].map(([id, k]) => `${id}=${k.toString()}`) });
        return Buffer.alloc(0);
      },
    },
  } as unknown as LocalSnapshots;
  const keys = {
    explainDenial: (keyId: string, request: unknown) => {
      calls.denial.push({ keyId, request });
      return state.denial;
    },
    decrypt: async (ciphertext: Buffer, context: Record<string, string>, caller: KeyCaller) => {
      calls.decrypt.push({ ciphertext: ciphertext.toString(), context, caller });
      if (state.decryptFails) throw new Error(state.decryptFails);
      return Buffer.from(`plain-of-${ciphertext.toString()}`);
    },
  } as unknown as LocalKeyService;
  const parents = opts.parentOf ?? {};
  const organization = {
    rootId: 'r-abcd',
    parentOf: (id: string) => parents[id],
    describe: async () => ({ id: 'o-abcdef1234', arn: ORG_ARN, managementAccountId: OWNER }),
    // Like Organizations, an id that is neither the root nor an OU is refused.
    ouArn: async (ou: string) => {
      if (!/^(r-|ou-)/.test(ou)) throw new Error(`no OU ${ou}`);
      return ouArn(ou);
    },
  } as unknown as LocalOrganizationDirectory;
  const model = new LocalLaunchModel({
    region: (r) => {
      if (r !== 'eu-west-1') throw new Error(`region ${r} is not a target`);
      return { images: localImages, snapshots };
    },
    keys,
    organization,
  });
  return { model, calls, state };
}

const request = (overrides: Partial<LaunchRequest> = {}): LaunchRequest => ({
  accountId: MEMBER,
  region: 'eu-west-1',
  imageId: 'ami-00000000000000001',
  instanceType: 't3.micro',
  via: 'auto-scaling',
  ...overrides,
});

describe('Class: LocalLaunchModel', () => {
  it('refuses a region it does not have, an image that does not exist or cannot be read, and one not available', async () => {
    // prepare
    const { model } = setup({ image: image({ state: 'pending' }) });
    // act
    const region = await model.check(request({ region: 'ap-south-2' }));
    const missing = await model.check(request({ imageId: 'ami-00000000000000404' }));
    const unreadable = await model.check(request({ imageId: 'ami-throws' }));
    const pending = await model.check(request());
    // assess
    assert.deepEqual(region, {
      launchable: false,
      reason: 'image ami-00000000000000001 does not exist in ap-south-2 (no such region here)',
    });
    assert.deepEqual(missing, {
      launchable: false,
      reason: 'image ami-00000000000000404 does not exist in eu-west-1',
    });
    assert.deepEqual(unreadable, {
      launchable: false,
      reason: 'image ami-throws does not exist in eu-west-1',
    });
    assert.deepEqual(pending, { launchable: false, reason: 'image ami-00000000000000001 is pending' });
  });

  it('lets the owner launch an image shared with nobody', async () => {
    // prepare
    const { model } = setup({ image: image() });
    // act + assess
    assert.deepEqual(await model.check(request({ accountId: OWNER })), { launchable: true });
  });

  it('refuses an account without launch permission, saying with whom the image is shared', async () => {
    // prepare
    const { model } = setup({ image: image() });
    const shared = setup({
      image: image({
        sharedWith: { organizationArns: [ORG_ARN], ouArns: [ouArn('ou-1')], accountIds: ['3'] },
      }),
    });
    // act
    const nobody = await model.check(request());
    const outsider = await shared.model.check(request());
    // assess: MEMBER is in no organization here, so the organization's and the OU's permissions do not count
    assert.deepEqual(nobody, {
      launchable: false,
      reason: `account ${MEMBER} has no launch permission on ami-00000000000000001 (owner ${OWNER}; shared with nobody)`,
    });
    assert.deepEqual(outsider, {
      launchable: false,
      reason: `account ${MEMBER} has no launch permission on ami-00000000000000001 (owner ${OWNER}; shared with ${ORG_ARN}, ${ouArn('ou-1')}, 3)`,
    });
  });

  it('lets an account launch what is shared with it by id', async () => {
    // prepare
    const { model } = setup({
      image: image({ sharedWith: { organizationArns: [], ouArns: [], accountIds: [MEMBER] } }),
    });
    // act + assess
    assert.deepEqual(await model.check(request()), { launchable: true });
  });

  it('lets a member of the organization launch what is shared with the organization', async () => {
    // prepare
    const { model } = setup({
      image: image({ sharedWith: { organizationArns: [ORG_ARN], ouArns: [], accountIds: [] } }),
      parentOf: { [MEMBER]: 'ou-1' },
    });
    // act + assess
    assert.deepEqual(await model.check(request()), { launchable: true });
  });

  it("follows the account's path from the root: its OU and the root count, another OU does not", async () => {
    // prepare
    const sharedWith = (ou: string) => ({ organizationArns: [], ouArns: [ouArn(ou)], accountIds: [] });
    const parentOf = { [MEMBER]: 'ou-1', '200000000002': 'r-abcd' };
    const own = setup({ image: image({ sharedWith: sharedWith('ou-1') }), parentOf });
    const root = setup({ image: image({ sharedWith: sharedWith('r-abcd') }), parentOf });
    const other = setup({ image: image({ sharedWith: sharedWith('ou-2') }), parentOf });
    // act + assess
    assert.deepEqual(await own.model.check(request()), { launchable: true });
    assert.deepEqual(await root.model.check(request()), { launchable: true });
    assert.deepEqual(await root.model.check(request({ accountId: '200000000002' })), { launchable: true });
    assert.equal((await other.model.check(request())).launchable, false);
    assert.equal((await own.model.check(request({ accountId: '200000000002' }))).launchable, false);
  });

  it('refuses an instance type that cannot boot the image, naming both', async () => {
    // prepare
    const { model } = setup({ image: image({ bootMode: 'uefi' }) });
    // act
    const verdict = await model.check(request({ accountId: OWNER, instanceType: 't2.micro' }));
    // assess
    assert.deepEqual(verdict, {
      launchable: false,
      reason: 'instance type t2.micro boots legacy-bios, the image needs uefi',
    });
  });

  it('asks nothing of the key for an unencrypted image', async () => {
    // prepare
    const { model, calls } = setup({ image: image({ encrypted: false }) });
    // act
    await model.check(request({ accountId: OWNER }));
    // assess
    assert.deepEqual(calls, { denial: [], decrypt: [], blocks: [] });
  });

  it("checks an encrypted image's key as the Auto Scaling role through EC2, and opens the first and last blocks", async () => {
    // prepare
    const { model, calls } = setup({ image: image({ encrypted: true }) });
    // act
    const verdict = await model.check(request({ accountId: OWNER }));
    // assess
    assert.deepEqual(verdict, { launchable: true });
    const caller = { principal: autoScalingRoleArn(OWNER), viaService: 'ec2.eu-west-1.amazonaws.com' };
    assert.deepEqual(calls.denial, [
      {
        keyId: 'arn:aws:kms:eu-west-1:111111111111:key/k1',
        request: {
          ...caller,
          operation: 'CreateGrant',
          grant: { granteePrincipal: caller.principal, operations: ['Decrypt'], isForAwsResource: true },
        },
      },
    ]);
    assert.deepEqual(calls.decrypt, [{ ciphertext: 'wrapped-1', context: { v: 'snap-1' }, caller }]);
    assert.deepEqual(calls.blocks, [
      { hash: 'h-first', keys: ['dk1=plain-of-wrapped-1'] },
      { hash: 'h-last', keys: ['dk1=plain-of-wrapped-1'] },
    ]);
  });

  it("checks the key as the account's root when the account launches itself", async () => {
    // prepare
    const { model, calls } = setup({ image: image({ encrypted: true }) });
    // act
    await model.check(request({ accountId: OWNER, via: 'account' }));
    // assess
    assert.equal(calls.decrypt[0]?.caller.principal, `arn:aws:iam::${OWNER}:root`);
    assert.deepEqual(
      calls.denial.map((d) => (d as { request: { principal: string } }).request.principal),
      [`arn:aws:iam::${OWNER}:root`],
    );
  });

  it('refuses when the key would not grant, naming the key, without decrypting', async () => {
    // prepare
    const { model, calls, state } = setup({ image: image({ encrypted: true }) });
    state.denial = 'the key policy allows no CreateGrant for this principal';
    // act
    const verdict = await model.check(request({ accountId: OWNER }));
    // assess
    assert.deepEqual(verdict, {
      launchable: false,
      reason:
        'key arn:aws:kms:eu-west-1:111111111111:key/k1: the key policy allows no CreateGrant for this principal',
    });
    assert.deepEqual(calls.decrypt, []);
  });

  it("refuses when the snapshot's keys do not open, or the snapshot is gone, naming snapshot and image", async () => {
    // prepare
    const denied = setup({ image: image({ encrypted: true }) });
    denied.state.decryptFails = 'AccessDeniedException';
    const gone = setup({ image: image({ encrypted: true }) });
    gone.state.manifest = undefined;
    // act + assess
    assert.deepEqual(await denied.model.check(request({ accountId: OWNER })), {
      launchable: false,
      reason: 'snapshot snap-1 of ami-00000000000000001: AccessDeniedException',
    });
    assert.deepEqual(await gone.model.check(request({ accountId: OWNER })), {
      launchable: false,
      reason: 'snapshot snap-1 of ami-00000000000000001: the snapshot does not exist',
    });
  });

  it('opens one block of a one-block snapshot once, and none of an all-zero one', async () => {
    // prepare
    const one = setup({ image: image({ encrypted: true }) });
    if (one.state.manifest) one.state.manifest.blocks = [null, 'h-only', null];
    const zero = setup({ image: image({ encrypted: true }) });
    if (zero.state.manifest) zero.state.manifest.blocks = [null, null];
    // act
    const verdicts = [
      await one.model.check(request({ accountId: OWNER })),
      await zero.model.check(request({ accountId: OWNER })),
    ];
    // assess
    assert.deepEqual(verdicts, [{ launchable: true }, { launchable: true }]);
    assert.deepEqual(
      one.calls.blocks.map((b) => b.hash),
      ['h-only'],
    );
    assert.deepEqual(zero.calls.blocks, []);
  });
});
