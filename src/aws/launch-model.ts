// The launch view on AWS: the member account asks EC2 and KMS itself, with its own credentials (the subscriber's
// role), what src/core/images/launchable.ts needs to judge whether it can launch an image:
// - DescribeImages: an image shared with the account (by account, OU or Organization) is visible to it, with its
//   owner, architecture, boot mode, root snapshot encryption and, where Allowed AMIs gives one, EC2's verdict;
// - DescribeKey and ListGrants on the publisher's key (cross-account by key ARN; the key policy's
//   OrganizationChecksTheKeyBeforeMovingTemplates statement lets the Organization's principals ask);
// - GetAllowedImagesSettings, DescribeInstanceTypes;
// - RunInstances with DryRun: DryRunOperation means EC2 would have launched it.
// The dry run sends the image and the template's instance type, not the template's network or instance profile:
// those are the account's own business, and the subscriber's role may not pass the account's roles.
import {
  type _InstanceType,
  DescribeImagesCommand,
  DescribeInstanceTypesCommand,
  type EC2Client,
  type ImageCriterion as Ec2ImageCriterion,
  GetAllowedImagesSettingsCommand,
  type GetAllowedImagesSettingsCommandOutput,
  type Image,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { Architecture, BootMode } from '#core/model/types.ts';
import type {
  AllowedImagesSettings,
  Denied,
  DryRunInput,
  DryRunVerdict,
  ImageCriterion,
  InstanceTypeInfo,
  KeyDescription,
  KeyService,
  LaunchModel,
  LaunchView,
  VisibleImage,
} from '#ports';
import { errorName, isError, THROTTLING } from './retry.ts';

export interface Ec2LaunchModelOptions {
  /** EC2 of the account in the region, with the account's own credentials. */
  ec2(accountId: string, region: string): EC2Client;
  /** KMS of the account in the region (the image's multi-Region key has its replica there). */
  keys(accountId: string, region: string): KeyService;
}

export class Ec2LaunchModel implements LaunchModel {
  readonly #opts: Ec2LaunchModelOptions;

  constructor(opts: Ec2LaunchModelOptions) {
    this.#opts = opts;
  }

  forAccount(accountId: string, region: string): LaunchView {
    return new Ec2LaunchView(
      accountId,
      region,
      this.#opts.ec2(accountId, region),
      this.#opts.keys(accountId, region),
    );
  }
}

/** The image ids EC2 answers "not there" for, as far as this account can tell. */
const NO_IMAGE = ['InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable', 'InvalidAMIID.Malformed'];
/** KMS's answers that mean "not for you" (or not there): a refusal, not an outage. */
const KEY_REFUSED = [
  'AccessDeniedException',
  'NotFoundException',
  'KMSInvalidStateException',
  'DisabledException',
];
/**
 * Dry-run answers about where to put the instance, not about the image: the dry run names no subnet, and an
 * account without a default VPC has nowhere to put it. The launch template or Auto Scaling group supplies one.
 */
const PLACEMENT = ['VPCIdNotSpecified', 'MissingInput'];

export class Ec2LaunchView implements LaunchView {
  readonly accountId: string;
  readonly region: string;
  readonly #ec2: EC2Client;
  readonly #keys: KeyService;

  constructor(accountId: string, region: string, ec2: EC2Client, keys: KeyService) {
    this.accountId = accountId;
    this.region = region;
    this.#ec2 = ec2;
    this.#keys = keys;
  }

  async describeImage(imageId: string): Promise<VisibleImage | undefined> {
    try {
      const out = await this.#ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
      const image = out.Images?.find((i) => i.ImageId === imageId);
      return image && toVisible(image);
    } catch (err) {
      if (isError(err, ...NO_IMAGE)) return undefined;
      throw err;
    }
  }

  async describeKey(keyId: string): Promise<KeyDescription | Denied> {
    try {
      return await this.#keys.describeKey(keyId);
    } catch (err) {
      if (isError(err, ...KEY_REFUSED)) return { denied: said(err) };
      throw err;
    }
  }

  async grantedOperations(keyArn: string, granteePrincipal: string): Promise<string[] | Denied> {
    try {
      const grants = await this.#keys.listGrants(keyArn, granteePrincipal);
      return [...new Set(grants.flatMap((g) => g.operations))].sort();
    } catch (err) {
      if (isError(err, ...KEY_REFUSED)) return { denied: said(err) };
      throw err;
    }
  }

  async allowedImages(): Promise<AllowedImagesSettings> {
    let out: GetAllowedImagesSettingsCommandOutput;
    try {
      out = await this.#ec2.send(new GetAllowedImagesSettingsCommand({}));
    } catch (err) {
      // A partition or region without Allowed AMIs: nothing there can restrict the account's images.
      if (isError(err, 'InvalidAction', 'UnsupportedOperation')) return { state: 'disabled', criteria: [] };
      throw err;
    }
    const state = out.State === 'enabled' || out.State === 'audit-mode' ? out.State : 'disabled';
    return {
      state,
      criteria: (out.ImageCriteria ?? []).map(toCriterion),
      ...(out.ManagedBy ? { managedBy: out.ManagedBy } : {}),
    };
  }

  async describeInstanceType(instanceType: string): Promise<InstanceTypeInfo | undefined> {
    try {
      const out = await this.#ec2.send(
        new DescribeInstanceTypesCommand({ InstanceTypes: [instanceType as _InstanceType] }),
      );
      const type = out.InstanceTypes?.[0];
      if (!type) return undefined;
      const architectures = (type.ProcessorInfo?.SupportedArchitectures ?? []).filter(
        (a): a is Architecture => a === 'x86_64' || a === 'arm64',
      );
      const modes = (type.SupportedBootModes ?? []).filter(
        (m): m is Exclude<BootMode, 'none'> => m === 'legacy-bios' || m === 'uefi',
      );
      // EC2 documents SupportedBootModes for every type; without it, let the dry run judge the boot mode.
      return { architectures, bootModes: modes.length > 0 ? modes : ['legacy-bios', 'uefi'] };
    } catch (err) {
      if (isError(err, 'InvalidInstanceType')) return undefined;
      throw err;
    }
  }

  /** `via` does not change the call: the dry run asks as the caller, whoever launches for real. */
  async dryRun(input: DryRunInput): Promise<DryRunVerdict> {
    try {
      await this.#ec2.send(
        new RunInstancesCommand({
          DryRun: true,
          ImageId: input.imageId,
          InstanceType: input.instanceType as _InstanceType,
          MinCount: 1,
          MaxCount: 1,
        }),
      );
    } catch (err) {
      const code = errorName(err) ?? 'Error';
      if (code === 'DryRunOperation') return { allowed: true };
      if (PLACEMENT.includes(code))
        return { allowed: true, note: `the dry run had no network to place the instance: ${said(err)}` };
      if (isError(err, ...THROTTLING) || (err as { $fault?: string }).$fault === 'server') throw err;
      return { allowed: false, code, message: (err as Error).message };
    }
    // Never expected: EC2 launched although asked for a dry run. Nothing to judge by, and something to stop.
    return {
      allowed: false,
      code: 'NotADryRun',
      message: `RunInstances as ${this.accountId} did not honour DryRun: terminate what it launched`,
    };
  }
}

