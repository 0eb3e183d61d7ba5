// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation !Sub strings are written with ${…}
// infra/region.yml and infra/member.yml: the rules of issue 5 checked on the templates themselves.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TAG } from '#core/model/naming.ts';
import { INSTANCE_REFRESH_END_PATTERN, INSTANCE_REFRESH_MESSAGE_GROUP } from '#events/aws.ts';
import {
  asList,
  deadLetterViolations,
  leastPrivilegeViolations,
  loadCfnYaml,
  openPrincipalViolations,
  resourcesOfType,
  roleStatements,
  type Statement,
} from '#test/support/cfn.ts';
import { alarmTopicViolations, unreadEnvironment } from '#test/support/infra-checks.ts';

const REGION = new URL('../../../infra/region.yml', import.meta.url).pathname;
const MEMBER = new URL('../../../infra/member.yml', import.meta.url).pathname;

describe('Template: infra/region.yml', () => {
  const t = loadCfnYaml(REGION);

  it('hard-codes no account id', () => {
    assert.doesNotMatch(readFileSync(REGION, 'utf8'), /\b\d{12}\b/);
  });

  it('has a FIFO build queue named for the region, a DLQ after 5 receives, and alarms on every DLQ', () => {
    const queue = t.Resources.BuildQueue?.Properties;
    assert.equal(queue?.FifoQueue, true);
    assert.deepEqual(queue?.QueueName, { 'Fn::Sub': 'stemcell-build-${AWS::Region}.fifo' });
    assert.ok(queue?.RedrivePolicy.maxReceiveCount >= 5);
    assert.equal(t.Resources.BuildDLQ?.Properties?.FifoQueue, true, 'a FIFO queue needs a FIFO DLQ');
    assert.deepEqual(deadLetterViolations(t), []);
  });

  it('runs every builder in the one AZ the stream volumes are pinned to, and tells the agent which', () => {
    // A group over several subnets would send a stream's job to an AZ without its volume: a full rewrite.
    const group = t.Resources.BuilderGroup?.Properties;
    assert.deepEqual(group?.VPCZoneIdentifier, [{ Ref: 'BuilderSubnetId' }]);
    const data = t.Resources.BuilderLaunchTemplate?.Properties?.LaunchTemplateData;
    assert.match(JSON.stringify(data.UserData), /STEMCELL_AVAILABILITY_ZONE='\$\{BuilderAvailabilityZone\}'/);
    const bootstrap = readFileSync(new URL('../../../infra/builder/bootstrap.sh', import.meta.url), 'utf8');
    assert.match(bootstrap, /^STEMCELL_AVAILABILITY_ZONE=\$\{STEMCELL_AVAILABILITY_ZONE\}$/m);
  });

  it('requires IMDSv2 on the builder launch template and opens no way in (no SSH, no key pair)', () => {
    const data = t.Resources.BuilderLaunchTemplate?.Properties?.LaunchTemplateData;
    assert.equal(data.MetadataOptions.HttpTokens, 'required');
    assert.equal(data.MetadataOptions.HttpPutResponseHopLimit, 1);
    assert.equal(data.KeyName, undefined);
    const sg = t.Resources.BuilderSecurityGroup?.Properties;
    assert.equal(sg?.SecurityGroupIngress, undefined);
    assert.equal(resourcesOfType(t, 'AWS::EC2::SecurityGroupIngress').length, 0);
    assert.match(JSON.stringify(data.UserData), /infra\/builder\/bootstrap\.sh/);
  });

  it('gives the builder role enumerated actions and no write action on "*"', () => {
    assert.deepEqual(leastPrivilegeViolations(t), []);
    const actions = roleStatements(t)
      .filter((s) => s.role === 'BuilderRole')
      .flatMap((s) => asList(s.statement.Action));
    for (const needed of [
      'ec2:CreateVolume',
      'ec2:AttachVolume',
      'ec2:CreateSnapshot',
      'sqs:ChangeMessageVisibility',
    ]) {
      assert.ok(actions.includes(needed), `builder may ${needed}`);
    }
  });

  it('lets the builder create volumes and snapshots only with the stemcell:stream tag at creation', () => {
    const statements = roleStatements(t).map((s) => s.statement);
    const create = statements.find((s) => asList(s.Action).includes('ec2:CreateVolume'));
    assert.equal(create?.Condition?.StringLike?.['aws:RequestTag/stemcell:stream'], '*');
    const tag = statements.find((s) => asList(s.Action).includes('ec2:CreateTags'));
    assert.deepEqual(tag?.Condition?.StringEquals?.['ec2:CreateAction'], ['CreateVolume', 'CreateSnapshot']);
  });

  it('forwards EBS snapshot and AMI events to the central bus through a role, with DLQs', () => {
    const rules = resourcesOfType(t, 'AWS::Events::Rule');
    const types = rules.map(([, r]) => r.Properties?.EventPattern?.['detail-type']?.[0]);
    assert.ok(types.includes('EBS Snapshot Notification'));
    assert.ok(types.includes('EC2 AMI State Change'));
    for (const [, rule] of rules) {
      for (const target of rule.Properties?.Targets ?? [])
        assert.ok(target.RoleArn, 'cross-region bus targets need a role');
    }
  });

  it('scopes the regional replica key to the Organization, for EC2 only, and grants only for AWS resources', () => {
    const policy = t.Resources.StemcellReplicaKey?.Properties?.KeyPolicy;
    const statements = asList<Statement>(policy.Statement);
    assert.deepEqual(openPrincipalViolations(statements, 'StemcellReplicaKey'), []);
    const ebs = statements.find((s) => s.Sid === 'OrganizationUsesTheKeyForEbsThroughEc2');
    assert.deepEqual(ebs?.Condition?.StringEquals?.['kms:ViaService'], {
      'Fn::Sub': 'ec2.${AWS::Region}.amazonaws.com',
    });
    const grant = statements.find((s) => s.Sid === 'OrganizationLetsAwsResourcesUseTheKey');
    assert.equal(grant?.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true');
  });
});

describe('Templates: what would break on AWS', () => {
  const region = loadCfnYaml(REGION);
  const member = loadCfnYaml(MEMBER);

  it('encrypts every alarm topic with a key of its own that lets CloudWatch publish (not alias/aws/sns)', async () => {
    assert.deepEqual(await alarmTopicViolations(region, 'infra/region.yml'), []);
    assert.deepEqual(await alarmTopicViolations(member, 'infra/member.yml'), []);
    // One policy for every stack's alarm key: serverless.yml includes the file, the others carry a copy.
    const shared = loadCfnYaml(new URL('../../../infra/alarm-key-policy.yml', import.meta.url).pathname);
    assert.deepEqual(region.Resources.AlarmTopicKey?.Properties?.KeyPolicy, shared);
    assert.deepEqual(member.Resources.AlarmTopicKey?.Properties?.KeyPolicy, shared);
  });

  it('gives the replica key the policy of the primary key, kms:GrantOperations condition included', () => {
    // The primary (serverless.yml) names the Organization by parameter value, the replica by Ref.
    const sls = readFileSync(new URL('../../../serverless.yml', import.meta.url).pathname, 'utf8');
    const primary = sls.slice(sls.indexOf('    StemcellKey:'), sls.indexOf('    StemcellKeyAlias:'));
    const replica = asList<Statement>(region.Resources.StemcellReplicaKey?.Properties?.KeyPolicy.Statement);
    const grant = replica.find((s) => s.Sid === 'OrganizationGrantsTheKeyToItsAutoScalingRole');
    const operations = grant?.Condition?.['ForAllValues:StringEquals']?.['kms:GrantOperations'] as string[];
    assert.ok(operations, 'the replica limits what the Auto Scaling grant may do');
    for (const op of operations) assert.match(primary, new RegExp(`- ${op}\\n`), `primary lists ${op}`);
    const sids = (text: string) => [...text.matchAll(/Sid: (\w+)/g)].map((m) => m[1]);
    assert.deepEqual(
      replica.map((s) => s.Sid),
      sids(primary),
    );
  });

  it("runs the builder on Debian's official AMI and installs exactly the packages setup.sh tests here", () => {
    const image = (region as unknown as { Parameters: Record<string, { Default?: string }> }).Parameters
      .BuilderImageId?.Default;
    assert.match(String(image), /^\/aws\/service\/debian\/release\/[a-z0-9]+\/latest\/amd64$/);
    const bootstrap = readFileSync(new URL('../../../infra/builder/bootstrap.sh', import.meta.url), 'utf8');
    const setup = readFileSync(new URL('../../../scripts/setup.sh', import.meta.url), 'utf8');
    for (const script of [bootstrap, setup]) assert.match(script, /infra\/builder\/packages\.list/);
    assert.match(bootstrap, /apt-get .*install .*"\$\{packages\[@\]\}"/);
    assert.doesNotMatch(bootstrap, /\b(dnf|yum)\b/, 'no Amazon Linux package manager');
    assert.match(bootstrap, /stemcell builder --check\n/, 'the agent starts only after the check');
    assert.ok(
      bootstrap.indexOf('builder --check') < bootstrap.indexOf('systemctl enable'),
      'checked before the agent is enabled',
    );
  });

  it('sets no environment variable the subscriber never reads', async () => {
    const vars = Object.keys(member.Resources.SubscriberFunction?.Properties?.Environment?.Variables ?? {});
    assert.deepEqual(await unreadEnvironment(vars), []);
  });
});

describe('Template: infra/member.yml', () => {
  const t = loadCfnYaml(MEMBER);

  it('hard-codes no account id', () => {
    assert.doesNotMatch(readFileSync(MEMBER, 'utf8'), /\b\d{12}\b/);
  });

  it('lets only the publisher, inside the Organization, put events on the member bus', () => {
    const statement = t.Resources.MemberBusPolicy?.Properties?.Statement;
    assert.deepEqual(statement.Principal, {
      AWS: { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${PublisherAccountId}:root' },
    });
    assert.deepEqual(statement.Condition.StringEquals['aws:PrincipalOrgID'], { Ref: 'OrganizationId' });
    assert.equal(statement.Action, 'events:PutEvents');
  });

  it('routes Image Ready of every region to the subscriber, with a DLQ and alarms', () => {
    const pattern = t.Resources.ImageReadyRule?.Properties?.EventPattern;
    assert.deepEqual(pattern.source, ['stemcell']);
    assert.deepEqual(pattern['detail-type'], ['Image Ready']);
    // sync-subscribers targets the member bus of the home region only: a region filter here would drop the
    // other regions' images.
    assert.equal(pattern.detail?.region, undefined);
    assert.deepEqual(deadLetterViolations(t), []);
  });

  it("forwards Auto Scaling's refresh ends from every region to the subscriber's queue, in their own message group", () => {
    // Every region's default bus → the member bus in the home region (a role target) ...
    const home = t.Resources.InstanceRefreshEndsToHome;
    assert.equal(home?.Condition, undefined, 'in every region: Auto Scaling sends to the group region');
    assert.equal(home?.Properties?.EventBusName, undefined, "Auto Scaling's events reach the default bus");
    assert.deepEqual(home?.Properties?.EventPattern, INSTANCE_REFRESH_END_PATTERN);
    const [forward] = home?.Properties?.Targets ?? [];
    assert.deepEqual(forward?.Arn, {
      'Fn::Sub': 'arn:${AWS::Partition}:events:${HomeRegion}:${AWS::AccountId}:event-bus/${BusName}',
    });
    assert.deepEqual(forward?.RoleArn, { 'Fn::GetAtt': ['InstanceRefreshForwardRole', 'Arn'] });
    // ... → the subscriber's FIFO queue, whose policy admits that rule only.
    const rule = t.Resources.InstanceRefreshEndsToSubscriber;
    assert.equal(rule?.Condition, 'IsHomeRegion');
    assert.deepEqual(rule?.Properties?.EventBusName, { Ref: 'MemberBus' });
    assert.deepEqual(rule?.Properties?.EventPattern, INSTANCE_REFRESH_END_PATTERN);
    const [target] = rule?.Properties?.Targets ?? [];
    assert.deepEqual(target?.Arn, { 'Fn::GetAtt': ['SubscriberQueue', 'Arn'] });
    assert.equal(target?.SqsParameters?.MessageGroupId, INSTANCE_REFRESH_MESSAGE_GROUP);
    assert.notEqual(
      INSTANCE_REFRESH_MESSAGE_GROUP,
      t.Resources.ImageReadyRule?.Properties?.Targets?.[0]?.SqsParameters?.MessageGroupId,
      'refresh ends never wait behind Image Ready',
    );
    const statements = asList(t.Resources.SubscriberQueuePolicy?.Properties?.PolicyDocument?.Statement);
    const admits = statements.find(
      (st) =>
        st.Effect === 'Allow' &&
        st.Principal?.Service === 'events.amazonaws.com' &&
        asList(st.Action).includes('sqs:SendMessage') &&
        JSON.stringify(st.Condition?.ArnEquals?.['aws:SourceArn']) ===
          JSON.stringify({ 'Fn::GetAtt': ['InstanceRefreshEndsToSubscriber', 'Arn'] }),
    );
    assert.ok(admits, 'the queue policy lets the refresh rule send, by its ARN');
    // The subscriber may write its bookkeeping tag on opted-in groups, and no other tag.
    const tagging = roleStatements(t).find((st) =>
      asList(st.statement.Action).includes('autoscaling:CreateOrUpdateTags'),
    )?.statement;
    assert.deepEqual(tagging?.Condition?.['ForAllValues:StringEquals']?.['aws:TagKeys'], [
      TAG.instanceRefresh,
    ]);
    assert.equal(tagging?.Condition?.StringLike?.['aws:ResourceTag/stemcell:stream'], '*');
  });

  it('serialises deliveries: the rule feeds a FIFO queue (one message group) that the subscriber consumes in order', () => {
    const [target] = t.Resources.ImageReadyRule?.Properties?.Targets ?? [];
    assert.deepEqual(target?.Arn, { 'Fn::GetAtt': ['SubscriberQueue', 'Arn'] });
    assert.ok(target?.SqsParameters?.MessageGroupId, 'a FIFO target needs a MessageGroupId');
    const queue = t.Resources.SubscriberQueue?.Properties;
    assert.equal(queue?.FifoQueue, true);
    assert.equal(queue?.ContentBasedDeduplication, true, 'EventBridge needs content-based deduplication');
    assert.equal(
      t.Resources.SubscriberQueueDLQ?.Properties?.FifoQueue,
      true,
      'a FIFO queue needs a FIFO DLQ',
    );
    const [mapping] = resourcesOfType(t, 'AWS::Lambda::EventSourceMapping').map(([, r]) => r.Properties);
    assert.deepEqual(mapping?.EventSourceArn, { 'Fn::GetAtt': ['SubscriberQueue', 'Arn'] });
    assert.deepEqual(mapping?.FunctionName, { Ref: 'SubscriberFunction' });
    assert.deepEqual(mapping?.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.equal(resourcesOfType(t, 'AWS::Lambda::Permission').length, 0, 'nothing invokes it directly');
  });

  it('runs the bus, rule and subscriber in the home region only, acting on launch templates of any region', () => {
    for (const name of ['MemberBus', 'ImageReadyRule', 'SubscriberFunction', 'SubscriberRole']) {
      assert.equal(t.Resources[name]?.Condition, 'IsHomeRegion', name);
    }
    const move = roleStatements(t).find(
      (s) => s.statement.Sid === 'MoveOptedInLaunchTemplatesOnly',
    )?.statement;
    assert.deepEqual(move?.Resource, {
      'Fn::Sub': 'arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:launch-template/*',
    });
  });

  it('runs the subscriber on the project runtime with its own least-privilege role', () => {
    const fn = t.Resources.SubscriberFunction?.Properties;
    assert.equal(fn?.Runtime, 'nodejs24.x');
    assert.deepEqual(fn?.Architectures, ['arm64']);
    assert.equal(fn?.Handler, 'functions/subscriber/handler.handler');
    assert.deepEqual(leastPrivilegeViolations(t), []);
    const move = roleStatements(t).find(
      (s) => s.statement.Sid === 'MoveOptedInLaunchTemplatesOnly',
    )?.statement;
    assert.equal(move?.Condition?.StringLike?.['aws:ResourceTag/stemcell:stream'], '*');
  });

  it('grants the publisher key to the Auto Scaling service-linked role, and only to it', () => {
    const grant = t.Resources.AutoScalingKeyGrant?.Properties;
    assert.deepEqual(grant?.GranteePrincipal, {
      'Fn::Sub':
        'arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling',
    });
    assert.ok(grant?.Operations.includes('Decrypt'));
    assert.ok(grant?.Operations.includes('CreateGrant'));
    const create = roleStatements(t).find((s) =>
      asList(s.statement.Action).includes('kms:CreateGrant'),
    )?.statement;
    assert.deepEqual(create?.Condition?.StringEquals?.['kms:GranteePrincipal'], grant?.GranteePrincipal);
  });

  it('creates account-wide IAM only from the home-region stack instance', () => {
    assert.equal(t.Resources.MemberReaderRole?.Condition, 'IsHomeRegion');
    assert.equal(t.Resources.AutoScalingServiceLinkedRole?.Condition, 'CreateAsgRole');
  });
});
