// The deployment the role-vs-code tests run against: the three templates resolved for one Organization
// (home account 111111111111 in eu-west-1 with a second build region us-east-1, member account 222222222222),
// their roles as simulator principals, the resource policies (keys, buses, trust policies, the bucket), and
// the SDK clients of every service routed to stateful fakes through a trace.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation !Sub strings are written with ${…}
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { S3Client } from '@aws-sdk/client-s3';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { asList, loadCfnYaml, resourcesOfType, type Template } from './cfn.ts';
import { ResolvedTemplate } from './cfn-resolve.ts';
import { FakeAutoScaling } from './fake-aws/autoscaling.ts';
import { FakeCloudWatch } from './fake-aws/cloudwatch.ts';
import { FakeDynamoTable } from './fake-aws/dynamodb.ts';
import { FakeEc2 } from './fake-aws/ec2.ts';
import { FakeEventBridge } from './fake-aws/eventbridge.ts';
import { FakeKms } from './fake-aws/kms.ts';
import { FakeOrganizations } from './fake-aws/organizations.ts';
import { FakeS3 } from './fake-aws/s3.ts';
import { FakeScheduler } from './fake-aws/scheduler.ts';
import { FakeSqsFifo } from './fake-aws/sqs.ts';
import { FakeSsm } from './fake-aws/ssm.ts';
import { type IamRequest, type RequestWorld, requestsFor } from './iam-requests.ts';
import { ResourcePolicies, type RolePrincipal, rolePrincipal, simulate, type Verdict } from './roles.ts';
import { SdkTrace, type TracedCall } from './sdk-trace.ts';

export const HOME = '111111111111';
export const MEMBER = '222222222222';
export const OTHER_MEMBER = '333333333333';
export const HOME_REGION = 'eu-west-1';
export const BUILD_REGIONS = ['eu-west-1', 'us-east-1'];
export const ORG_ID = 'o-exampleorg01';
export const KEY_ID = 'mrk-0123456789abcdef0123456789abcdef';

const INFRA = new URL('../../infra/', import.meta.url).pathname;

