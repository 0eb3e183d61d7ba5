// Images (AMIs) on EC2: register from a snapshot (encrypted, ENA, IMDSv2 only), share with the
// Organization or OUs by full ARN, deprecate, deregister. RegisterImage takes no ClientToken: the AMI name
// is unique per account and region, so InvalidAMIName.Duplicate means "already registered" and we return it.
import {
  CreateTagsCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  type Image,
  type LaunchPermission,
  ModifyImageAttributeCommand,
  paginateDescribeImages,
  RegisterImageCommand,
  type RegisterImageCommandInput,
} from '@aws-sdk/client-ec2';
import type { BootMode } from '#core/model/types.ts';
import type { ImageInfo, Images, RegisterImageInput, Tags } from '#ports';
import { isError, retrying, type Sleep, THROTTLING } from './retry.ts';
import { fromTagList, tagFilter, tagSpecifications, toTagList } from './tags.ts';

const ORG_ARN = /^arn:aws[a-z-]*:organizations::\d{12}:organization\/o-[a-z0-9]+$/;
const OU_ARN =
  /^arn:aws[a-z-]*:organizations::\d{12}:(ou\/o-[a-z0-9]+\/ou-[a-z0-9-]+|root\/o-[a-z0-9]+\/r-[a-z0-9]+)$/;

export class Ec2Images implements Images {
  readonly #ec2: EC2Client;
  readonly #sleep: Sleep | undefined;

  constructor(options: { client?: EC2Client; sleep?: Sleep } = {}) {
    this.#ec2 = options.client ?? new EC2Client({ retryMode: 'adaptive' });
    this.#sleep = options.sleep;
  }

  async register(input: RegisterImageInput): Promise<{ imageId: string; created: boolean }> {
    const request: RegisterImageCommandInput = {
      Name: input.name,
      Description: input.description,
      Architecture: input.architecture,
      RootDeviceName: input.rootDeviceName,
      VirtualizationType: 'hvm',
      EnaSupport: true,
      ImdsSupport: 'v2.0',
      BlockDeviceMappings: [
        {
          DeviceName: input.rootDeviceName,
          // Encryption and the key come from the (encrypted) snapshot.
          Ebs: { SnapshotId: input.snapshotId, VolumeType: 'gp3', DeleteOnTermination: true },
        },
      ],
      TagSpecifications: tagSpecifications('image', input.tags),
    };
    if (input.bootMode !== 'none') request.BootMode = input.bootMode;
    try {
      const out = await retrying(() => this.#ec2.send(new RegisterImageCommand(request)), {
        on: THROTTLING,
        ...(this.#sleep ? { sleep: this.#sleep } : {}),
      });
      if (!out.ImageId) throw new Error(`RegisterImage ${input.name} returned no ImageId`);
      return { imageId: out.ImageId, created: true };
    } catch (err) {
      if (!isError(err, 'InvalidAMIName.Duplicate')) throw err;
      const existing = await this.findByName(input.name);
      if (!existing) throw new Error(`AMI name ${input.name} is taken, but no image of ours has it`);
      return { imageId: existing.imageId, created: false };
    }
  }

  async get(imageId: string): Promise<ImageInfo | undefined> {
    try {
      const out = await this.#ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
      const image = out.Images?.[0];
      return image ? this.#toImageInfo(image) : undefined;
    } catch (err) {
      if (isError(err, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')) return undefined;
      throw err;
    }
  }

  async findByName(name: string): Promise<ImageInfo | undefined> {
    const found = await this.#list([{ Name: 'name', Values: [name] }]);
    return found[0];
  }

  async listByTag(key: string, value: string): Promise<ImageInfo[]> {
    return this.#list([tagFilter(key, value)]);
  }

  async share(imageId: string, to: { organizationArns: string[]; ouArns: string[] }): Promise<void> {
    for (const arn of to.organizationArns) {
      if (!ORG_ARN.test(arn)) throw new Error(`share ${imageId}: ${arn} is not a full organization ARN`);
    }
    for (const arn of to.ouArns) {
      if (!OU_ARN.test(arn)) throw new Error(`share ${imageId}: ${arn} is not a full OU ARN`);
    }
    const add: LaunchPermission[] = [
      ...to.organizationArns.map((OrganizationArn) => ({ OrganizationArn })),
      ...to.ouArns.map((OrganizationalUnitArn) => ({ OrganizationalUnitArn })),
    ];
    if (add.length === 0) return;
    await retrying(
      () =>
        this.#ec2.send(
          new ModifyImageAttributeCommand({
            ImageId: imageId,
            Attribute: 'launchPermission',
            LaunchPermission: { Add: add },
          }),
        ),
      { on: THROTTLING, ...(this.#sleep ? { sleep: this.#sleep } : {}) },
    );
  }

  async deprecate(imageId: string, at: Date): Promise<void> {
    await this.#ec2.send(new EnableImageDeprecationCommand({ ImageId: imageId, DeprecateAt: at }));
  }

  async tag(imageId: string, tags: Tags): Promise<void> {
    await this.#ec2.send(new CreateTagsCommand({ Resources: [imageId], Tags: toTagList(tags) }));
  }

  async deregister(imageId: string): Promise<void> {
    try {
      await this.#ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
    } catch (err) {
      if (isError(err, 'InvalidAMIID.NotFound', 'InvalidAMIID.Unavailable')) return;
      throw err;
    }
  }

  async #list(filters: { Name: string; Values: string[] }[]): Promise<ImageInfo[]> {
    const images: ImageInfo[] = [];
    const pages = paginateDescribeImages({ client: this.#ec2 }, { Owners: ['self'], Filters: filters });
    for await (const page of pages)
      for (const image of page.Images ?? []) images.push(await this.#toImageInfo(image));
    return images;
  }

  async #toImageInfo(image: Image): Promise<ImageInfo> {
    const imageId = image.ImageId ?? '';
    const root = image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs;
    const state =
      image.State === 'available' || image.State === 'failed' || image.State === 'deregistered'
        ? image.State
        : 'pending';
    const bootMode: BootMode =
      image.BootMode === 'uefi' || image.BootMode === 'legacy-bios' ? image.BootMode : 'none';
    const info: ImageInfo = {
      imageId,
      name: image.Name ?? '',
      state,
      snapshotId: root?.SnapshotId ?? '',
      architecture: image.Architecture === 'arm64' ? 'arm64' : 'x86_64',
      bootMode,
      encrypted: root?.Encrypted === true,
      kmsKeyId: root?.KmsKeyId ?? '',
      tags: fromTagList(image.Tags),
      createdAt: image.CreationDate ?? '',
      sharedWith: await this.#sharedWith(imageId),
    };
    if (image.DeprecationTime) info.deprecatedAt = image.DeprecationTime;
    return info;
  }

  async #sharedWith(imageId: string): Promise<ImageInfo['sharedWith']> {
    const out = await this.#ec2.send(
      new DescribeImageAttributeCommand({ ImageId: imageId, Attribute: 'launchPermission' }),
    );
    const shared: ImageInfo['sharedWith'] = { organizationArns: [], ouArns: [], accountIds: [] };
    for (const p of out.LaunchPermissions ?? []) {
      if (p.OrganizationArn) shared.organizationArns.push(p.OrganizationArn);
      if (p.OrganizationalUnitArn) shared.ouArns.push(p.OrganizationalUnitArn);
      if (p.UserId) shared.accountIds.push(p.UserId);
    }
    return shared;
  }
}
