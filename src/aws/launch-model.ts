// The launch model on AWS. RunInstances with DryRun, as the member account, asks EC2 itself whether the account
// may launch the image with the instance type (launch permission, image state, architecture and boot mode,
// the caller's IAM): DryRunOperation means yes. A dry run does not touch the customer key, so the key is
// checked from the owner's side: DescribeKey (enabled?) and, for a launch through Auto Scaling, ListGrants for
// the account's Auto Scaling service-linked role (the grant infra/member.yml creates). When EC2 refuses, the
// reason is spelled out from DescribeImages / DescribeImageAttribute (the Images adapter) next to EC2's message.
import { type EC2Client, RunInstancesCommand } from '@aws-sdk/client-ec2';
import { DescribeKeyCommand, type KMSClient, paginateListGrants } from '@aws-sdk/client-kms';
import type { Images, LaunchModel, LaunchRequest, LaunchVerdict } from '#ports';
import { errorName } from './retry.ts';

/** What EBS needs from a grant to create and attach a volume from the encrypted snapshot. */
const GRANT_NEEDS = ['Decrypt', 'CreateGrant', 'GenerateDataKeyWithoutPlaintext', 'ReEncryptFrom'];

export interface Ec2LaunchModelOptions {
  /** EC2 in the member account (a role assumed there: it needs ec2:RunInstances for the dry run). */
  memberEc2(accountId: string, region: string): EC2Client;
  /** The publisher's images of a region (DescribeImages / DescribeImageAttribute as the owner). */
  images(region: string): Images;
  /** KMS of the key's owner, in the region of the image (its multi-Region key replica). */
  ownerKms(region: string): KMSClient;
  partition?: string;
}

export class Ec2LaunchModel implements LaunchModel {
  readonly #opts: Ec2LaunchModelOptions;

  constructor(opts: Ec2LaunchModelOptions) {
    this.#opts = opts;
  }

  async check(request: LaunchRequest): Promise<LaunchVerdict> {
    const { accountId, region, imageId, instanceType } = request;
    try {
      await this.#opts.memberEc2(accountId, region).send(
        new RunInstancesCommand({
          DryRun: true,
          ImageId: imageId,
          InstanceType: instanceType as never,
          MinCount: 1,
          MaxCount: 1,
        }),
      );
      // Without DryRun semantics the call would have launched: never expected, and nothing to judge by.
      return refused(`RunInstances as ${accountId} did not honour DryRun`);
    } catch (err) {
      if (errorName(err) !== 'DryRunOperation') return refused(await this.#explain(request, err));
    }
    const image = await this.#opts.images(region).get(imageId);
    if (!image?.encrypted) return { launchable: true };
    return this.#checkKey(request, image.kmsKeyId);
  }

  async #checkKey(request: LaunchRequest, keyId: string): Promise<LaunchVerdict> {
    const kms = this.#opts.ownerKms(request.region);
    const key = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata;
    if (key?.KeyState !== 'Enabled') return refused(`key ${keyId} is ${key?.KeyState ?? 'not found'}`);
    if (request.via !== 'auto-scaling') return { launchable: true };
    const grantee = `arn:${this.#opts.partition ?? 'aws'}:iam::${request.accountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    const operations = new Set<string>();
    for await (const page of paginateListGrants(
      { client: kms },
      { KeyId: key.Arn ?? keyId, GranteePrincipal: grantee },
    )) {
      for (const grant of page.Grants ?? []) for (const op of grant.Operations ?? []) operations.add(op);
    }
    const missing = GRANT_NEEDS.filter((op) => !operations.has(op));
    if (missing.length === 0) return { launchable: true };
    return refused(
      `key ${keyId}: the Auto Scaling role of ${request.accountId} has no grant for ${missing.join(', ')} (infra/member.yml's AutoScalingKeyGrant in ${request.region})`,
    );
  }

  async #explain(request: LaunchRequest, err: unknown): Promise<string> {
    const ec2Said = `RunInstances (dry run) as ${request.accountId}: ${errorName(err) ?? 'error'}: ${(err as Error).message}`;
    const image = await this.#opts
      .images(request.region)
      .get(request.imageId)
      .catch(() => undefined);
    if (!image) return `image ${request.imageId} does not exist in ${request.region}; ${ec2Said}`;
    if (image.state !== 'available') return `image ${request.imageId} is ${image.state}; ${ec2Said}`;
    const to = [
      ...image.sharedWith.organizationArns,
      ...image.sharedWith.ouArns,
      ...image.sharedWith.accountIds,
    ];
    return `${ec2Said} (image ${image.architecture}/${image.bootMode}, shared with ${to.length > 0 ? to.join(', ') : 'nobody'})`;
  }
}

function refused(reason: string): LaunchVerdict {
  return { launchable: false, reason };
}
