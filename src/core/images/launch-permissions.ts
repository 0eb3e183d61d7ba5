// Sharing follows the audience: the launch permissions a stream's images get, and the check announce makes
// before it publishes "Image Ready": it reads the image back and refuses to announce while any permission it
// set is missing (launch permissions are a set, so sharing again on the retry is harmless).

import type { StreamConfig } from '#config/schema.ts';
import { DependencyError } from '#errors';
import type { Images, OrganizationDirectory } from '#ports';

export interface LaunchPermissions {
  organizationArns: string[];
  ouArns: string[];
}

export class LaunchPermissionError extends DependencyError {
  readonly imageId: string;
  readonly missing: string[];
  constructor(imageId: string, region: string, missing: string[]) {
    super(
      `image ${imageId} in ${region}: launch permissions ${missing.join(', ')} were set but are not on the image; refusing to announce`,
    );
    this.name = 'LaunchPermissionError';
    this.imageId = imageId;
    this.missing = missing;
  }
}

/** The full ARNs the stream's sharing names (EC2 takes organization and OU launch permissions by ARN). */
export async function launchPermissionsFor(
  sharing: StreamConfig['sharing'],
  organization: OrganizationDirectory,
): Promise<LaunchPermissions> {
  return {
    organizationArns: sharing.organization ? [(await organization.describe()).arn] : [],
    ouArns: await Promise.all(sharing.ous.map((ou) => organization.ouArn(ou))),
  };
}

/** Adds the launch permissions, reads the image back, and throws LaunchPermissionError if any is missing. */
export async function shareAndVerify(
  images: Images,
  imageId: string,
  region: string,
  wanted: LaunchPermissions,
): Promise<void> {
  if (wanted.organizationArns.length === 0 && wanted.ouArns.length === 0) return;
  await images.share(imageId, wanted);
  const image = await images.get(imageId);
  const has = new Set([...(image?.sharedWith.organizationArns ?? []), ...(image?.sharedWith.ouArns ?? [])]);
  const missing = [...wanted.organizationArns, ...wanted.ouArns].filter((arn) => !has.has(arn));
  if (missing.length > 0) throw new LaunchPermissionError(imageId, region, missing);
}