export class RoleWorld {
  readonly home: ResolvedTemplate;
  readonly regions: Map<string, ResolvedTemplate>;
  readonly member: ResolvedTemplate;
  readonly resources = new ResourcePolicies();
  /** Each call's IAM requests are made as it is sent: tags and keys as the call saw them. */
  readonly trace = new SdkTrace((call) => requestsFor(call, this.requestWorld(this.#accountOf(call))));
  readonly fakes = {
    s3: new FakeS3(),
    dynamodb: new FakeDynamoTable(),
    sqs: new FakeSqsFifo(),
    events: new FakeEventBridge({ pageSize: 100 }),
    /** EC2 is regional (AMI names are unique per region): one fake per region. */
    ec2: new Map(BUILD_REGIONS.map((r) => [r, new FakeEc2()])),
    organizations: new FakeOrganizations({
      id: ORG_ID,
      managementAccountId: HOME,
      rootId: 'r-ab12',
      ous: { 'ou-ab12-11111111': 'r-ab12' },
      accounts: [
        { id: HOME, name: 'publisher', parent: 'r-ab12' },
        { id: MEMBER, name: 'prod-a', parent: 'ou-ab12-11111111' },
        { id: OTHER_MEMBER, name: 'prod-b', parent: 'ou-ab12-11111111' },
      ],
    }),
    autoScaling: new FakeAutoScaling(),
    ssm: new FakeSsm(),
    kms: new FakeKms(),
    scheduler: new FakeScheduler(),
    cloudwatch: new FakeCloudWatch(),
  };
  /** The account STS GetCallerIdentity answers with (the process's own credentials). */
  callerAccount = HOME;
  /** Instance ids the builder runs on, with the tags the builder group gives them. */
  readonly instanceTags = new Map<string, Record<string, string>>();

  constructor(serverless: Template) {
    this.home = new ResolvedTemplate(serverless, {
      account: HOME,
      region: HOME_REGION,
      stackName: 'stemcell-ci',
      parameters: {},
    });
    const regionYml = loadCfnYaml(`${INFRA}region.yml`);
    this.regions = new Map(
      BUILD_REGIONS.map((region) => [
        region,
        new ResolvedTemplate(regionYml, {
          account: HOME,
          region,
          stackName: 'stemcell-region',
          parameters: {
            HomeRegion: HOME_REGION,
            CentralBusName: 'stemcell',
            OrganizationId: ORG_ID,
            StemcellKeyId: KEY_ID,
            TarballBucketName: this.bucket,
            ReleaseTableName: this.home.ref('ReleaseTable'),
            BuilderPackageBucket: `stemcell-artifacts-${HOME_REGION}`,
            BuilderPackageKey: 'builder/stemcell-builder.tar.gz',
            BuilderImageId: 'ami-0debian000000000',
            BuilderInstanceType: 'c7i.large',
            VpcId: 'vpc-0123',
            BuilderSubnetId: 'subnet-0123',
            BuilderAvailabilityZone: `${region}a`,
            MinBuilders: '1',
            MaxBuilders: '2',
            BuildVisibilitySeconds: '900',
          },
        }),
      ]),
    );
    this.member = new ResolvedTemplate(loadCfnYaml(`${INFRA}member.yml`), {
      account: MEMBER,
      region: HOME_REGION,
      stackName: 'StackSet-stemcell-member',
      parameters: {
        PublisherAccountId: HOME,
        HomeRegion: HOME_REGION,
        OrganizationId: ORG_ID,
        CentralBusName: 'stemcell',
        BusName: String(
          (
            loadCfnYaml(`${INFRA}member.yml`) as unknown as {
              Parameters: Record<string, { Default?: string }>;
            }
          ).Parameters.BusName?.Default,
        ),
        StemcellKeyId: KEY_ID,
        SubscriberCodeBucketPrefix: 'stemcell-artifacts',
        SubscriberCodeKey: 'subscriber/subscriber.zip',
        SsmParameterPrefix: 'stemcell',
        ExpireRoleName: 'stemcell-ci-expire-eu-west-1',
        CreateAutoScalingServiceLinkedRole: 'false',
      },
    });
    this.#collectResourcePolicies();
  }

  get bucket(): string {
    return this.home.ref('TarballBucket');
  }
  get keyArn(): string {
    return this.home.attribute('StemcellKey', 'Arn');
  }

  #collectResourcePolicies(): void {
    const h = this.home;
    this.resources.add(
      h.attribute('StemcellKey', 'Arn'),
      h.value(h.resource('StemcellKey').Properties?.KeyPolicy),
    );
    this.resources.add(
      h.attribute('TarballBucket', 'Arn'),
      h.value(h.resource('TarballBucketPolicy').Properties?.PolicyDocument),
    );
    for (const t of [h, ...this.regions.values(), this.member]) {
      for (const [, p] of resourcesOfType(t.template, 'AWS::Events::EventBusPolicy')) {
        const props = t.value(p.Properties);
        const bus = t.template.Resources[p.Properties?.EventBusName?.Ref]
          ? t.attribute(p.Properties?.EventBusName?.Ref, 'Arn')
          : `arn:aws:events:${t.deployment.region}:${t.deployment.account}:event-bus/${props.EventBusName}`;
        this.resources.add(bus, { Statement: [{ Sid: props.StatementId, ...props.Statement }] });
      }
      for (const [id] of resourcesOfType(t.template, 'AWS::IAM::Role')) {
        this.resources.add(t.roleArn(id), t.trustPolicy(id));
      }
    }
    // Every member account runs the same stack: the reader role and the bus of another member admit the same.
    const reader = this.member.roleArn('MemberReaderRole');
    this.resources.add(reader.replace(MEMBER, OTHER_MEMBER), this.member.trustPolicy('MemberReaderRole'));
    for (const [, p] of resourcesOfType(this.member.template, 'AWS::Events::EventBusPolicy')) {
      const props = this.member.value(p.Properties);
      const bus = this.member.attribute(p.Properties?.EventBusName?.Ref, 'Arn');
      const statement = JSON.stringify({ Sid: props.StatementId, ...props.Statement });
      this.resources.add(bus.replace(`:${MEMBER}:`, `:${OTHER_MEMBER}:`), {
        Statement: [JSON.parse(statement.replaceAll(`:${MEMBER}:`, `:${OTHER_MEMBER}:`))],
      });
    }
    const replica = this.regions.get('us-east-1') as ResolvedTemplate;
    this.resources.add(
      `arn:aws:kms:us-east-1:${HOME}:key/${KEY_ID}`,
      replica.value(replica.resource('StemcellReplicaKey').Properties?.KeyPolicy),
    );
  }

  /** The environment a function of serverless.yml runs with, as the template sets it. */
  functionEnvironment(logicalId: string): Record<string, string> {
    const fn = this.home.resource(logicalId);
    return this.home.value(fn.Properties?.Environment?.Variables ?? {});
  }

  memberFunctionEnvironment(): Record<string, string> {
    return this.member.value(
      this.member.resource('SubscriberFunction').Properties?.Environment?.Variables ?? {},
    );
  }

  /** Routes every SDK client class to the fakes, tracing each command. */
  install(): void {
    const f = this.fakes;
    const sts = new STSClient({
      region: HOME_REGION,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const stsMock = mockClient(sts);
    stsMock.on(GetCallerIdentityCommand).callsFake(() => ({ Account: this.callerAccount }));
    stsMock.on(AssumeRoleCommand).callsFake((input) => ({
      Credentials: {
        AccessKeyId: `ASIA|${input.RoleArn}`,
        SecretAccessKey: 'x',
        SessionToken: 'x',
        Expiration: new Date(Date.now() + 3_600_000),
      },
    }));
    this.trace.route(STSClient, 'sts', sts);
    this.trace.route(S3Client, 's3', f.s3.client());
    this.trace.route(DynamoDBDocumentClient, 'dynamodb', f.dynamodb.client());
    const sqsClients = new Map<string, SQSClient>();
    this.trace.route(SQSClient, 'sqs', (region: string) => {
      let client = sqsClients.get(region);
      if (!client) {
        client = f.sqs.client(region);
        sqsClients.set(region, client);
      }
      return client;
    });
    this.trace.route(EventBridgeClient, 'events', f.events.client());
    const ec2Clients = new Map([...f.ec2].map(([region, fake]) => [region, fake.client()]));
    this.trace.route(EC2Client, 'ec2', (region: string) => {
      const client = ec2Clients.get(region);
      if (!client) throw new Error(`no fake EC2 in ${region}`);
      return client;
    });
    this.trace.route(OrganizationsClient, 'organizations', f.organizations.client());
    this.trace.route(AutoScalingClient, 'autoscaling', f.autoScaling.client());
    this.trace.route(SSMClient, 'ssm', f.ssm.client());
    this.trace.route(KMSClient, 'kms', f.kms.client());
    this.trace.route(SchedulerClient, 'scheduler', f.scheduler.client());
    this.trace.route(CloudWatchClient, 'cloudwatch', f.cloudwatch.client());
  }

  /** What iam-requests needs to know about existing resources (tags, keys), from the fakes' state. */
  ec2(region: string): FakeEc2 {
    const fake = this.fakes.ec2.get(region);
    if (!fake) throw new Error(`no fake EC2 in ${region}`);
    return fake;
  }

  requestWorld(account: string): RequestWorld {
    const all = [...this.fakes.ec2.values()];
    const first = <T>(get: (ec2: FakeEc2) => T | undefined) => all.map(get).find((v) => v !== undefined);
    return {
      account,
      tagsOf: (id) =>
        first((e) => e.images.get(id)?.tags) ??
        first((e) => e.snapshots.get(id)?.tags) ??
        first((e) => e.volumes.get(id)?.tags) ??
        first((e) => e.launchTemplates.get(id)?.tags) ??
        first((e) => e.instances.get(id)?.tags) ??
        this.instanceTags.get(id) ??
        this.fakes.autoScaling.groups.get(id)?.tags ??
        {},
      bucketKey: (bucket) => (bucket === this.bucket ? this.keyArn : undefined),
      ebsKeyOf: (id) =>
        first(
          (e) =>
            e.volumes.get(id)?.kmsKeyId ??
            e.snapshots.get(id)?.kmsKeyId ??
            e.snapshots.get(e.images.get(id)?.snapshotId ?? '')?.kmsKeyId,
        ),
    };
  }

  /**
   * The traced calls since the last take, as IAM requests of their principals: `self` signs with the
   * process's own credentials; clients of an assumed role (AssumeRole through the fake STS) sign as that role.
   */
  requests(
    self: RolePrincipal,
    others: Record<string, RolePrincipal> = {},
  ): { principal: RolePrincipal; request: IamRequest; call: TracedCall }[] {
    return this.trace.take().flatMap((call) => {
      const assumed = call.accessKeyId.startsWith('ASIA|') ? call.accessKeyId.slice(5) : undefined;
      const principal = assumed ? others[assumed] : self;
      if (!principal)
        throw new Error(`${call.service}:${call.command} signed as ${assumed}, a role not modelled`);
      return (call.annotation as IamRequest[]).map((request) => ({ principal, request, call }));
    });
  }

  /** The account a call acts in: an assumed role's, else the process's own. */
  #accountOf(call: TracedCall): string {
    const assumed = call.accessKeyId.startsWith('ASIA|') ? call.accessKeyId.slice(5) : undefined;
    return assumed?.split(':')[4] ?? this.callerAccount;
  }

  async judge(requests: { principal: RolePrincipal; request: IamRequest }[]): Promise<Verdict[]> {
    const out: Verdict[] = [];
    for (const { principal, request } of requests)
      out.push(await simulate(principal, request, this.resources, { id: ORG_ID }));
    return out;
  }

  /**
   * Role targets of the templates' own rules: EventBridge puts events with that role on the target bus. The
   * home account's templates, or the member stack's (infra/member.yml).
   */
  ruleTargetRequests(stack: 'home' | 'member' = 'home'): { principal: RolePrincipal; request: IamRequest }[] {
    const out: { principal: RolePrincipal; request: IamRequest }[] = [];
    const templates: (readonly [string, ResolvedTemplate])[] =
      stack === 'member'
        ? [['infra/member.yml', this.member]]
        : [
            ['serverless.yml', this.home],
            ...[...this.regions].map(([r, t]) => [`infra/region.yml (${r})`, t] as const),
          ];
    for (const [label, t] of templates) {
      for (const [id, rule] of resourcesOfType(t.template, 'AWS::Events::Rule')) {
        for (const target of asList(rule.Properties?.Targets)) {
          const roleId = target.RoleArn?.['Fn::GetAtt']?.[0];
          const arn = t.value(target.Arn) as string;
          if (!roleId || !arn.includes(':event-bus/')) continue;
          out.push({
            principal: rolePrincipal(t, roleId, label),
            request: { action: 'events:PutEvents', resource: arn, context: {}, origin: `rule ${id}` },
          });
        }
      }
    }
    return out;
  }

  restore(): void {
    this.trace.restore();
  }
}

export function deniedMessages(verdicts: Verdict[]): string[] {
  return verdicts
    .filter((v) => !v.allowed)
    .map(
      (v) =>
        `${v.principal}: ${v.request.action} on ${v.request.resource} (${v.request.origin}) → ${v.detail}`,
    );
}
