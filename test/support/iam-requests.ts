// From traced SDK calls to the IAM requests AWS authorizes for them: the action, every resource the action
// authorizes (EC2 checks each resource of a call on its own: the image and the snapshot of RegisterImage),
// the context keys the policies test (tags at creation, resource tags, kms:ViaService …), and the requests a
// call implies on other services with the caller's credentials:
//   - S3 objects encrypted with the customer key: kms:Decrypt through S3;
//   - encrypted EBS volumes created or attached: KMS through EC2 (DescribeKey, GenerateDataKeyWithoutPlaintext,
//     CreateGrant for an AWS resource, Decrypt);
//   - an instance launched from an image with encrypted snapshots: the key actions the EBS user guide lists for
//     users of encrypted snapshots (DescribeKey, CreateGrant, GenerateDataKeyWithoutPlaintext, ReEncrypt*,
//     Decrypt), through EC2 (not for a dry run, which restores nothing);
//   - EBS direct-API snapshots (StartSnapshot, GetSnapshotBlock): KMS through EBS on the snapshot's key;
//   - SSM parameters of data type aws:ec2:image: ec2:DescribeImages, which SSM calls as the caller;
//   - EventBridge targets and EventBridge Scheduler schedules with a RoleArn: iam:PassRole;
//   - PutEvents to another account's bus: that bus's policy decides too.
import type { TracedCall } from './sdk-trace.ts';

export interface IamRequest {
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
  /** Where the request came from, for messages. */
  origin: string;
}

/** What the world looks like around the calls: tags of existing resources, the key behind S3 objects. */
export interface RequestWorld {
  account: string;
  /** Tags of an EC2 resource by id (image, snapshot, volume, instance, launch template), or of an ASG by name. */
  tagsOf(id: string): Record<string, string>;
  /** The KMS key ARN that encrypts objects of a bucket (SSE-KMS), if any. */
  bucketKey(bucket: string): string | undefined;
  /** The key ARN of an EBS volume or snapshot, or of an image's snapshot. */
  ebsKeyOf(id: string): string | undefined;
  /** The account that owns an image (ec2:Owner), if known. */
  imageOwner(id: string): string | undefined;
}

type Input = Record<string, unknown>;
const str = (v: unknown) => (v === undefined || v === null ? '' : String(v));

function tagContext(prefix: 'aws:RequestTag' | 'aws:ResourceTag', tags: Record<string, string>) {
  const context: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(tags)) context[`${prefix}/${k}`] = v;
  if (prefix === 'aws:RequestTag') context['aws:TagKeys'] = Object.keys(tags);
  return context;
}

function specTags(input: Input, type: string): Record<string, string> {
  const specs =
    (input.TagSpecifications as { ResourceType?: string; Tags?: { Key: string; Value: string }[] }[]) ?? [];
  return Object.fromEntries(
    (specs.find((s) => s.ResourceType === type)?.Tags ?? []).map((t) => [t.Key, t.Value]),
  );
}

/** "arn:aws:events:eu-west-1:111:event-bus/x" or a bus name → the bus ARN. */
function busArn(nameOrArn: unknown, region: string, account: string): string {
  const s = str(nameOrArn) || 'default';
  return s.startsWith('arn:') ? s : `arn:aws:events:${region}:${account}:event-bus/${s}`;
}

function queueArn(url: unknown): string {
  const u = new URL(str(url));
  const [, account, name] = u.pathname.split('/');
  const region = u.hostname.split('.')[1];
  return `arn:aws:sqs:${region}:${account}:${name}`;
}

