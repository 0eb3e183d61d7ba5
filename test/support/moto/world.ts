// stemcell deployed on moto, end to end: one moto server, an AWS Organization in it, the three deployment units
// deployed from their templates (deploy.ts), the Lambda service running the functions (lambda-runtime.ts), a
// builder per region (builders.ts), and the member accounts' own launch templates and Auto Scaling groups.
// The test drives it the way people do (upload a tarball, let time pass, run an operator command) and reads
// what a user sees.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AutoScalingClient, CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import {
  CreateLaunchTemplateCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeImagesCommand,
  DescribeLaunchTemplatesCommand,
  DescribeLaunchTemplateVersionsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  EventBridgeClient,
  ListRuleNamesByTargetCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  GetFunctionConfigurationCommand,
  LambdaClient,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import {
  CreateAccountCommand,
  CreateOrganizationalUnitCommand,
  CreateOrganizationCommand,
  DescribeCreateAccountStatusCommand,
  ListRootsCommand,
  MoveAccountCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { HOME_ACCOUNT, MotoAccounts } from './accounts.ts';
import { type Builder, startBuilder } from './builders.ts';
import { type DeployedStack, deployServerless, deployTemplate } from './deploy.ts';
import { LambdaRuntime } from './lambda-runtime.ts';
import { type MotoServer, startMoto } from './server.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const INFRA = join(ROOT, 'infra');
const run = promisify(execFile);

export interface BusEvent {
  'detail-type': string;
  source: string;
  account: string;
  region: string;
  detail: Record<string, unknown> & { releaseId?: string; stream?: string };
}

export interface Member {
  id: string;
  name: string;
  ou: string;
}

export class MotoWorld {
  readonly moto: MotoServer;
  readonly accounts: MotoAccounts;
  readonly runtime: LambdaRuntime;
  readonly home = HOME_ACCOUNT;
  readonly homeRegion: string;
  readonly regions: string[];
  readonly dir: string;
  readonly members: Member[] = [];
  readonly builders: Builder[] = [];
  readonly regionStacks = new Map<string, DeployedStack>();
  readonly busEvents: BusEvent[] = [];
  organization = { id: '', arn: '', rootId: '' };
  ous = new Map<string, string>();
  homeStack: DeployedStack | undefined;
  #observer = '';

  private constructor(moto: MotoServer, dir: string, homeRegion: string, regions: string[]) {
    this.moto = moto;
    this.dir = dir;
    this.homeRegion = homeRegion;
    this.regions = regions;
    this.accounts = new MotoAccounts(moto.endpoint);
    this.runtime = new LambdaRuntime({ moto, accounts: this.accounts });
  }

  static async start(options: { homeRegion: string; regions: string[] }): Promise<MotoWorld> {
    const moto = await startMoto();
    try {
      const dir = await mkdtemp(join(tmpdir(), 'stemcell-moto-e2e-'));
      const world = new MotoWorld(moto, dir, options.homeRegion, options.regions);
      world.runtime.start();
      return world;
    } catch (err) {
      await moto.stop();
      throw err;
    }
  }

  client<T>(
    ctor: new (config: ReturnType<MotoAccounts['config']>) => T,
    account: string,
    region?: string,
  ): T {
    return this.accounts.client(ctor, account, region ?? this.homeRegion);
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.builders.map((b) => b.stop()));
    await this.runtime.stop().catch(() => undefined);
    await this.moto.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------------- Organization
  async createOrganization(ous: string[]): Promise<void> {
    const org = this.client(OrganizationsClient, this.home, 'us-east-1');
    const created = (await org.send(new CreateOrganizationCommand({ FeatureSet: 'ALL' }))).Organization;
    const rootId = (await org.send(new ListRootsCommand({}))).Roots?.[0]?.Id ?? '';
    this.organization = { id: created?.Id ?? '', arn: created?.Arn ?? '', rootId };
    for (const name of ous) {
      const ou = await org.send(new CreateOrganizationalUnitCommand({ ParentId: rootId, Name: name }));
      this.ous.set(name, ou.OrganizationalUnit?.Id ?? '');
    }
  }

  /** A new account of the Organization, moved into an OU (what an account factory does). */
  async createAccount(name: string, ou: string): Promise<Member> {
    const org = this.client(OrganizationsClient, this.home, 'us-east-1');
    const request = await org.send(
      new CreateAccountCommand({ AccountName: name, Email: `${name}@example.com` }),
    );
    const status = await org.send(
      new DescribeCreateAccountStatusCommand({ CreateAccountRequestId: request.CreateAccountStatus?.Id }),
    );
    const id = status.CreateAccountStatus?.AccountId ?? '';
    const ouId = this.ous.get(ou) ?? '';
    await org.send(
      new MoveAccountCommand({
        AccountId: id,
        SourceParentId: this.organization.rootId,
        DestinationParentId: ouId,
      }),
    );
    const member = { id, name, ou };
    this.members.push(member);
    return member;
  }

  // ---------------------------------------------------------------------------------------------- stacks
  /** README step 1: the home stack, then the configuration in its bucket. */
  async deployHome(packageDir: string, config: string): Promise<DeployedStack> {
    const stack = await deployServerless(this.accounts, {
      account: this.home,
      region: this.homeRegion,
      stackName: 'stemcell-ci',
      packageDir,
    });
    this.homeStack = stack;
    await this.uploadConfig(config);
    await this.#observeCentralBus();
    await this.runtime.watchEventSources(this.home, this.homeRegion);
    this.runtime.watchSchedules(this.home, this.homeRegion);
    await this.runtime.provision(this.home, this.homeRegion);
    return stack;
  }

  async uploadConfig(config: string): Promise<void> {
    await this.client(S3Client, this.home).send(
      new PutObjectCommand({
        Bucket: this.output('TarballBucketName'),
        Key: 'config/stemcell.config.yml',
        Body: config,
      }),
    );
  }

  output(name: string): string {
    const value = this.homeStack?.outputs[name];
    if (!value) throw new Error(`the home stack has no output ${name}`);
    return value;
  }

  /** README step 2: the artifact buckets the member stacks read the subscriber's code from. */
  async uploadArtifacts(subscriberZip: Buffer): Promise<void> {
    for (const region of this.regions) {
      const s3 = this.client(S3Client, this.home, region);
      const bucket = `stemcell-artifacts-${region}`;
      await s3.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ...(region === 'us-east-1'
            ? {}
            : { CreateBucketConfiguration: { LocationConstraint: region as never } }),
        }),
      );
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'subscriber/subscriber.zip', Body: subscriberZip }),
      );
    }
  }

  /** README step 3: a VPC and subnet of the account's, then infra/region.yml with its parameters. */
  async deployRegion(region: string): Promise<DeployedStack> {
    const ec2 = this.client(EC2Client, this.home, region);
    const vpc = (await ec2.send(new CreateVpcCommand({ CidrBlock: '10.0.0.0/16' }))).Vpc?.VpcId ?? '';
    const az = `${region}a`;
    const subnet =
      (
        await ec2.send(
          new CreateSubnetCommand({ VpcId: vpc, CidrBlock: '10.0.1.0/24', AvailabilityZone: az }),
        )
      ).Subnet?.SubnetId ?? '';
    // The builder AMI comes through an SSM parameter (Debian's public one by default, which moto lacks).
    await this.client(SSMClient, this.home, region).send(
      new PutParameterCommand({
        Name: '/stemcell-e2e/builder-image',
        Type: 'String',
        Value: 'ami-0b5c1a3d2e4f60718',
      }),
    );
    const stack = await deployTemplate(this.accounts, {
      account: this.home,
      region,
      stackName: 'stemcell-region',
      templatePath: join(INFRA, 'region.yml'),
      parameters: {
        HomeRegion: this.homeRegion,
        OrganizationId: this.organization.id,
        StemcellKeyId: this.output('StemcellKeyId'),
        TarballBucketName: this.output('TarballBucketName'),
        ReleaseTableName: this.output('ReleaseTableName'),
        BuilderPackageBucket: `stemcell-artifacts-${this.homeRegion}`,
        VpcId: vpc,
        BuilderSubnetIds: subnet,
        BuilderImageId: '/stemcell-e2e/builder-image',
        // One builder always in service: moto runs no alarm, so the fleet's scale-out from zero never happens.
        MinBuilders: '1',
      },
    });
    this.regionStacks.set(region, stack);
    return stack;
  }

  /** README step 4: infra/member.yml in every region of the account, as the StackSet's instances. */
  async deployMember(member: Member): Promise<void> {
    // One stack instance per region, at once (the StackSet's regional concurrency).
    await Promise.all(
      this.regions.map((region) =>
        deployTemplate(this.accounts, {
          account: member.id,
          region,
          stackName: 'stemcell-member',
          templatePath: join(INFRA, 'member.yml'),
          parameters: {
            PublisherAccountId: this.home,
            HomeRegion: this.homeRegion,
            OrganizationId: this.organization.id,
            StemcellKeyId: this.output('StemcellKeyId'),
            SubscriberCodeBucketPrefix: 'stemcell-artifacts',
            ExpireRoleName: this.homeStack?.resources.ExpireRole ?? '',
          },
        }),
      ),
    );
    await this.runtime.watchEventSources(member.id, this.homeRegion);
    await this.runtime.provision(member.id, this.homeRegion);
  }

  /** README "Opting in": a launch template per stream (and an Auto Scaling group for one) in every region. */
  async optIn(
    member: Member,
    templates: { name: string; stream: string; refreshGroup?: string }[],
  ): Promise<void> {
    for (const region of this.regions) {
      const ec2 = this.client(EC2Client, member.id, region);
      for (const t of templates) {
        const lt = await ec2.send(
          new CreateLaunchTemplateCommand({
            LaunchTemplateName: t.name,
            LaunchTemplateData: { ImageId: 'ami-00000000000000000', InstanceType: 't3.micro' },
            TagSpecifications: [
              { ResourceType: 'launch-template', Tags: [{ Key: 'stemcell:stream', Value: t.stream }] },
            ],
          }),
        );
        if (!t.refreshGroup) continue;
        // No instances: a refresh's outcome is the test's to set (moto replaces none).
        await this.client(AutoScalingClient, member.id, region).send(
          new CreateAutoScalingGroupCommand({
            AutoScalingGroupName: t.refreshGroup,
            LaunchTemplate: {
              LaunchTemplateId: lt.LaunchTemplate?.LaunchTemplateId ?? '',
              Version: '$Default',
            },
            MinSize: 0,
            MaxSize: 2,
            DesiredCapacity: 0,
            AvailabilityZones: [`${region}a`],
            Tags: [
              { Key: 'stemcell:stream', Value: t.stream, PropagateAtLaunch: true },
              { Key: 'stemcell:refresh', Value: 'true', PropagateAtLaunch: false },
            ],
          }),
        );
      }
    }
  }

  async startBuilders(): Promise<void> {
    await Promise.all(
      this.regions.map(async (region) => {
        const stack = this.regionStacks.get(region);
        if (!stack) throw new Error(`no region stack in ${region}`);
        this.builders.push(
          await startBuilder(this.accounts, { stack, stateDir: join(this.dir, 'builders') }),
        );
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------- time and events
  /** The time of a scheduled rule (rate(…)) of a function has come. */
  async fireSchedule(functionName: string): Promise<void> {
    const rule = await this.#scheduledRule(functionName);
    await this.moto.api('fire-rule', { account: this.home, region: this.homeRegion, rule });
  }

  async #scheduledRule(functionName: string): Promise<string> {
    const events = this.client(EventBridgeClient, this.home);
    const arn = `arn:aws:lambda:${this.homeRegion}:${this.home}:function:stemcell-ci-${functionName}`;
    const names = (await events.send(new ListRuleNamesByTargetCommand({ TargetArn: arn }))).RuleNames ?? [];
    const scheduled = names.find((n) => n.startsWith(`stemcell-ci-${functionName}-rule-`));
    if (!scheduled) throw new Error(`no scheduled rule targets ${arn}`);
    return scheduled;
  }

  /** A rule on the central bus that copies stemcell's events to a queue the test reads (as an archive would). */
  async #observeCentralBus(): Promise<void> {
    const sqs = this.client(SQSClient, this.home);
    this.#observer =
      (await sqs.send(new CreateQueueCommand({ QueueName: 'e2e-central-bus-observer' }))).QueueUrl ?? '';
    const events = this.client(EventBridgeClient, this.home);
    await events.send(
      new PutRuleCommand({
        Name: 'e2e-observer',
        EventBusName: 'stemcell',
        EventPattern: JSON.stringify({ source: ['stemcell'] }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: 'e2e-observer',
        EventBusName: 'stemcell',
        Targets: [
          { Id: 'observer', Arn: `arn:aws:sqs:${this.homeRegion}:${this.home}:e2e-central-bus-observer` },
        ],
      }),
    );
  }

  /** Every event seen on the central bus so far. */
  async centralBus(): Promise<BusEvent[]> {
    const sqs = this.client(SQSClient, this.home);
    for (;;) {
      const out = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl: this.#observer, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      const messages = out.Messages ?? [];
      if (messages.length === 0) return this.busEvents;
      for (const m of messages) this.busEvents.push(JSON.parse(m.Body ?? '{}') as BusEvent);
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.#observer,
          Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    }
  }

  /**
   * Nothing runs and nothing waits: no invocation in flight, and every queue but the dead-letter ones and the
   * observer empty (messages in flight included), twice in a row.
   */
  async quiet(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let calm = 0;
    while (calm < 2) {
      if (Date.now() > deadline)
        throw new Error(`the flow did not settle within ${timeoutMs} ms: ${await this.#busy()}`);
      calm = (await this.#busy()) === '' ? calm + 1 : 0;
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  async #busy(): Promise<string> {
    if (!this.runtime.idle) return 'invocations running';
    const { queues } = await this.moto.api<{
      queues: { account: string; region: string; name: string; visible: number; inFlight: number }[];
    }>('queues');
    const busy = queues.filter((q) => !/dlq|DLQ|observer/.test(q.name) && q.visible + q.inFlight > 0);
    return busy
      .map((q) => `${q.account}/${q.region}/${q.name}: ${q.visible} + ${q.inFlight} in flight`)
      .join(', ');
  }

  async waitFor<T>(
    what: string,
    probe: () => Promise<T | undefined | false>,
    timeoutMs = 60_000,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await probe();
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  }

  /** `aws lambda update-function-configuration` of one environment variable (the others kept). */
  async setFunctionVariable(functionName: string, name: string, value: string): Promise<void> {
    const lambda = this.client(LambdaClient, this.home);
    const current = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
    await lambda.send(
      new UpdateFunctionConfigurationCommand({
        FunctionName: functionName,
        Environment: { Variables: { ...(current.Environment?.Variables ?? {}), [name]: value } },
      }),
    );
    // Lambda runs the next invocations in new environments, with the new configuration.
    await this.runtime.recycle(current.FunctionArn ?? functionName);
  }

  // ---------------------------------------------------------------------------------------------- what users see
  /** A member's launch template: its default version, that version's image and description. */
  async launchTemplate(
    account: string,
    region: string,
    name: string,
  ): Promise<{ defaultVersion: number; imageId: string; description: string; versions: number }> {
    const ec2 = this.client(EC2Client, account, region);
    const lt = (await ec2.send(new DescribeLaunchTemplatesCommand({ LaunchTemplateNames: [name] })))
      .LaunchTemplates?.[0];
    const version = (
      await ec2.send(
        new DescribeLaunchTemplateVersionsCommand({ LaunchTemplateName: name, Versions: ['$Default'] }),
      )
    ).LaunchTemplateVersions?.[0];
    return {
      defaultVersion: lt?.DefaultVersionNumber ?? 0,
      imageId: version?.LaunchTemplateData?.ImageId ?? '',
      description: version?.VersionDescription ?? '',
      versions: lt?.LatestVersionNumber ?? 0,
    };
  }

  async parameter(account: string, region: string, name: string): Promise<string | undefined> {
    try {
      const out = await this.client(SSMClient, account, region).send(new GetParameterCommand({ Name: name }));
      return out.Parameter?.Value;
    } catch (err) {
      if ((err as Error).name === 'ParameterNotFound') return undefined;
      throw err;
    }
  }

  /** The home account's image of a stream revision in a region, as DescribeImages shows it (or undefined). */
  async image(
    region: string,
    stream: string,
    revision: string,
  ): Promise<{ imageId: string; deprecationTime?: string; tags: Record<string, string> } | undefined> {
    const out = await this.client(EC2Client, this.home, region).send(
      new DescribeImagesCommand({
        Owners: ['self'],
        Filters: [{ Name: 'name', Values: [`stemcell/${stream}/${revision}`] }],
      }),
    );
    const image = out.Images?.[0];
    if (!image?.ImageId) return undefined;
    return {
      imageId: image.ImageId,
      ...(image.DeprecationTime ? { deprecationTime: image.DeprecationTime } : {}),
      tags: Object.fromEntries((image.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
    };
  }

  /** Whether an image id still exists for its owner (DescribeImages by id). */
  async imageExists(region: string, imageId: string): Promise<boolean> {
    try {
      const out = await this.client(EC2Client, this.home, region).send(
        new DescribeImagesCommand({ ImageIds: [imageId] }),
      );
      return (out.Images ?? []).some((i) => i.ImageId === imageId && i.State !== 'deregistered');
    } catch (err) {
      if ((err as Error).name.startsWith('InvalidAMIID')) return false;
      throw err;
    }
  }

  /** `stemcell status --table … --json`, run as a user runs it, against this world's AWS. */
  async status(): Promise<StatusRelease[]> {
    const keys = await this.accounts.credentials(this.home);
    const { stdout } = await run(
      process.execPath,
      [
        join(ROOT, 'src/cli/main.ts'),
        'status',
        '--table',
        this.output('ReleaseTableName'),
        '--region',
        this.homeRegion,
        '--json',
        '--limit',
        '10',
      ],
      {
        cwd: ROOT,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? '',
          AWS_ACCESS_KEY_ID: keys.accessKeyId,
          AWS_SECRET_ACCESS_KEY: keys.secretAccessKey,
          AWS_ENDPOINT_URL: this.accounts.endpoint,
        },
      },
    );
    return JSON.parse(stdout) as StatusRelease[];
  }
}

/** What `stemcell status --json` prints per release (the fields the e2e reads). */
export interface StatusRelease {
  releaseId: string;
  stream: string;
  revision: string;
  sequence: number;
  completedAt?: string;
  regions: Record<
    string,
    { state: string; imageId?: string; reason?: string; bootCheck?: { passed?: boolean } }
  >;
  accounts: Record<string, { accountId: string; region: string; outcome: string; instanceRefresh?: string }>;
  rollout?: string;
  waves: { name: string; state: string; accounts: string[] }[];
  halted: { wave: string; reason: string } | null;
}
