// A scripted LaunchView for core and handler unit tests: every account sees every image and may launch it,
// until a test changes one answer (hide the image, deny the key, drop the grant, enable Allowed AMIs, refuse the
// dry run). Every question asked is recorded, in order.
import { instanceTypeInfo } from '#core/images/instance-types.ts';
import { AUTO_SCALING_GRANT_NEEDS } from '#core/images/launchable.ts';
import type {
  AllowedImagesSettings,
  Denied,
  DryRunInput,
  DryRunVerdict,
  InstanceTypeInfo,
  KeyDescription,
  LaunchModel,
  LaunchView,
  VisibleImage,
} from '#ports';

export const PUBLISHER = '111111111111';
export const FAKE_KEY_ARN = `arn:aws:kms:eu-west-1:${PUBLISHER}:key/mrk-0123456789abcdef0123456789abcdef`;

export class FakeLaunchView implements LaunchView {
  readonly accountId: string;
  readonly region: string;
  /** The questions asked: `describeImage ami-…`, `dryRun ami-… t3.micro`, … */
  readonly asked: string[] = [];
  hidden = false;
  /** Fields of the image as the account sees it, over the defaults below. */
  image: Partial<VisibleImage> = {};
  keyDenied: string | undefined;
  keyState = 'Enabled';
  grants: string[] | Denied = [...AUTO_SCALING_GRANT_NEEDS];
  allowed: AllowedImagesSettings = { state: 'disabled', criteria: [] };
  /** Instance types the region describes; the local model's table otherwise. */
  types: Record<string, InstanceTypeInfo | undefined> = {};
  dryRunAnswer: DryRunVerdict = { allowed: true };

  constructor(accountId: string, region: string) {
    this.accountId = accountId;
    this.region = region;
  }

  async describeImage(imageId: string): Promise<VisibleImage | undefined> {
    this.asked.push(`describeImage ${imageId}`);
    if (this.hidden) return undefined;
    return {
      imageId,
      name: `stemcell/web/${imageId}`,
      ownerId: PUBLISHER,
      state: 'available',
      architecture: 'x86_64',
      bootMode: 'none',
      encrypted: true,
      kmsKeyId: FAKE_KEY_ARN,
      createdAt: '2026-11-20T10:00:00.000Z',
      ...this.image,
    };
  }
  async describeKey(keyId: string): Promise<KeyDescription | Denied> {
    this.asked.push(`describeKey ${keyId}`);
    if (this.keyDenied) return { denied: this.keyDenied };
    return {
      keyId: 'mrk-0123456789abcdef0123456789abcdef',
      arn: keyId,
      accountId: PUBLISHER,
      state: this.keyState,
    };
  }
  async grantedOperations(keyArn: string, granteePrincipal: string): Promise<string[] | Denied> {
    this.asked.push(`grantedOperations ${keyArn} ${granteePrincipal}`);
    return this.grants;
  }
  async allowedImages(): Promise<AllowedImagesSettings> {
    this.asked.push('allowedImages');
    return this.allowed;
  }
  async describeInstanceType(instanceType: string): Promise<InstanceTypeInfo | undefined> {
    this.asked.push(`describeInstanceType ${instanceType}`);
    return instanceType in this.types ? this.types[instanceType] : instanceTypeInfo(instanceType);
  }
  async dryRun(input: DryRunInput): Promise<DryRunVerdict> {
    this.asked.push(`dryRun ${input.imageId} ${input.instanceType} ${input.via}`);
    return this.dryRunAnswer;
  }
}

export class FakeLaunchModel implements LaunchModel {
  readonly views = new Map<string, FakeLaunchView>();
  forAccount(accountId: string, region: string): FakeLaunchView {
    const key = `${accountId}/${region}`;
    let view = this.views.get(key);
    if (!view) {
      view = new FakeLaunchView(accountId, region);
      this.views.set(key, view);
    }
    return view;
  }
}