/** The IAM requests one traced call makes, its implied ones included. */
export function requestsFor(call: TracedCall, world: RequestWorld): IamRequest[] {
  const { service, command, input, region } = call;
  const account = world.account;
  const origin = `${service}:${command}`;
  const out: IamRequest[] = [];
  const add = (action: string, resource: string, context: Record<string, string | string[]> = {}) =>
    out.push({ action, resource, context, origin });
  const ec2 = (type: string, id: string, owned = true) =>
    `arn:aws:ec2:${region}:${owned ? account : ''}:${type}/${id}`;
  const kmsThroughEc2 = (keyArn: string | undefined, ops: string[]) => {
    if (!keyArn) return;
    for (const op of ops) {
      const context: Record<string, string> = { 'kms:ViaService': `ec2.${region}.amazonaws.com` };
      if (op === 'CreateGrant') context['kms:GrantIsForAWSResource'] = 'true';
      add(`kms:${op}`, keyArn, context);
    }
  };

  const kmsThroughEbs = (keyArn: string | undefined, ops: string[]) => {
    if (!keyArn) return;
    for (const op of ops) {
      const context: Record<string, string> = { 'kms:ViaService': `ebs.${region}.amazonaws.com` };
      if (op === 'CreateGrant') context['kms:GrantIsForAWSResource'] = 'true';
      add(`kms:${op}`, keyArn, context);
    }
  };

  switch (`${service}:${command}`) {
    // ---- calls that need no permission
    case 'sts:GetCallerIdentity':
      return [];
    // ---- S3
    case 's3:PutObject': {
      add('s3:PutObject', `arn:aws:s3:::${str(input.Bucket)}/${str(input.Key)}`, {
        'aws:SecureTransport': 'true',
      });
      // SSE-KMS: S3 asks KMS for a data key with the caller's credentials.
      const key = world.bucketKey(str(input.Bucket));
      if (key) add('kms:GenerateDataKey', key, { 'kms:ViaService': `s3.${region}.amazonaws.com` });
      return out;
    }
    case 's3:GetObject':
    case 's3:HeadObject': {
      add('s3:GetObject', `arn:aws:s3:::${str(input.Bucket)}/${str(input.Key)}`, {
        'aws:SecureTransport': 'true',
      });
      const key = world.bucketKey(str(input.Bucket));
      if (key) add('kms:Decrypt', key, { 'kms:ViaService': `s3.${region}.amazonaws.com` });
      return out;
    }
    // ---- DynamoDB (lib-dynamodb document commands)
    case 'dynamodb:Get':
    case 'dynamodb:Update':
    case 'dynamodb:Put':
    case 'dynamodb:Delete': {
      const action = { Get: 'GetItem', Update: 'UpdateItem', Put: 'PutItem', Delete: 'DeleteItem' }[command];
      add(`dynamodb:${action}`, `arn:aws:dynamodb:${region}:${account}:table/${str(input.TableName)}`);
      return out;
    }
    case 'dynamodb:Query':
    case 'dynamodb:Scan':
      add(`dynamodb:${command}`, `arn:aws:dynamodb:${region}:${account}:table/${str(input.TableName)}`);
      return out;
    case 'dynamodb:TransactWrite': {
      // No IAM action of its own: each item's operation is authorized.
      const ops: Record<string, string> = {
        Put: 'PutItem',
        Update: 'UpdateItem',
        Delete: 'DeleteItem',
        ConditionCheck: 'ConditionCheckItem',
      };
      for (const item of (input.TransactItems as Record<string, { TableName?: string }>[]) ?? []) {
        for (const [op, body] of Object.entries(item)) {
          add(`dynamodb:${ops[op]}`, `arn:aws:dynamodb:${region}:${account}:table/${str(body.TableName)}`);
        }
      }
      return out;
    }
    // ---- SQS
    case 'sqs:SendMessage':
    case 'sqs:ReceiveMessage':
    case 'sqs:DeleteMessage':
    case 'sqs:ChangeMessageVisibility':
    case 'sqs:DeleteMessageBatch':
    case 'sqs:ChangeMessageVisibilityBatch':
    case 'sqs:GetQueueAttributes': {
      const action = command.replace(/Batch$/, '');
      add(`sqs:${action}`, queueArn(input.QueueUrl));
      return out;
    }
    case 'sqs:GetQueueUrl':
      add(
        'sqs:GetQueueUrl',
        `arn:aws:sqs:${region}:${str(input.QueueOwnerAWSAccountId) || account}:${str(input.QueueName)}`,
      );
      return out;
    // ---- EventBridge
    case 'events:PutEvents': {
      for (const e of (input.Entries as { EventBusName?: string }[]) ?? []) {
        add('events:PutEvents', busArn(e.EventBusName, region, account));
      }
      return out;
    }
    case 'events:ListRules':
      add('events:ListRules', '*');
      return out;
    case 'events:ListEventBuses':
      add('events:ListEventBuses', '*');
      return out;
    case 'events:CreateEventBus': {
      const arn = busArn(str(input.Name), region, account);
      add('events:CreateEventBus', arn);
      if ((input.Tags as unknown[] | undefined)?.length) add('events:TagResource', arn);
      return out;
    }
    case 'events:ListTargetsByRule':
    case 'events:PutRule':
    case 'events:DeleteRule':
    case 'events:DescribeRule':
    case 'events:PutTargets':
    case 'events:RemoveTargets': {
      const bus = str(input.EventBusName) || 'default';
      const rule = str(input.Rule ?? input.Name);
      const arn = `arn:aws:events:${region}:${account}:rule/${bus === 'default' ? '' : `${bus}/`}${rule}`;
      add(`events:${command}`, arn);
      if (command === 'PutTargets') {
        for (const t of (input.Targets as { RoleArn?: string }[]) ?? []) {
          if (t.RoleArn) add('iam:PassRole', t.RoleArn, { 'iam:PassedToService': 'events.amazonaws.com' });
        }
      }
      return out;
    }
    // ---- EventBridge Scheduler (the bake timers of rollout waves)
    case 'scheduler:CreateSchedule': {
      const group = str(input.GroupName) || 'default';
      add(
        'scheduler:CreateSchedule',
        `arn:aws:scheduler:${region}:${account}:schedule/${group}/${str(input.Name)}`,
      );
      const target = input.Target as { RoleArn?: string } | undefined;
      if (target?.RoleArn)
        add('iam:PassRole', target.RoleArn, { 'iam:PassedToService': 'scheduler.amazonaws.com' });
      return out;
    }
    // ---- CloudWatch (DescribeAlarms authorizes each alarm named)
    case 'cloudwatch:PutMetricData':
      add('cloudwatch:PutMetricData', '*', { 'cloudwatch:namespace': str(input.Namespace) });
      return out;
    case 'cloudwatch:DescribeAlarms':
      for (const name of (input.AlarmNames as string[] | undefined) ?? ['*'])
        add('cloudwatch:DescribeAlarms', `arn:aws:cloudwatch:${region}:${account}:alarm:${name}`);
      return out;
    // ---- Organizations (no resource-level permissions for these reads)
    case 'organizations:DescribeOrganization':
    case 'organizations:ListAccounts':
    case 'organizations:ListAccountsForParent':
    case 'organizations:ListOrganizationalUnitsForParent':
      add(`organizations:${command}`, '*');
      return out;
    // ---- STS
    case 'sts:AssumeRole':
      add('sts:AssumeRole', str(input.RoleArn));
      return out;
    // ---- EC2 reads without resource-level permissions
    case 'ec2:DescribeImages':
    case 'ec2:DescribeSnapshots':
    case 'ec2:DescribeVolumes':
    case 'ec2:DescribeVolumesModifications':
    case 'ec2:DescribeInstances':
    case 'ec2:DescribeLaunchTemplates':
    case 'ec2:DescribeLaunchTemplateVersions':
    case 'ec2:DescribeInstanceStatus':
    case 'ec2:DescribeInstanceTypes':
    case 'ec2:GetAllowedImagesSettings':
      add(`ec2:${command}`, '*');
      return out;
    // ---- EC2 instances (the boot gate's smoke instances)
    case 'ec2:RunInstances': {
      // EC2 authorizes every resource the launch touches, each on its own.
      const image = str(input.ImageId);
      const owner = world.imageOwner(image);
      add('ec2:RunInstances', ec2('image', image, false), {
        ...tagContext('aws:ResourceTag', world.tagsOf(image)),
        ...(owner ? { 'ec2:Owner': owner } : {}),
      });
      for (const type of ['instance', 'volume']) {
        const tags = specTags(input, type);
        add('ec2:RunInstances', ec2(type, '*'), tagContext('aws:RequestTag', tags));
        if (Object.keys(tags).length > 0)
          add('ec2:CreateTags', ec2(type, '*'), {
            ...tagContext('aws:RequestTag', tags),
            'ec2:CreateAction': 'RunInstances',
          });
      }
      add('ec2:RunInstances', ec2('network-interface', '*'));
      if (input.SubnetId) add('ec2:RunInstances', ec2('subnet', str(input.SubnetId)));
      for (const sg of (input.SecurityGroupIds as string[]) ?? [])
        add('ec2:RunInstances', ec2('security-group', sg));
      const profile = (input.IamInstanceProfile as { Arn?: string } | undefined)?.Arn;
      if (profile) add('iam:PassRole', profile, { 'iam:PassedToService': 'ec2.amazonaws.com' });
      // A dry run is authorized like the launch, but restores no volume: EBS asks nothing of the key.
      if (input.DryRun) return out;
      kmsThroughEc2(world.ebsKeyOf(image), [
        'DescribeKey',
        'CreateGrant',
        'GenerateDataKeyWithoutPlaintext',
        'ReEncryptFrom',
        'ReEncryptTo',
        'Decrypt',
      ]);
      return out;
    }
    case 'ec2:GetConsoleOutput': {
      const id = str(input.InstanceId);
      add('ec2:GetConsoleOutput', ec2('instance', id), tagContext('aws:ResourceTag', world.tagsOf(id)));
      return out;
    }
    case 'ec2:TerminateInstances': {
      for (const id of (input.InstanceIds as string[]) ?? [])
        add('ec2:TerminateInstances', ec2('instance', id), tagContext('aws:ResourceTag', world.tagsOf(id)));
      return out;
    }
    case 'ec2:CreateTags': {
      // Tags on an existing resource (not at creation): the resource's own tags and the requested ones.
      const tags = Object.fromEntries(
        ((input.Tags as { Key: string; Value: string }[]) ?? []).map((t) => [t.Key, t.Value]),
      );
      for (const id of (input.Resources as string[]) ?? []) {
        const type = id.startsWith('ami-') ? 'image' : id.startsWith('i-') ? 'instance' : 'volume';
        add('ec2:CreateTags', ec2(type, id, type !== 'image'), {
          ...tagContext('aws:ResourceTag', world.tagsOf(id)),
          ...tagContext('aws:RequestTag', tags),
        });
      }
      return out;
    }
    // ---- EC2 images
    case 'ec2:DescribeImageAttribute':
    case 'ec2:ModifyImageAttribute':
    case 'ec2:EnableImageDeprecation':
    case 'ec2:DeregisterImage': {
      const id = str(input.ImageId);
      add(`ec2:${command}`, ec2('image', id, false), tagContext('aws:ResourceTag', world.tagsOf(id)));
      return out;
    }
    case 'ec2:RegisterImage': {
      const tags = specTags(input, 'image');
      add('ec2:RegisterImage', ec2('image', '*', false), tagContext('aws:RequestTag', tags));
      for (const m of (input.BlockDeviceMappings as { Ebs?: { SnapshotId?: string } }[]) ?? []) {
        const snap = m.Ebs?.SnapshotId;
        if (snap)
          add(
            'ec2:RegisterImage',
            ec2('snapshot', snap, false),
            tagContext('aws:ResourceTag', world.tagsOf(snap)),
          );
      }
      if (Object.keys(tags).length > 0)
        add('ec2:CreateTags', ec2('image', '*', false), {
          ...tagContext('aws:RequestTag', tags),
          'ec2:CreateAction': 'RegisterImage',
        });
      return out;
    }
    // ---- EC2 snapshots
    case 'ec2:CreateSnapshot': {
      const tags = specTags(input, 'snapshot');
      const volume = str(input.VolumeId);
      add('ec2:CreateSnapshot', ec2('snapshot', '*', false), tagContext('aws:RequestTag', tags));
      add('ec2:CreateSnapshot', ec2('volume', volume), tagContext('aws:ResourceTag', world.tagsOf(volume)));
      if (Object.keys(tags).length > 0)
        add('ec2:CreateTags', ec2('snapshot', '*', false), {
          ...tagContext('aws:RequestTag', tags),
          'ec2:CreateAction': 'CreateSnapshot',
        });
      return out;
    }
    case 'ec2:DeleteSnapshot': {
      const id = str(input.SnapshotId);
      add('ec2:DeleteSnapshot', ec2('snapshot', id, false), tagContext('aws:ResourceTag', world.tagsOf(id)));
      return out;
    }
    // ---- EBS direct APIs (snapshots written block by block). Their resource is the EC2 snapshot ARN. KMS is
    // asked with the caller's credentials, as for EBS volumes: for a first snapshot, to make its data key under
    // the named key; for a child, to use its parent's key; to read an encrypted block back. The calling service
    // is taken to be EBS's own endpoint (ebs.<region>.amazonaws.com): infra/region.yml admits it and EC2's.
    case 'ebs:StartSnapshot': {
      const tags = Object.fromEntries(
        ((input.Tags as { Key: string; Value: string }[]) ?? []).map((t) => [t.Key, t.Value]),
      );
      const parent = str(input.ParentSnapshotId);
      add('ebs:StartSnapshot', ec2('snapshot', '*', false), {
        ...tagContext('aws:RequestTag', tags),
        'ebs:VolumeSize': str(input.VolumeSize),
        ...(parent ? { 'ebs:ParentSnapshot': ec2('snapshot', parent, false) } : {}),
      });
      if (parent) kmsThroughEbs(world.ebsKeyOf(parent), ['DescribeKey', 'CreateGrant', 'Decrypt']);
      else if (input.Encrypted)
        kmsThroughEbs(str(input.KmsKeyArn) || undefined, [
          'DescribeKey',
          'GenerateDataKeyWithoutPlaintext',
          'CreateGrant',
        ]);
      return out;
    }
    case 'ebs:PutSnapshotBlock':
    case 'ebs:CompleteSnapshot':
    case 'ebs:ListSnapshotBlocks':
    case 'ebs:GetSnapshotBlock': {
      const id = str(input.SnapshotId);
      add(`ebs:${command}`, ec2('snapshot', id, false), tagContext('aws:ResourceTag', world.tagsOf(id)));
      if (command === 'GetSnapshotBlock') kmsThroughEbs(world.ebsKeyOf(id), ['Decrypt']);
      return out;
    }
    // ---- EC2 volumes
    case 'ec2:CreateVolume': {
      const tags = specTags(input, 'volume');
      add('ec2:CreateVolume', ec2('volume', '*'), tagContext('aws:RequestTag', tags));
      if (Object.keys(tags).length > 0)
        add('ec2:CreateTags', ec2('volume', '*'), {
          ...tagContext('aws:RequestTag', tags),
          'ec2:CreateAction': 'CreateVolume',
        });
      if (input.Encrypted)
        kmsThroughEc2(str(input.KmsKeyId) || undefined, [
          'DescribeKey',
          'GenerateDataKeyWithoutPlaintext',
          'CreateGrant',
        ]);
      return out;
    }
    case 'ec2:AttachVolume':
    case 'ec2:DetachVolume': {
      const volume = str(input.VolumeId);
      const instance = str(input.InstanceId);
      add(`ec2:${command}`, ec2('volume', volume), tagContext('aws:ResourceTag', world.tagsOf(volume)));
      add(`ec2:${command}`, ec2('instance', instance), tagContext('aws:ResourceTag', world.tagsOf(instance)));
      if (command === 'AttachVolume') kmsThroughEc2(world.ebsKeyOf(volume), ['CreateGrant', 'Decrypt']);
      return out;
    }
    case 'ec2:ModifyVolume': {
      const volume = str(input.VolumeId);
      add('ec2:ModifyVolume', ec2('volume', volume), tagContext('aws:ResourceTag', world.tagsOf(volume)));
      return out;
    }
    // ---- EC2 launch templates
    case 'ec2:CreateLaunchTemplateVersion':
    case 'ec2:ModifyLaunchTemplate': {
      const id = str(input.LaunchTemplateId);
      add(`ec2:${command}`, ec2('launch-template', id), tagContext('aws:ResourceTag', world.tagsOf(id)));
      return out;
    }
    // ---- Auto Scaling
    case 'autoscaling:DescribeAutoScalingGroups':
    case 'autoscaling:DescribeInstanceRefreshes':
      add(`autoscaling:${command}`, '*');
      return out;
    case 'autoscaling:SetInstanceProtection':
    case 'autoscaling:RecordLifecycleActionHeartbeat':
    case 'autoscaling:CompleteLifecycleAction':
      add(
        `autoscaling:${command}`,
        `arn:aws:autoscaling:${region}:${account}:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/${str(input.AutoScalingGroupName)}`,
      );
      return out;
    case 'autoscaling:StartInstanceRefresh': {
      const name = str(input.AutoScalingGroupName);
      add(
        'autoscaling:StartInstanceRefresh',
        `arn:aws:autoscaling:${region}:${account}:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/${name}`,
        tagContext('aws:ResourceTag', world.tagsOf(name)),
      );
      return out;
    }
    case 'autoscaling:CreateOrUpdateTags': {
      // One request per group tagged, with the tags it writes (aws:RequestTag, aws:TagKeys).
      const tags = (input.Tags as { ResourceId?: string; Key: string; Value?: string }[]) ?? [];
      for (const name of new Set(tags.map((t) => str(t.ResourceId)))) {
        const written = Object.fromEntries(
          tags.filter((t) => str(t.ResourceId) === name).map((t) => [t.Key, str(t.Value)]),
        );
        add(
          'autoscaling:CreateOrUpdateTags',
          `arn:aws:autoscaling:${region}:${account}:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/${name}`,
          {
            ...tagContext('aws:ResourceTag', world.tagsOf(name)),
            ...tagContext('aws:RequestTag', written),
          },
        );
      }
      return out;
    }
    // ---- SSM
    case 'ssm:PutParameter':
    case 'ssm:GetParameter': {
      const name = str(input.Name).replace(/^\//, '');
      add(`ssm:${command}`, `arn:aws:ssm:${region}:${account}:parameter/${name}`);
      // SSM validates an aws:ec2:image value by describing the image as the caller.
      if (command === 'PutParameter' && input.DataType === 'aws:ec2:image') add('ec2:DescribeImages', '*');
      return out;
    }
    // ---- KMS (direct)
    case 'kms:Decrypt':
    case 'kms:Encrypt':
    case 'kms:GenerateDataKey':
    case 'kms:CreateGrant':
    case 'kms:RetireGrant':
    case 'kms:DescribeKey':
    case 'kms:ListGrants':
    case 'kms:GetPublicKey':
      add(`kms:${command}`, str(input.KeyId));
      return out;
    default:
      throw new Error(
        `no IAM mapping for ${service}:${command}: add it to test/support/iam-requests.ts (action, resources, context)`,
      );
  }
}
