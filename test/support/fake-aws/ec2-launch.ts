// The launch side of the EC2 fake, as each account sees it: which of the owner's images another account can see
// (launch permission by account, Organization or OU; hidden by its Allowed AMIs setting when enabled and no
// criterion names the owner as a provider), GetAllowedImagesSettings, DescribeInstanceTypes, and what a
// RunInstances dry run answers (UnauthorizedOperation under a service control policy's deny, InvalidAMIID.NotFound
// for an image the caller cannot see, InvalidParameterValue for a type that does not run it, else
// DryRunOperation). A fake, not moto: moto 5.2.1 shows no shared image to another account, has no
// GetAllowedImagesSettings, and its dry run checks neither the image nor the type (AWS-EMULATOR notes).
import { awsError } from './common.ts';

export interface FakeMembership {
  organizationArn: string;
  /** The OUs on the account's path from the root, the root included (as ARNs). */
  ouArns: string[];
}

/** Images as EC2's launch rules need them: owner, launch permissions, architecture and boot mode. */
export interface LaunchableImage {
  owner: string;
  architecture: string;
  bootMode?: string;
  launchPermissions: { OrganizationArn?: string; OrganizationalUnitArn?: string; UserId?: string }[];
}

interface AllowedSettings {
  State: 'enabled' | 'audit-mode' | 'disabled';
  ImageCriteria: { ImageProviders?: string[] }[];
}

/** EC2's DescribeInstanceTypes answers for the types the tests use. */
const INSTANCE_TYPES: Record<string, { arch: string[]; boot: string[] }> = {
  't3.micro': { arch: ['x86_64'], boot: ['legacy-bios', 'uefi'] },
  'm7i.large': { arch: ['x86_64'], boot: ['legacy-bios', 'uefi'] },
  't2.micro': { arch: ['i386', 'x86_64'], boot: ['legacy-bios'] },
  't4g.micro': { arch: ['arm64'], boot: ['uefi'] },
  'm7g.large': { arch: ['arm64'], boot: ['uefi'] },
};

export class FakeEc2Accounts {
  /** Which Organization and OUs an account belongs to; undefined: none. */
  membership: (accountId: string) => FakeMembership | undefined = () => undefined;
  readonly #allowed = new Map<string, AllowedSettings>();
  readonly #denied = new Map<string, string>();

  setAllowedImages(accountId: string, settings: AllowedSettings): void {
    this.#allowed.set(accountId, structuredClone(settings));
  }
  /** A service control policy that denies ec2:RunInstances to the account (its statement, for the message). */
  denyLaunches(accountId: string, statement: string): void {
    this.#denied.set(accountId, statement);
  }

  allowedImagesSettings(accountId: string): AllowedSettings & { ManagedBy: string } {
    return {
      ...(this.#allowed.get(accountId) ?? { State: 'disabled', ImageCriteria: [] }),
      ManagedBy: 'account',
    };
  }

  /** Whether Allowed AMIs admits an image of `owner` for the account (EC2's ImageAllowed). */
  imageAllowed(accountId: string, owner: string): boolean | undefined {
    const s = this.#allowed.get(accountId);
    if (!s || s.State === 'disabled') return undefined;
    return owner === accountId || s.ImageCriteria.some((c) => c.ImageProviders?.includes(owner));
  }

  /** DescribeImages' view: launch permission, and not hidden by an enabled Allowed AMIs setting. */
  visible(image: LaunchableImage, accountId: string): boolean {
    if (image.owner === accountId) return true;
    const member = this.membership(accountId);
    const permitted = image.launchPermissions.some(
      (p) =>
        p.UserId === accountId ||
        (member !== undefined &&
          (p.OrganizationArn === member.organizationArn ||
            (p.OrganizationalUnitArn !== undefined && member.ouArns.includes(p.OrganizationalUnitArn)))),
    );
    if (!permitted) return false;
    return !(this.#allowed.get(accountId)?.State === 'enabled' && !this.imageAllowed(accountId, image.owner));
  }

  describeInstanceTypes(types: string[] | undefined) {
    for (const t of types ?? [])
      if (!INSTANCE_TYPES[t])
        throw awsError('InvalidInstanceType', `The following supplied instance types do not exist: [${t}]`);
    return {
      InstanceTypes: (types ?? []).map((t) => ({
        InstanceType: t,
        ProcessorInfo: { SupportedArchitectures: INSTANCE_TYPES[t]?.arch },
        SupportedBootModes: INSTANCE_TYPES[t]?.boot,
      })),
    };
  }

  /** RunInstances with DryRun: always throws, DryRunOperation when the launch would have gone through. */
  dryRun(
    image: (LaunchableImage & { state: string }) | undefined,
    input: { ImageId?: string; InstanceType?: string },
    accountId: string,
  ): never {
    const scp = this.#denied.get(accountId);
    if (scp)
      throw awsError(
        'UnauthorizedOperation',
        `You are not authorized to perform this operation. User: arn:aws:sts::${accountId}:assumed-role/stemcell-subscriber is not authorized to perform: ec2:RunInstances with an explicit deny in a service control policy (${scp})`,
      );
    if (image?.state !== 'available' || !this.visible(image, accountId))
      throw awsError('InvalidAMIID.NotFound', `The image id '[${input.ImageId}]' does not exist`);
    const type = INSTANCE_TYPES[input.InstanceType ?? 'm1.small'];
    if (!type)
      throw awsError('InvalidParameterValue', `Invalid value '${input.InstanceType}' for InstanceType.`);
    if (!type.arch.includes(image.architecture))
      throw awsError(
        'InvalidParameterValue',
        `The architecture '${type.arch.join(',')}' of the specified instance type does not match the architecture '${image.architecture}' of the specified AMI.`,
      );
    if (image.bootMode && !type.boot.includes(image.bootMode))
      throw awsError(
        'InvalidParameterCombination',
        `The instance type '${input.InstanceType}' does not support the boot mode '${image.bootMode}' of the AMI.`,
      );
    throw awsError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
  }
}