function said(err: unknown): string {
  return `${errorName(err) ?? 'Error'}: ${(err as Error).message}`;
}

function toVisible(image: Image): VisibleImage {
  const root = image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs;
  const state =
    image.State === 'available' || image.State === 'failed' || image.State === 'deregistered'
      ? image.State
      : 'pending';
  const visible: VisibleImage = {
    imageId: image.ImageId ?? '',
    name: image.Name ?? '',
    ownerId: image.OwnerId ?? '',
    state,
    architecture: image.Architecture === 'arm64' ? 'arm64' : 'x86_64',
    // uefi-preferred boots either way, as an image with no boot mode does.
    bootMode: image.BootMode === 'uefi' || image.BootMode === 'legacy-bios' ? image.BootMode : 'none',
    encrypted: root?.Encrypted === true,
    createdAt: image.CreationDate ?? '',
  };
  if (root?.KmsKeyId) visible.kmsKeyId = root.KmsKeyId;
  if (image.DeprecationTime) visible.deprecatedAt = image.DeprecationTime;
  if (image.ImageAllowed !== undefined) visible.allowed = image.ImageAllowed;
  return visible;
}

function toCriterion(c: Ec2ImageCriterion): ImageCriterion {
  const out: ImageCriterion = {};
  if (c.ImageProviders?.length) out.imageProviders = c.ImageProviders;
  if (c.ImageNames?.length) out.imageNames = c.ImageNames;
  if (c.MarketplaceProductCodes?.length) out.marketplaceProductCodes = c.MarketplaceProductCodes;
  if (c.CreationDateCondition?.MaximumDaysSinceCreated !== undefined)
    out.maximumDaysSinceCreated = c.CreationDateCondition.MaximumDaysSinceCreated;
  if (c.DeprecationTimeCondition?.MaximumDaysSinceDeprecated !== undefined)
    out.maximumDaysSinceDeprecated = c.DeprecationTimeCondition.MaximumDaysSinceDeprecated;
  const opaque = [
    ...(c.ImageWatermarks?.length ? ['image watermarks'] : []),
    ...(c.ScanResultCondition ? ['Amazon Inspector scan results'] : []),
  ];
  if (opaque.length > 0) out.opaque = opaque;
  return out;
}
