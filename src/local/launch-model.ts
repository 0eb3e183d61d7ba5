// The local launch model: what a member account would see if it asked EC2 and KMS, as itself, about launching
// an image (the LaunchView port; the check itself is src/core/images/launchable.ts). EC2's and KMS's rules:
// - DescribeImages shows an image to its owner, and to an account its launch permissions name (the account, the
//   Organization, or an OU on the account's path from the root), unless the account's Allowed AMIs setting is
//   enabled and does not admit it; a deregistered image is gone;
// - DescribeKey and ListGrants as a principal of the account are decided by the key policy and grants, as KMS
//   does (key-service.ts, key-policy.ts);
// - the Allowed AMIs setting and any service control policy denying launches are the account's own state
//   (member-accounts.ts);
// - instance types are the table of src/core/images/instance-types.ts;
// - the dry run refuses what EC2's would: an SCP's explicit deny, an image the account cannot see or that is
//   not available, an instance type that does not run it.

import { instanceTypeInfo, instanceTypeMismatch } from '#core/images/instance-types.ts';
import { allowedImagesVerdict } from '#core/images/launchable.ts';
import type {
  AllowedImagesSettings,
  Clock,
  Denied,
  DryRunInput,
  DryRunVerdict,
  ImageInfo,
  InstanceTypeInfo,
  KeyDescription,
  LaunchModel,
  LaunchView,
  VisibleImage,
} from '#ports';
import { systemClock } from './clock.ts';
import type { LocalImages } from './images.ts';
import type { LocalKeyService } from './key-service.ts';
import type { LocalMemberAccounts } from './member-accounts.ts';
import type { LocalOrganizationDirectory } from './organization.ts';

export interface LocalLaunchModelOptions {
  /** EC2 of a region: its images (throws for a region the stack does not have). */
  region(region: string): { images: LocalImages };
  keys: LocalKeyService;
  organization: LocalOrganizationDirectory;
  /** Each account's Allowed AMIs setting and service control policy. */
  members: LocalMemberAccounts;
  clock?: Clock;
}

export class LocalLaunchModel implements LaunchModel {
  readonly #opts: LocalLaunchModelOptions;

  constructor(opts: LocalLaunchModelOptions) {
    this.#opts = opts;
  }

  forAccount(accountId: string, region: string): LaunchView {
    return new LocalLaunchView(this.#opts, accountId, region);
  }
}

/** The role the account's subscriber runs as: the principal of its DescribeKey and ListGrants. */
const callerOf = (accountId: string) => `arn:aws:iam::${accountId}:role/stemcell-subscriber`;

class LocalLaunchView implements LaunchView {
  readonly accountId: string;
  readonly region: string;
  readonly #opts: LocalLaunchModelOptions;

  constructor(opts: LocalLaunchModelOptions, accountId: string, region: string) {
    this.#opts = opts;
    this.accountId = accountId;
    this.region = region;
  }

