// Behavioural contract of LaunchModel / LaunchView (EC2 and KMS as the launching account): what a member of the
// Organization sees of the publisher's image and key, its Allowed AMIs setting, instance types and the dry run;
// and the launch check (src/core/images/launchable.ts) over the adapter, refusing at each of its checks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AUTO_SCALING_GRANT_NEEDS,
  autoScalingRoleArn,
  checkLaunchable,
  type LaunchRequest,
} from '#core/images/launchable.ts';
import type { AllowedImagesSettings, LaunchModel } from '#ports';

export interface LaunchWorld {
  launch: LaunchModel;
  region: string;
  publisher: string;
  /** An account of the Organization, with the Auto Scaling grant on the key that infra/member.yml creates. */
  member: string;
  /** An available x86_64 UEFI image of the publisher, encrypted with the key, shared with the Organization. */
  sharedImage: string;
  /** The same content, shared with nobody. */
  privateImage: string;
  keyArn: string;
  /** Revokes the member's Auto Scaling grant on the key. */
  revokeGrant(accountId: string): Promise<void>;
  setAllowedImages(accountId: string, settings: AllowedImagesSettings): Promise<void>;
  /** A service control policy denying ec2:RunInstances to the account. */
  denyLaunches(accountId: string, statement: string): Promise<void>;
  cleanup?: () => Promise<void>;
}
export type LaunchWorldFactory = () => Promise<LaunchWorld>;

const NOW = () => new Date();

