// The local launch model: whether an account could launch an instance from an image, by EC2's rules.
// - the image exists in the region and is available;
// - the account owns it, or its launch permissions name the account, the Organization, or an OU on the
//   account's path from the root;
// - the image's customer key is usable for the launch: an Auto Scaling group launches as the account's Auto
//   Scaling service-linked role, which needs the grant infra/member.yml creates; a principal of the account
//   launching directly needs the key policy's organization statement through EC2. The check really unwraps the
//   snapshot's data keys and decrypts a block as that principal, as EBS restoring the volume would;
// - the architecture and boot mode fit the instance type.

import { instanceTypeMismatch } from '#core/images/instance-types.ts';
import type { ImageInfo, LaunchModel, LaunchRequest, LaunchVerdict } from '#ports';
import type { LocalImages } from './images.ts';
import { autoScalingRoleArn } from './key-policy.ts';
import type { KeyCaller, LocalKeyService } from './key-service.ts';
import type { LocalOrganizationDirectory } from './organization.ts';
import type { LocalSnapshots } from './snapshots.ts';

export interface LocalLaunchModelOptions {
  /** EC2 and EBS of a region: the images, and the snapshots they point at. */
  region(region: string): { images: LocalImages; snapshots: LocalSnapshots };
  keys: LocalKeyService;
  organization: LocalOrganizationDirectory;
}

export class LocalLaunchModel implements LaunchModel {
  readonly #opts: LocalLaunchModelOptions;

  constructor(opts: LocalLaunchModelOptions) {
    this.#opts = opts;
  }

  async check(request: LaunchRequest): Promise<LaunchVerdict> {
    const { accountId, region, imageId, instanceType } = request;
    let ebs: { images: LocalImages; snapshots: LocalSnapshots };
    try {
      ebs = this.#opts.region(region);
    } catch {
      return refused(`image ${imageId} does not exist in ${region} (no such region here)`);
    }
    const image = await ebs.images.get(imageId).catch(() => undefined);
    if (!image) return refused(`image ${imageId} does not exist in ${region}`);
    if (image.state !== 'available') return refused(`image ${imageId} is ${image.state}`);

    const permission = await this.#permission(image, ebs.images.ownerOf(imageId), accountId);
    if (permission) return refused(permission);

    const mismatch = instanceTypeMismatch(instanceType, image);
    if (mismatch) return refused(mismatch);

    if (image.encrypted) {
      const principal =
        request.via === 'auto-scaling' ? autoScalingRoleArn(accountId) : `arn:aws:iam::${accountId}:root`;
      const caller = { principal, viaService: `ec2.${region}.amazonaws.com` };
      // EBS creates a grant for the volume it restores, then decrypts the snapshot's data keys.
      const createGrant = this.#opts.keys.explainDenial(image.kmsKeyId, {
        ...caller,
        operation: 'CreateGrant',
        grant: { granteePrincipal: principal, operations: ['Decrypt'], isForAwsResource: true },
      });
      if (createGrant) return refused(`key ${image.kmsKeyId}: ${createGrant}`);
      try {
        await this.#restoreAs(ebs.snapshots, image.snapshotId, caller);
      } catch (err) {
        return refused(`snapshot ${image.snapshotId} of ${imageId}: ${(err as Error).message}`);
      }
    }
    return { launchable: true };
  }

  /**
   * What EBS does when it creates the instance's root volume: unwrap every data key of the snapshot as the
   * launching principal, and decrypt its content (the first and last non-empty blocks: the partition table and
   * the end of the filesystem, enough to prove the keys open it without writing the whole disk).
   */
  async #restoreAs(snapshots: LocalSnapshots, snapshotId: string, caller: KeyCaller): Promise<void> {
    const manifest = snapshots.manifest(snapshotId);
    if (!manifest) throw new Error('the snapshot does not exist');
    const keys = new Map<string, Buffer>();
    for (const [id, wrapped] of Object.entries(manifest.dataKeys)) {
      keys.set(
        id,
        await this.#opts.keys.decrypt(Buffer.from(wrapped.ciphertext, 'base64'), wrapped.context, caller),
      );
    }
    const present = manifest.blocks.filter((h): h is string => h !== null);
    for (const hash of new Set([present[0], present.at(-1)])) {
      if (hash) await snapshots.blocks.get(hash, keys);
    }
  }

  /** Why the account has no launch permission on the image, or undefined. */
  async #permission(image: ImageInfo, owner: string, accountId: string): Promise<string | undefined> {
    if (owner === accountId) return undefined;
    const shared = image.sharedWith;
    if (shared.accountIds.includes(accountId)) return undefined;
    const organization = this.#opts.organization;
    const parent = organization.parentOf(accountId);
    if (parent !== undefined) {
      const { arn } = await organization.describe();
      if (shared.organizationArns.includes(arn)) return undefined;
      // The local organization is one level deep: the path is the root, then the account's OU.
      const path = [organization.rootId, ...(parent === organization.rootId ? [] : [parent])];
      for (const ou of path) if (shared.ouArns.includes(await organization.ouArn(ou))) return undefined;
    }
    const to = [...shared.organizationArns, ...shared.ouArns, ...shared.accountIds];
    return `account ${accountId} has no launch permission on ${image.imageId} (owner ${owner}; shared with ${to.length > 0 ? to.join(', ') : 'nobody'})`;
  }
}

function refused(reason: string): LaunchVerdict {
  return { launchable: false, reason };
}
