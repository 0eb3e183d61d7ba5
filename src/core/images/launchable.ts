// Launchable, checked where it matters: before a member account's launch template moves to an image, the
// account asks, as itself, whether it could launch it. One check, the same in both worlds: the questions go
// through the LaunchView port (EC2 and KMS with the member's own credentials on AWS, the local launch model of
// EC2's and KMS's rules locally), and the answers are judged here, in order:
//   1. image: DescribeImages shows the image to the account, and it is available;
//   2. key: the image's key is described to the account and enabled, and, where an Auto Scaling group launches,
//      the account's Auto Scaling service-linked role holds a grant for what EBS needs (ListGrants);
//   3. allowed-images: the account's Allowed AMIs setting, where enabled, admits the image (its criteria);
//   4. instance-type: the template's instance type runs the image's architecture and boot mode;
//   5. dry-run: EC2's RunInstances dry run of the image with that instance type is allowed.
// The first that fails is the refusal, with its reason.
import type { LaunchCheck } from '#events/stemcell.ts';
import type { AllowedImagesSettings, ImageCriterion, LaunchView, VisibleImage } from '#ports';
import { defaultInstanceType, instanceTypeMisfit } from './instance-types.ts';

/** What EBS needs from a grant to restore a volume from an encrypted snapshot for an Auto Scaling launch. */
export const AUTO_SCALING_GRANT_NEEDS = [
  'Decrypt',
  'ReEncryptFrom',
  'GenerateDataKeyWithoutPlaintext',
  'DescribeKey',
  'CreateGrant',
];

export function autoScalingRoleArn(accountId: string, partition = 'aws'): string {
  return `arn:${partition}:iam::${accountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
}

export interface LaunchRequest {
  imageId: string;
  /** The launch template's instance type; absent, the dry run uses a small type of the image's architecture. */
  instanceType?: string;
  /** `auto-scaling` when an Auto Scaling group uses the template (its service-linked role launches). */
  via: 'auto-scaling' | 'account';
  /** The publishing account, to explain an image the account cannot see (the announcement names it). */
  publisherAccountId?: string;
  /** The image's key as announced, used where DescribeImages does not show the root snapshot's key. */
  kmsKeyId?: string;
}

export type LaunchVerdict =
  | { launchable: true; notes: string[] }
  | { launchable: false; check: LaunchCheck; reason: string };

const refused = (check: LaunchCheck, reason: string): LaunchVerdict => ({ launchable: false, check, reason });

export async function checkLaunchable(
  view: LaunchView,
  request: LaunchRequest,
  now: Date,
): Promise<LaunchVerdict> {
  const { accountId, region } = view;
  const { imageId } = request;
  const notes: string[] = [];

  // 1. visible and available
  const image = await view.describeImage(imageId);
  if (!image) {
    // Allowed AMIs hides what it does not admit: say so when it is the cause.
    const owner = request.publisherAccountId;
    if (owner && owner !== accountId) {
      const settings = await view.allowedImages();
      const verdict = allowedImagesVerdict(settings, { ownerId: owner }, accountId, now);
      if (verdict.admitted === false)
        return refused(
          'allowed-images',
          `image ${imageId} is hidden: ${allowedReason(view, owner, verdict)}`,
        );
    }
    return refused(
      'image',
      `image ${imageId} is not visible to account ${accountId} in ${region} (DescribeImages): not shared with it, deregistered, or never in this region`,
    );
  }
  if (image.state !== 'available') return refused('image', `image ${imageId} is ${image.state} in ${region}`);

  // 2. the key
  if (image.encrypted) {
    const keyId = image.kmsKeyId || request.kmsKeyId;
    if (!keyId)
      return refused(
        'key',
        `image ${imageId} is encrypted, and neither DescribeImages nor the announcement names its key`,
      );
    const key = await view.describeKey(keyId);
    if ('denied' in key) return refused('key', `DescribeKey ${keyId} as ${accountId}: ${key.denied}`);
    if (key.state !== 'Enabled') return refused('key', `key ${key.arn} is ${key.state}`);
    if (request.via === 'auto-scaling') {
      const role = autoScalingRoleArn(accountId, key.arn.split(':')[1] || 'aws');
      const granted = await view.grantedOperations(key.arn, role);
      if ('denied' in granted)
        return refused('key', `ListGrants on ${key.arn} as ${accountId}: ${granted.denied}`);
      const missing = AUTO_SCALING_GRANT_NEEDS.filter((op) => !granted.includes(op));
      if (missing.length > 0)
        return refused(
          'key',
          `key ${key.arn}: the Auto Scaling role of ${accountId} has no grant for ${missing.join(', ')} (infra/member.yml's AutoScalingKeyGrant in ${region})`,
        );
    }
  }

  // 3. Allowed AMIs
  if (image.ownerId !== accountId) {
    const settings = await view.allowedImages();
    const verdict = allowedImagesVerdict(settings, image, accountId, now);
    if (verdict.admitted === false)
      return refused('allowed-images', allowedReason(view, image.ownerId, verdict));
    const enforced = allowedImagesVerdict({ ...settings, state: 'enabled' }, image, accountId, now);
    if (settings.state === 'audit-mode' && enforced.admitted === false)
      notes.push(
        `Allowed AMIs (audit mode) would not admit ${imageId}: ${describeCriteria(settings.criteria)}`,
      );
  }

  // 4. instance type
  if (request.instanceType) {
    const info = await view.describeInstanceType(request.instanceType);
    if (info) {
      const misfit = instanceTypeMisfit(request.instanceType, info, image);
      if (misfit) return refused('instance-type', `${misfit} (${imageId})`);
    } else
      notes.push(
        `instance type ${request.instanceType} is not described in ${region}: the dry run judges it`,
      );
  }

  // 5. EC2's own verdict
  const instanceType = request.instanceType ?? defaultInstanceType(image.architecture);
  const dry = await view.dryRun({ imageId, instanceType, via: request.via });
  if (!dry.allowed)
    return refused(
      'dry-run',
      `RunInstances (dry run) of ${imageId} on ${instanceType} as ${accountId} in ${region}: ${dry.code}: ${dry.message}`,
    );
  if (dry.note) notes.push(dry.note);
  return { launchable: true, notes };
}