export function launchModelContract(name: string, factory: LaunchWorldFactory): void {
  describe(`Contract: LaunchModel (${name})`, () => {
    async function withWorld(body: (w: LaunchWorld) => Promise<void>): Promise<void> {
      const w = await factory();
      try {
        await body(w);
      } finally {
        await w.cleanup?.();
      }
    }

    it('shows a member the shared image with its owner, architecture and boot mode; not one shared with nobody', () =>
      withWorld(async (w) => {
        // act
        const view = w.launch.forAccount(w.member, w.region);
        const shared = await view.describeImage(w.sharedImage);
        const unshared = await view.describeImage(w.privateImage);
        const unknown = await view.describeImage('ami-0000000000000dead');
        const own = await w.launch.forAccount(w.publisher, w.region).describeImage(w.privateImage);
        // assess
        assert.equal(shared?.imageId, w.sharedImage);
        assert.equal(shared?.ownerId, w.publisher);
        assert.equal(shared?.state, 'available');
        assert.equal(shared?.architecture, 'x86_64');
        assert.equal(shared?.bootMode, 'uefi');
        assert.equal(shared?.encrypted, true);
        assert.ok(shared?.kmsKeyId === undefined || shared.kmsKeyId === w.keyArn, shared?.kmsKeyId);
        assert.equal(unshared, undefined);
        assert.equal(unknown, undefined);
        assert.equal(own?.imageId, w.privateImage, 'the owner sees its own images');
        assert.equal(view.accountId, w.member);
        assert.equal(view.region, w.region);
      }));

    it("describes the key to a member, and lists its Auto Scaling role's grant until it is revoked", () =>
      withWorld(async (w) => {
        // prepare
        const view = w.launch.forAccount(w.member, w.region);
        const role = autoScalingRoleArn(w.member);
        // act
        const key = await view.describeKey(w.keyArn);
        const before = await view.grantedOperations(w.keyArn, role);
        await w.revokeGrant(w.member);
        const after = await view.grantedOperations(w.keyArn, role);
        const missing = await view.describeKey(
          w.keyArn.replace(/key\/.*/, 'key/00000000-0000-0000-0000-000000000000'),
        );
        // assess
        assert.ok(!('denied' in key), JSON.stringify(key));
        assert.equal(key.arn, w.keyArn);
        assert.equal(key.accountId, w.publisher);
        assert.equal(key.state, 'Enabled');
        assert.ok(Array.isArray(before));
        for (const op of AUTO_SCALING_GRANT_NEEDS) assert.ok(before.includes(op), `${op} granted`);
        assert.deepEqual(after, []);
        assert.ok('denied' in missing && /NotFound/.test(missing.denied), JSON.stringify(missing));
      }));

    it("reads the account's Allowed AMIs setting back; enabled without the publisher, it hides the image", () =>
      withWorld(async (w) => {
        // prepare
        const view = w.launch.forAccount(w.member, w.region);
        // act
        const initially = await view.allowedImages();
        await w.setAllowedImages(w.member, { state: 'enabled', criteria: [{ imageProviders: ['amazon'] }] });
        const excluding = await view.allowedImages();
        const hidden = await view.describeImage(w.sharedImage);
        await w.setAllowedImages(w.member, {
          state: 'enabled',
          criteria: [{ imageProviders: ['amazon'] }, { imageProviders: [w.publisher] }],
        });
        const admitted = await view.describeImage(w.sharedImage);
        // assess
        assert.deepEqual(initially.state, 'disabled');
        assert.deepEqual(initially.criteria, []);
        assert.equal(excluding.state, 'enabled');
        assert.deepEqual(excluding.criteria, [{ imageProviders: ['amazon'] }]);
        assert.equal(hidden, undefined);
        assert.equal(admitted?.imageId, w.sharedImage);
        assert.notEqual(admitted?.allowed, false);
      }));

    it('describes what an instance type runs, and nothing for a type there is not', () =>
      withWorld(async (w) => {
        const view = w.launch.forAccount(w.member, w.region);
        // act
        const nitro = await view.describeInstanceType('t3.micro');
        const graviton = await view.describeInstanceType('t4g.micro');
        const none = await view.describeInstanceType('zz9.nano');
        // assess
        assert.deepEqual(nitro?.architectures, ['x86_64']);
        assert.deepEqual([...(nitro?.bootModes ?? [])].sort(), ['legacy-bios', 'uefi']);
        assert.deepEqual(graviton, { architectures: ['arm64'], bootModes: ['uefi'] });
        assert.equal(none, undefined);
      }));

    it("dry-runs a launch: allowed for the shared image on a fitting type; refused, in EC2's words, otherwise", () =>
      withWorld(async (w) => {
        // prepare
        const view = w.launch.forAccount(w.member, w.region);
        const run = (imageId: string, instanceType: string) =>
          view.dryRun({ imageId, instanceType, via: 'auto-scaling' });
        // act
        const ok = await run(w.sharedImage, 't3.micro');
        const unshared = await run(w.privateImage, 't3.micro');
        const arm = await run(w.sharedImage, 't4g.micro');
        await w.denyLaunches(w.member, 'DenyAllLaunches');
        const denied = await run(w.sharedImage, 't3.micro');
        // assess
        assert.deepEqual(ok, { allowed: true });
        assert.ok(!unshared.allowed && unshared.code === 'InvalidAMIID.NotFound', JSON.stringify(unshared));
        assert.ok(!arm.allowed && /^InvalidParameter/.test(arm.code), JSON.stringify(arm));
        assert.ok(!denied.allowed && denied.code === 'UnauthorizedOperation', JSON.stringify(denied));
        assert.match(denied.allowed ? '' : denied.message, /DenyAllLaunches/);
      }));

    it('the launch check over this adapter: launchable, then refused at each check in turn', () =>
      withWorld(async (w) => {
        // prepare
        const view = () => w.launch.forAccount(w.member, w.region);
        const request: LaunchRequest = {
          imageId: w.sharedImage,
          instanceType: 't3.micro',
          via: 'auto-scaling',
        };
        const checkOf = async (r: Partial<LaunchRequest> = {}) => {
          const verdict = await checkLaunchable(view(), { ...request, ...r }, NOW());
          return verdict.launchable ? 'launchable' : verdict.check;
        };
        // act
        const launchable = await checkOf();
        const unshared = await checkOf({ imageId: w.privateImage });
        const misfit = await checkOf({ instanceType: 't4g.micro' });
        await w.setAllowedImages(w.member, { state: 'enabled', criteria: [{ imageProviders: ['amazon'] }] });
        const notAllowed = await checkOf({ publisherAccountId: w.publisher });
        await w.setAllowedImages(w.member, { state: 'disabled', criteria: [] });
        await w.denyLaunches(w.member, 'DenyAllLaunches');
        const scp = await checkOf();
        await w.revokeGrant(w.member);
        const grant = await checkOf();
        const direct = await checkOf({ via: 'account' });
        // assess
        assert.deepEqual(
          { launchable, unshared, misfit, notAllowed, scp, grant, direct },
          {
            launchable: 'launchable',
            unshared: 'image',
            misfit: 'instance-type',
            notAllowed: 'allowed-images',
            scp: 'dry-run',
            grant: 'key',
            direct: 'dry-run',
          },
        );
      }));
  });
}
