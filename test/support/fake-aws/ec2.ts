// Stateful fake of the EC2 calls stemcell makes: volumes (create/attach/detach/modify), snapshots, images
// (register, name uniqueness, launch permissions, deprecation, tags), launch templates and their versions, and
// the boot gate's smoke instances (launch by client token, state, status checks, console output, terminate).
// State changes are immediate (creating → available at once) so waiters succeed on their first poll.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import {
  AttachVolumeCommand,
  CreateLaunchTemplateVersionCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImageAttributeCommand,
  DescribeImagesCommand,
  DescribeInstanceStatusCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSnapshotsCommand,
  DescribeVolumesCommand,
  DescribeVolumesModificationsCommand,
  DetachVolumeCommand,
  EC2Client,
  EnableImageDeprecationCommand,
  GetAllowedImagesSettingsCommand,
  GetConsoleOutputCommand,
  ModifyImageAttributeCommand,
  ModifyLaunchTemplateCommand,
  ModifyVolumeCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { ACCOUNT, awsError, fakeId, matchesFilters, page } from './common.ts';
import { FakeEc2Accounts } from './ec2-launch.ts';

type Tags = Record<string, string>;
const tagsOf = (
  specs: { ResourceType?: string; Tags?: { Key: string; Value: string }[] }[] | undefined,
  type: string,
) =>
  Object.fromEntries((specs?.find((s) => s.ResourceType === type)?.Tags ?? []).map((t) => [t.Key, t.Value]));
const tagList = (tags: Tags) => Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));

interface FakeVolume {
  id: string;
  az: string;
  size: number;
  kmsKeyId: string;
  state: 'available' | 'in-use';
  attachedTo?: { instanceId: string; device: string };
  tags: Tags;
  token?: string;
}
export interface FakeSnapshot {
  id: string;
  volumeId: string;
  state: 'pending' | 'completed';
  kmsKeyId: string;
  description: string;
  tags: Tags;
  volumeSize?: number;
  /** A snapshot of the EBS direct APIs (./ebs.ts): pending until CompleteSnapshot, its blocks by index. */
  direct?: { parentId?: string; blocks: Map<number, Buffer> };
}
interface FakeImage {
  id: string;
  /** The account that registered it. */
  owner: string;
  name: string;
  state: 'available' | 'deregistered';
  snapshotId: string;
  architecture: string;
  bootMode?: string;
  rootDevice: string;
  tags: Tags;
  created: string;
  deprecation?: string;
  launchPermissions: { OrganizationArn?: string; OrganizationalUnitArn?: string; UserId?: string }[];
}
/** A launched instance (the boot gate's smoke instances); the test moves its state and writes its console. */
export interface FakeInstance {
  id: string;
  imageId: string;
  instanceType: string;
  subnetId: string;
  state: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopped';
  launchTime: Date;
  tags: Tags;
  token?: string;
  /** Serial console text GetConsoleOutput returns. */
  console: string;
  status: { system: 'ok' | 'impaired' | 'initializing'; instance: 'ok' | 'impaired' | 'initializing' };
}
interface FakeLaunchTemplate {
  id: string;
  name: string;
  defaultVersion: number;
  versions: {
    number: number;
    imageId?: string;
    instanceType?: string;
    description?: string;
    token?: string;
  }[];
  tags: Tags;
}

export class FakeEc2 {
  readonly volumes = new Map<string, FakeVolume>();
  readonly snapshots = new Map<string, FakeSnapshot>();
  readonly images = new Map<string, FakeImage>();
  readonly launchTemplates = new Map<string, FakeLaunchTemplate>();
  readonly instances = new Map<string, FakeInstance>();
  /** What other accounts see of the images, and their Allowed AMIs settings and launch denials. */
  readonly accounts = new FakeEc2Accounts();
  /** Snapshots complete on the n-th describe after creation (1 = at once). */
  snapshotCompletesAfter = 1;
  readonly #describes = new Map<string, number>();
  readonly pageSize = 2;

  addLaunchTemplate(name: string, tags: Tags, imageId: string, instanceType?: string): FakeLaunchTemplate {
    const lt: FakeLaunchTemplate = {
      id: fakeId('lt'),
      name,
      defaultVersion: 1,
      versions: [{ number: 1, imageId, ...(instanceType ? { instanceType } : {}) }],
      tags,
    };
    this.launchTemplates.set(lt.id, lt);
    return lt;
  }