  async describeImage(imageId: string): Promise<VisibleImage | undefined> {
    const found = await this.#image(imageId);
    if (!found || found.image.state === 'deregistered') return undefined;
    const { image, owner } = found;
    if (!(await this.#mayLaunch(image, owner))) return undefined;
    const visible: VisibleImage = {
      imageId,
      name: image.name,
      ownerId: owner,
      state: image.state,
      architecture: image.architecture,
      bootMode: image.bootMode,
      encrypted: image.encrypted,
      createdAt: image.createdAt,
      ...(image.encrypted ? { kmsKeyId: image.kmsKeyId } : {}),
      ...(image.deprecatedAt ? { deprecatedAt: image.deprecatedAt } : {}),
    };
    const settings = this.#settings();
    if (settings.state !== 'disabled') {
      // EC2's ImageAllowed: what the criteria say, enforced or not.
      const verdict = allowedImagesVerdict(
        { ...settings, state: 'enabled' },
        visible,
        this.accountId,
        this.#now(),
      );
      // Enabled, Allowed AMIs hides what it does not admit; in audit mode it only says so.
      if (settings.state === 'enabled' && verdict.admitted === false) return undefined;
      if (verdict.admitted !== undefined) visible.allowed = verdict.admitted;
    }
    return visible;
  }

  async describeKey(keyId: string): Promise<KeyDescription | Denied> {
    const keys = this.#opts.keys;
    try {
      const denied = keys.explainDenial(keyId, {
        principal: callerOf(this.accountId),
        operation: 'DescribeKey',
      });
      if (denied) return { denied: `AccessDeniedException: ${denied}` };
      return await keys.describeKey(keyId);
    } catch (err) {
      return { denied: `${(err as Error).name}: ${(err as Error).message}` };
    }
  }

  async grantedOperations(keyArn: string, granteePrincipal: string): Promise<string[] | Denied> {
    const keys = this.#opts.keys;
    try {
      const denied = keys.explainDenial(keyArn, {
        principal: callerOf(this.accountId),
        operation: 'ListGrants',
      });
      if (denied) return { denied: `AccessDeniedException: ${denied}` };
      const grants = await keys.listGrants(keyArn, granteePrincipal);
      return [...new Set(grants.flatMap((g) => g.operations))].sort();
    } catch (err) {
      return { denied: `${(err as Error).name}: ${(err as Error).message}` };
    }
  }

  async allowedImages(): Promise<AllowedImagesSettings> {
    return this.#settings();
  }

  async describeInstanceType(instanceType: string): Promise<InstanceTypeInfo | undefined> {
    return instanceTypeInfo(instanceType);
  }

  async dryRun(input: DryRunInput): Promise<DryRunVerdict> {
    const scp = this.#opts.members.forAccount(this.accountId, this.region).launchDenial();
    if (scp)
      return {
        allowed: false,
        code: 'UnauthorizedOperation',
        message: `You are not authorized to perform this operation: ec2:RunInstances is denied to ${this.accountId} by an explicit deny in a service control policy (${scp})`,
      };
    const image = await this.describeImage(input.imageId);
    if (!image)
      return {
        allowed: false,
        code: 'InvalidAMIID.NotFound',
        message: `The image id '[${input.imageId}]' does not exist`,
      };
    if (image.state !== 'available')
      return {
        allowed: false,
        code: 'InvalidAMIID.Unavailable',
        message: `The image ${input.imageId} is ${image.state}`,
      };
    const misfit = instanceTypeMismatch(input.instanceType, image);
    if (misfit) return { allowed: false, code: 'InvalidParameterValue', message: misfit };
    return { allowed: true };
  }

  #settings(): AllowedImagesSettings {
    return this.#opts.members.forAccount(this.accountId, this.region).allowedImagesSettings();
  }

  #now(): Date {
    return (this.#opts.clock ?? systemClock).now();
  }

  async #image(imageId: string): Promise<{ image: ImageInfo; owner: string } | undefined> {
    let images: LocalImages;
    try {
      images = this.#opts.region(this.region).images;
    } catch {
      return undefined; // a region the stack does not have: nothing there
    }
    const image = await images.get(imageId).catch(() => undefined); // a malformed id is no image
    return image && { image, owner: images.ownerOf(imageId) };
  }

  /** Whether the account has launch permission on the image: it owns it, or the image is shared with it. */
  async #mayLaunch(image: ImageInfo, owner: string): Promise<boolean> {
    const accountId = this.accountId;
    const shared = image.sharedWith;
    if (owner === accountId || shared.accountIds.includes(accountId)) return true;
    const organization = this.#opts.organization;
    const parent = organization.parentOf(accountId);
    if (parent === undefined) return false;
    if (shared.organizationArns.includes((await organization.describe()).arn)) return true;
    // The local organization is one level deep: the path is the root, then the account's OU.
    const path = [organization.rootId, ...(parent === organization.rootId ? [] : [parent])];
    for (const ou of path) if (shared.ouArns.includes(await organization.ouArn(ou))) return true;
    return false;
  }
}