/** Enough of an image to judge it by the Allowed AMIs criteria: only the owner when the image is not visible. */
type Judged = Pick<VisibleImage, 'ownerId'> &
  Partial<Pick<VisibleImage, 'name' | 'createdAt' | 'deprecatedAt' | 'allowed'>>;

type Match = 'yes' | 'no' | 'unknown';

export interface AllowedImagesVerdict {
  /** undefined: the criteria cannot be decided from what is known of the image, and EC2 gave no verdict. */
  admitted: boolean | undefined;
  settings: AllowedImagesSettings;
  /** EC2's own verdict (DescribeImages ImageAllowed) decided, against what the criteria say. */
  byEc2?: boolean;
}

/**
 * Whether the Allowed AMIs setting admits the image for `accountId`. Per EC2's user guide: the setting never
 * restricts the account's own images; otherwise an image is allowed when it matches every field of at least one
 * criterion. Where DescribeImages gives EC2's own verdict (ImageAllowed), that verdict decides.
 */
export function allowedImagesVerdict(
  settings: AllowedImagesSettings,
  image: Judged,
  accountId: string,
  now: Date,
): AllowedImagesVerdict {
  if (settings.state !== 'enabled' || image.ownerId === accountId) return { admitted: true, settings };
  const matches = settings.criteria.map((c) => criterionMatch(c, image, accountId, now));
  const ours = matches.includes('yes') ? true : matches.every((m) => m === 'no') ? false : undefined;
  if (image.allowed !== undefined && image.allowed !== ours)
    return { admitted: image.allowed, settings, byEc2: image.allowed };
  return { admitted: ours, settings };
}

function criterionMatch(c: ImageCriterion, image: Judged, accountId: string, now: Date): Match {
  const results: Match[] = [];
  if (c.imageProviders && c.imageProviders.length > 0) {
    // amazon, aws-marketplace and aws-backup-vault name AWS's own providers, never a customer account.
    const own = c.imageProviders.includes('none') && image.ownerId === accountId;
    results.push(own || c.imageProviders.includes(image.ownerId) ? 'yes' : 'no');
  }
  if (c.imageNames && c.imageNames.length > 0) {
    if (image.name === undefined) results.push('unknown');
    else results.push(c.imageNames.some((pattern) => wildcard(pattern, image.name ?? '')) ? 'yes' : 'no');
  }
  // stemcell's images carry no AWS Marketplace product code.
  if (c.marketplaceProductCodes && c.marketplaceProductCodes.length > 0) results.push('no');
  if (c.maximumDaysSinceCreated !== undefined) {
    if (!image.createdAt) results.push('unknown');
    else results.push(daysSince(image.createdAt, now) <= c.maximumDaysSinceCreated ? 'yes' : 'no');
  }
  if (c.maximumDaysSinceDeprecated !== undefined && image.deprecatedAt !== undefined) {
    const deprecated = Date.parse(image.deprecatedAt) <= now.getTime();
    results.push(
      !deprecated || daysSince(image.deprecatedAt, now) <= c.maximumDaysSinceDeprecated ? 'yes' : 'no',
    );
  }
  if (c.opaque && c.opaque.length > 0) results.push('unknown');
  if (results.includes('no')) return 'no';
  return results.includes('unknown') ? 'unknown' : 'yes';
}

function daysSince(iso: string, now: Date): number {
  return (now.getTime() - Date.parse(iso)) / 86_400_000;
}

/** EC2's name patterns: `*` any run of characters, `?` one. */
function wildcard(pattern: string, value: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(value);
}

function allowedReason(view: LaunchView, owner: string, verdict: AllowedImagesVerdict): string {
  const by = verdict.settings.managedBy === 'declarative-policy' ? ', by a declarative policy' : '';
  const ec2 = verdict.byEc2 === false ? ' (EC2 reports the image as not allowed)' : '';
  return `Allowed AMIs is enabled in ${view.accountId} (${view.region}${by}) and admits no image of ${owner}${ec2}: ${describeCriteria(verdict.settings.criteria)}`;
}

export function describeCriteria(criteria: ImageCriterion[]): string {
  if (criteria.length === 0) return "it has no criteria (only the account's own images)";
  const one = (c: ImageCriterion) =>
    [
      c.imageProviders?.length ? `image providers ${c.imageProviders.join(', ')}` : '',
      c.imageNames?.length ? `names ${c.imageNames.join(', ')}` : '',
      c.marketplaceProductCodes?.length ? `product codes ${c.marketplaceProductCodes.join(', ')}` : '',
      c.maximumDaysSinceCreated !== undefined ? `created within ${c.maximumDaysSinceCreated} days` : '',
      c.maximumDaysSinceDeprecated !== undefined
        ? `deprecated within ${c.maximumDaysSinceDeprecated} days`
        : '',
      ...(c.opaque ?? []),
    ]
      .filter(Boolean)
      .join(' and ') || 'an empty criterion';
  return `its criteria allow ${criteria.map(one).join('; or ')}`;
}