  /** A client calling as `accountId` (the owner of what it registers; others see only what is shared). */
  /** An available image of `owner` on an encrypted snapshot, as another account's publisher registered it. */
  addImage(input: {
    id: string;
    owner: string;
    kmsKeyId: string;
    architecture?: string;
    bootMode?: string;
  }): void {
    const snapshotId = fakeId('snap');
    this.snapshots.set(snapshotId, {
      id: snapshotId,
      volumeId: fakeId('vol'),
      state: 'completed',
      kmsKeyId: input.kmsKeyId,
      description: '',
      tags: {},
    });
    this.images.set(input.id, {
      id: input.id,
      owner: input.owner,
      name: `stemcell/test/${input.id}`,
      state: 'available',
      snapshotId,
      architecture: input.architecture ?? 'x86_64',
      ...(input.bootMode ? { bootMode: input.bootMode } : {}),
      rootDevice: '/dev/xvda',
      tags: {},
      created: new Date().toISOString(),
      launchPermissions: [],
    });
  }

  /** A client calling as `accountId` (the owner of what it registers; others see only what is shared). */
  client(accountId: string = ACCOUNT): EC2Client {
    const client = new EC2Client({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);

    // ---------------------------------------------------------------- volumes
    const volumeOut = (v: FakeVolume) => ({
      VolumeId: v.id,
      AvailabilityZone: v.az,
      Size: v.size,
      State: v.state,
      Encrypted: true,
      KmsKeyId: v.kmsKeyId,
      VolumeType: 'gp3',
      Tags: tagList(v.tags),
      Attachments: v.attachedTo
        ? [
            {
              InstanceId: v.attachedTo.instanceId,
              Device: v.attachedTo.device,
              State: 'attached',
              VolumeId: v.id,
            },
          ]
        : [],
    });
    mock.on(CreateVolumeCommand).callsFake((input) => {
      if (!input.Encrypted || !input.KmsKeyId)
        throw awsError('InvalidParameterValue', 'stemcell volumes are encrypted');
      const existing = [...this.volumes.values()].find(
        (v) => input.ClientToken && v.token === input.ClientToken,
      );
      if (existing) return volumeOut(existing);
      const v: FakeVolume = {
        id: fakeId('vol'),
        az: input.AvailabilityZone,
        size: input.Size,
        kmsKeyId: input.KmsKeyId,
        state: 'available',
        tags: tagsOf(input.TagSpecifications, 'volume'),
        token: input.ClientToken,
      };
      this.volumes.set(v.id, v);
      return volumeOut(v);
    });
    mock.on(DescribeVolumesCommand).callsFake((input) => {
      let list = [...this.volumes.values()];
      if (input.VolumeIds) {
        for (const id of input.VolumeIds) if (!this.volumes.has(id)) throw awsError('InvalidVolume.NotFound');
        list = list.filter((v) => input.VolumeIds.includes(v.id));
      }
      list = list.filter((v) =>
        matchesFilters(
          (input.Filters ?? []).filter((f: { Name: string }) => f.Name !== 'status'),
          v.tags,
          { 'availability-zone': v.az },
        ),
      );
      const status = input.Filters?.find((f: { Name: string }) => f.Name === 'status');
      if (status) list = list.filter((v) => status.Values.includes(v.state));
      const p = page(list, input.NextToken, input.VolumeIds ? 1000 : this.pageSize);
      return { Volumes: p.items.map(volumeOut), NextToken: p.next };
    });
    const instanceOut = (i: FakeInstance) => ({
      InstanceId: i.id,
      ImageId: i.imageId,
      InstanceType: i.instanceType,
      SubnetId: i.subnetId,
      State: { Name: i.state },
      LaunchTime: i.launchTime,
      Tags: tagList(i.tags),
    });
    mock.on(DescribeInstancesCommand).callsFake((input) => {
      if (input.Filters) {
        const list = [...this.instances.values()].filter((i) =>
          (input.Filters as { Name: string; Values: string[] }[]).every((f) =>
            f.Name === 'tag-key'
              ? f.Values.some((k) => k in i.tags)
              : f.Name === 'instance-state-name'
                ? f.Values.includes(i.state)
                : matchesFilters([f], i.tags),
          ),
        );
        return { Reservations: list.length ? [{ Instances: list.map(instanceOut) }] : [] };
      }
      const id = input.InstanceIds?.[0];
      const used = [...this.volumes.values()]
        .filter((v) => v.attachedTo?.instanceId === id)
        .map((v) => ({ DeviceName: v.attachedTo?.device }));
      return {
        Reservations: [
          { Instances: [{ InstanceId: id, BlockDeviceMappings: [{ DeviceName: '/dev/xvda' }, ...used] }] },
        ],
      };
    });
    mock.on(RunInstancesCommand).callsFake((input) => {
      if (input.DryRun) {
        const candidate = this.images.get(input.ImageId);
        this.accounts.dryRun(candidate && { ...candidate, state: candidate.state }, input, accountId);
      }
      const image = this.images.get(input.ImageId);
      if (image?.state !== 'available') throw awsError('InvalidAMIID.NotFound');
      const existing = [...this.instances.values()].find(
        (i) => input.ClientToken && i.token === input.ClientToken,
      );
      const i: FakeInstance = existing ?? {
        id: fakeId('i'),
        imageId: input.ImageId,
        instanceType: input.InstanceType,
        subnetId: input.SubnetId,
        state: 'pending',
        launchTime: new Date(),
        tags: tagsOf(input.TagSpecifications, 'instance'),
        token: input.ClientToken,
        console: '',
        status: { system: 'initializing', instance: 'initializing' },
      };
      this.instances.set(i.id, i);
      return { Instances: [instanceOut(i)] };
    });
    mock.on(DescribeInstanceStatusCommand).callsFake((input) => ({
      InstanceStatuses: (input.InstanceIds ?? [])
        .map((id: string) => this.instances.get(id))
        .filter(Boolean)
        .map((i: FakeInstance) => ({
          InstanceId: i.id,
          InstanceState: { Name: i.state },
          SystemStatus: { Status: i.status.system },
          InstanceStatus: { Status: i.status.instance },
        })),
    }));
    mock.on(GetConsoleOutputCommand).callsFake((input) => {
      const i = this.instances.get(input.InstanceId);
      if (!i) throw awsError('InvalidInstanceID.NotFound');
      return { InstanceId: i.id, Output: Buffer.from(i.console, 'utf8').toString('base64') };
    });
    mock.on(TerminateInstancesCommand).callsFake((input) => {
      for (const id of input.InstanceIds ?? [])
        if (!this.instances.has(id)) throw awsError('InvalidInstanceID.NotFound');
      return {
        TerminatingInstances: (input.InstanceIds ?? []).map((id: string) => {
          const i = this.instances.get(id) as FakeInstance;
          const previous = i.state;
          i.state = 'terminated';
          return {
            InstanceId: id,
            PreviousState: { Name: previous },
            CurrentState: { Name: 'shutting-down' },
          };
        }),
      };
    });
    mock.on(CreateTagsCommand).callsFake((input) => {
      for (const id of input.Resources ?? []) {
        const target = this.images.get(id) ?? this.instances.get(id);
        if (!target) throw awsError('InvalidID', `${id} not found`);
        for (const t of input.Tags ?? []) target.tags[t.Key] = t.Value;
      }
      return {};
    });
    mock.on(AttachVolumeCommand).callsFake((input) => {
      const v = this.volumes.get(input.VolumeId);
      if (!v) throw awsError('InvalidVolume.NotFound');
      if (v.state !== 'available') throw awsError('IncorrectState', `volume ${v.id} is ${v.state}`);
      v.state = 'in-use';
      v.attachedTo = { instanceId: input.InstanceId, device: input.Device };
      return { State: 'attaching', VolumeId: v.id, InstanceId: input.InstanceId, Device: input.Device };
    });
    mock.on(DetachVolumeCommand).callsFake((input) => {
      const v = this.volumes.get(input.VolumeId);
      if (!v) throw awsError('InvalidVolume.NotFound');
      if (v.state !== 'in-use') throw awsError('IncorrectState', `volume ${v.id} is not attached`);
      v.state = 'available';
      v.attachedTo = undefined;
      return { State: 'detaching' };
    });
    mock.on(ModifyVolumeCommand).callsFake((input) => {
      const v = this.volumes.get(input.VolumeId);
      if (!v) throw awsError('InvalidVolume.NotFound');
      if (input.Size < v.size) throw awsError('InvalidParameterValue', 'volumes only grow');
      v.size = input.Size;
      return { VolumeModification: { VolumeId: v.id, ModificationState: 'modifying' } };
    });
    mock.on(DescribeVolumesModificationsCommand).callsFake((input) => ({
      VolumesModifications: (input.VolumeIds ?? []).map((id: string) => ({
        VolumeId: id,
        ModificationState: 'optimizing',
      })),
    }));

    // ---------------------------------------------------------------- snapshots
    const snapshotOut = (s: FakeSnapshot) => {
      const seen = (this.#describes.get(s.id) ?? 0) + 1;
      this.#describes.set(s.id, seen);
      if (seen >= this.snapshotCompletesAfter && !s.direct) s.state = 'completed';
      return {
        SnapshotId: s.id,
        VolumeId: s.volumeId,
        State: s.state,
        ...(s.volumeSize ? { VolumeSize: s.volumeSize } : {}),
        Encrypted: true,
        KmsKeyId: s.kmsKeyId,
        Description: s.description,
        Tags: tagList(s.tags),
      };
    };
    mock.on(CreateSnapshotCommand).callsFake((input) => {
      const v = this.volumes.get(input.VolumeId);
      if (!v) throw awsError('InvalidVolume.NotFound');
      const s: FakeSnapshot = {
        id: fakeId('snap'),
        volumeId: v.id,
        state: 'pending',
        kmsKeyId: v.kmsKeyId,
        description: input.Description ?? '',
        tags: tagsOf(input.TagSpecifications, 'snapshot'),
      };
      this.snapshots.set(s.id, s);
      return {
        SnapshotId: s.id,
        VolumeId: v.id,
        State: 'pending',
        KmsKeyId: s.kmsKeyId,
        Tags: tagList(s.tags),
      };
    });
    mock.on(DescribeSnapshotsCommand).callsFake((input) => {
      let list = [...this.snapshots.values()];
      if (input.SnapshotIds) {
        for (const id of input.SnapshotIds)
          if (!this.snapshots.has(id)) throw awsError('InvalidSnapshot.NotFound');
        list = list.filter((s) => input.SnapshotIds.includes(s.id));
      }
      list = list.filter((s) => matchesFilters(input.Filters, s.tags));
      const p = page(list, input.NextToken, input.SnapshotIds ? 1000 : this.pageSize);
      return { Snapshots: p.items.map(snapshotOut), NextToken: p.next };
    });
    mock.on(DeleteSnapshotCommand).callsFake((input) => {
      if (!this.snapshots.has(input.SnapshotId)) throw awsError('InvalidSnapshot.NotFound');
      const usedBy = [...this.images.values()].find(
        (i) => i.state !== 'deregistered' && i.snapshotId === input.SnapshotId,
      );
      if (usedBy) throw awsError('InvalidSnapshot.InUse', `snapshot is in use by ${usedBy.id}`);
      this.snapshots.delete(input.SnapshotId);
      return {};
    });

    // ---------------------------------------------------------------- images
    const imageOut = (i: FakeImage) => {
      const s = this.snapshots.get(i.snapshotId);
      const allowed = this.accounts.imageAllowed(accountId, i.owner);
      return {
        ImageId: i.id,
        OwnerId: i.owner,
        ...(allowed === undefined ? {} : { ImageAllowed: allowed }),
        Name: i.name,
        State: i.state,
        Architecture: i.architecture,
        BootMode: i.bootMode,
        RootDeviceName: i.rootDevice,
        CreationDate: i.created,
        DeprecationTime: i.deprecation,
        Tags: tagList(i.tags),
        BlockDeviceMappings: [
          {
            DeviceName: i.rootDevice,
            Ebs: { SnapshotId: i.snapshotId, Encrypted: true, KmsKeyId: s?.kmsKeyId },
          },
        ],
      };
    };
    mock.on(RegisterImageCommand).callsFake((input) => {
      if ([...this.images.values()].some((i) => i.name === input.Name && i.state !== 'deregistered')) {
        throw awsError('InvalidAMIName.Duplicate', `AMI name ${input.Name} is already in use`);
      }
      const snapshotId = input.BlockDeviceMappings?.[0]?.Ebs?.SnapshotId;
      if (!this.snapshots.has(snapshotId)) throw awsError('InvalidSnapshot.NotFound');
      const i: FakeImage = {
        id: fakeId('ami'),
        owner: accountId,
        name: input.Name,
        state: 'available',
        snapshotId,
        architecture: input.Architecture,
        bootMode: input.BootMode,
        rootDevice: input.RootDeviceName,
        tags: tagsOf(input.TagSpecifications, 'image'),
        created: new Date().toISOString(),
        launchPermissions: [],
      };
      this.images.set(i.id, i);
      return { ImageId: i.id };
    });
    mock.on(DescribeImagesCommand).callsFake((input) => {
      let list = [...this.images.values()].filter(
        (i) => i.state !== 'deregistered' && this.accounts.visible(i, accountId),
      );
      if (input.ImageIds) {
        for (const id of input.ImageIds) {
          const image = this.images.get(id);
          if (!image || !this.accounts.visible(image, accountId)) throw awsError('InvalidAMIID.NotFound');
        }
        list = list.filter((i) => input.ImageIds.includes(i.id));
      }
      list = list.filter((i) => matchesFilters(input.Filters, i.tags, { name: i.name }));
      const p = page(list, input.NextToken, input.ImageIds ? 1000 : this.pageSize);
      return { Images: p.items.map(imageOut), NextToken: p.next };
    });
    mock.on(DescribeImageAttributeCommand).callsFake((input) => {
      const i = this.images.get(input.ImageId);
      if (!i) throw awsError('InvalidAMIID.NotFound');
      return { ImageId: i.id, LaunchPermissions: i.launchPermissions };
    });
    mock.on(ModifyImageAttributeCommand).callsFake((input) => {
      const i = this.images.get(input.ImageId);
      if (!i) throw awsError('InvalidAMIID.NotFound');
      for (const p of input.LaunchPermission?.Add ?? []) {
        if (!i.launchPermissions.some((q) => JSON.stringify(q) === JSON.stringify(p)))
          i.launchPermissions.push(p);
      }
      return {};
    });
    mock.on(EnableImageDeprecationCommand).callsFake((input) => {
      const i = this.images.get(input.ImageId);
      if (!i) throw awsError('InvalidAMIID.NotFound');
      i.deprecation = new Date(input.DeprecateAt).toISOString();
      return { Return: true };
    });
    mock.on(DeregisterImageCommand).callsFake((input) => {
      const i = this.images.get(input.ImageId);
      if (!i || i.state === 'deregistered') throw awsError('InvalidAMIID.NotFound');
      i.state = 'deregistered';
      return {};
    });

    mock.on(GetAllowedImagesSettingsCommand).callsFake(() => this.accounts.allowedImagesSettings(accountId));
    mock
      .on(DescribeInstanceTypesCommand)
      .callsFake((input) => this.accounts.describeInstanceTypes(input.InstanceTypes));

    // ---------------------------------------------------------------- launch templates
    mock.on(DescribeLaunchTemplatesCommand).callsFake((input) => {
      const list = [...this.launchTemplates.values()].filter((lt) => matchesFilters(input.Filters, lt.tags));
      const p = page(list, input.NextToken, this.pageSize);
      return {
        LaunchTemplates: p.items.map((lt) => ({
          LaunchTemplateId: lt.id,
          LaunchTemplateName: lt.name,
          DefaultVersionNumber: lt.defaultVersion,
          LatestVersionNumber: lt.versions.length,
          Tags: tagList(lt.tags),
        })),
        NextToken: p.next,
      };
    });
    mock.on(DescribeLaunchTemplateVersionsCommand).callsFake((input) => {
      const lt = this.launchTemplates.get(input.LaunchTemplateId);
      if (!lt) throw awsError('InvalidLaunchTemplateId.NotFound');
      // Without Versions, EC2 lists every version of the template.
      const wanted = input.Versions?.map(Number);
      return {
        LaunchTemplateVersions: lt.versions
          .filter((v) => !wanted || wanted.includes(v.number))
          .map((v) => ({
            LaunchTemplateId: lt.id,
            VersionNumber: v.number,
            VersionDescription: v.description,
            LaunchTemplateData: { ImageId: v.imageId, InstanceType: v.instanceType },
          })),
      };
    });
    mock.on(CreateLaunchTemplateVersionCommand).callsFake((input) => {
      const lt = this.launchTemplates.get(input.LaunchTemplateId);
      if (!lt) throw awsError('InvalidLaunchTemplateId.NotFound');
      let v = lt.versions.find((x) => input.ClientToken && x.token === input.ClientToken);
      if (!v) {
        const source = lt.versions.find((x) => String(x.number) === String(input.SourceVersion));
        v = {
          number: lt.versions.length + 1,
          imageId: input.LaunchTemplateData?.ImageId,
          ...(source?.instanceType ? { instanceType: source.instanceType } : {}),
          description: input.VersionDescription,
          token: input.ClientToken,
        };
        lt.versions.push(v);
      }
      return {
        LaunchTemplateVersion: {
          LaunchTemplateId: lt.id,
          VersionNumber: v.number,
          VersionDescription: v.description,
          LaunchTemplateData: { ImageId: v.imageId },
        },
      };
    });
    mock.on(ModifyLaunchTemplateCommand).callsFake((input) => {
      const lt = this.launchTemplates.get(input.LaunchTemplateId);
      if (!lt) throw awsError('InvalidLaunchTemplateId.NotFound');
      const n = Number(input.DefaultVersion);
      if (!lt.versions.some((v) => v.number === n)) throw awsError('InvalidLaunchTemplateVersion.NotFound');
      lt.defaultVersion = n;
      return { LaunchTemplate: { LaunchTemplateId: lt.id, DefaultVersionNumber: n } };
    });
    return client;
  }
}
