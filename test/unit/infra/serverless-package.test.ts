// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation !Sub strings are written with ${…}
// serverless.yml: packages offline (osls + serverless-esbuild, no login, no AWS), then the generated
// CloudFormation template is held to the rules of issue 5.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SUBSCRIBER_RULE_PREFIX } from '#core/model/naming.ts';
import {
  asList,
  deadLetterViolations,
  leastPrivilegeViolations,
  openPrincipalViolations,
  resourcesOfType,
  roleStatements,
  type Statement,
  type Template,
} from '#test/support/cfn.ts';
import { cfnLint, cfnLintVersion, describeFinding } from '#test/support/cfn-lint.ts';
import { alarmTopicViolations, unreadEnvironment } from '#test/support/infra-checks.ts';
import { packageServerless } from '#test/support/roles.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const FUNCTIONS = ['ingest', 'register', 'announce', 'sync-subscribers', 'expire'];

let out = '';
let template: Template;

/** The function's logical id as the framework names it: "sync-subscribers" → "SyncDashsubscribers". */
const logicalId = (fn: string) =>
  fn
    .split('-')
    .map((part, i) => (i === 0 ? part[0]?.toUpperCase() + part.slice(1) : `Dash${part}`))
    .join('');
const lambda = (fn: string) => template.Resources[`${logicalId(fn)}LambdaFunction`];

describe('Template: serverless.yml (packaged offline)', () => {
  before(async () => {
    // prepare: one package run for the whole suite (a few seconds)
    out = await mkdtemp(join(tmpdir(), 'stemcell-sls-'));
    await packageServerless(out);
    template = JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'));
  });
  after(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  it('bundles one small ESM package per function, arm64, nodejs24.x, each with its own role', async () => {
    const roles = new Set<string>();
    for (const fn of FUNCTIONS) {
      const props = lambda(fn)?.Properties;
      assert.ok(props, `function ${fn} in the template`);
      assert.equal(props.Runtime, 'nodejs24.x');
      assert.deepEqual(props.Architectures, ['arm64']);
      assert.equal(props.Handler, `functions/${fn}/handler.handler`);
      const size = (await stat(join(out, `${fn}.zip`))).size;
      assert.ok(size < 5 * 1024 * 1024, `${fn}.zip is ${size} bytes`);
      roles.add(props.Role['Fn::GetAtt'][0]);
    }
    assert.equal(roles.size, FUNCTIONS.length, 'no role is shared');
    assert.equal(template.Resources.IamRoleLambdaExecution, undefined, 'no framework-wide role');
  });

  it('passes cfn-lint with no error and no warning the checked-in config does not ignore', async () => {
    // Both templates the framework hands CloudFormation: the stack as created, then as updated.
    const templates = ['create', 'update'].map((s) => join(out, `cloudformation-template-${s}-stack.json`));
    const findings = await cfnLint(templates);
    assert.deepEqual(findings.map(describeFinding), [], `cfn-lint ${await cfnLintVersion()}`);
  });

  it('hard-codes no account id', async () => {
    assert.doesNotMatch(await readFile(join(ROOT, 'serverless.yml'), 'utf8'), /\b\d{12}\b/);
  });

  it('gives every role enumerated actions and no write action on "*"', () => {
    assert.deepEqual(leastPrivilegeViolations(template), []);
  });

  it('consumes snapshot events through SQS with ReportBatchItemFailures and visibility ≥ 6 × timeout', () => {
    const [, mapping] = resourcesOfType(template, 'AWS::Lambda::EventSourceMapping')[0] ?? [];
    assert.deepEqual(mapping?.Properties?.FunctionResponseTypes, ['ReportBatchItemFailures']);
    const timeout = lambda('register')?.Properties?.Timeout;
    const visibility = template.Resources.RegisterQueue?.Properties?.VisibilityTimeout;
    assert.ok(visibility >= 6 * timeout, `visibility ${visibility} vs timeout ${timeout}`);
    const rule = template.Resources.SnapshotNotificationRule?.Properties;
    assert.deepEqual(rule?.EventPattern['detail-type'], ['EBS Snapshot Notification']);
  });

  it('has DLQs with maxReceiveCount ≥ 5 and an alarm on every one, on every rule target', () => {
    assert.deepEqual(deadLetterViolations(template), []);
    for (const fn of ['ingest', 'announce', 'sync-subscribers', 'expire']) {
      const config = template.Resources[`${logicalId(fn)}LambdaEvConf`];
      assert.ok(
        config?.Properties?.DestinationConfig?.OnFailure,
        `${fn}: failed async invocations go to a DLQ`,
      );
    }
  });

  it('routes S3 Object Created under streams/, EBS, AMI and Launch Template Updated events', () => {
    const patterns = resourcesOfType(template, 'AWS::Events::Rule').map(
      ([, r]) => r.Properties?.EventPattern,
    );
    const s3 = patterns.find((p) => p?.source?.[0] === 'aws.s3');
    assert.deepEqual(s3?.['detail-type'], ['Object Created']);
    assert.deepEqual(s3?.detail.object.key, [{ prefix: 'streams/' }]);
    assert.ok(patterns.some((p) => p?.['detail-type']?.includes('EC2 AMI State Change')));
    assert.ok(patterns.some((p) => p?.['detail-type']?.includes('Launch Template Updated')));
  });

  it('keeps the release table recoverable and encrypted', () => {
    const table = template.Resources.ReleaseTable?.Properties;
    assert.equal(table?.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled, true);
    assert.equal(table?.SSESpecification.SSEEnabled, true);
  });

  it('locks the tarball bucket down: no public access, TLS only, SSE-KMS, versioning, EventBridge on', () => {
    const bucket = template.Resources.TarballBucket?.Properties;
    assert.deepEqual(bucket?.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const sse = bucket?.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault;
    assert.equal(sse.SSEAlgorithm, 'aws:kms');
    assert.deepEqual(sse.KMSMasterKeyID, { 'Fn::GetAtt': ['StemcellKey', 'Arn'] });
    assert.equal(bucket?.VersioningConfiguration.Status, 'Enabled');
    assert.equal(bucket?.NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled, true);
    const tls = asList<Statement>(
      template.Resources.TarballBucketPolicy?.Properties?.PolicyDocument.Statement,
    ).find((s) => s.Effect === 'Deny');
    assert.equal(tls?.Condition?.Bool?.['aws:SecureTransport'], 'false');
  });

  it('rotates the customer key and lets only the Organization use it, for EBS through EC2', () => {
    const key = template.Resources.StemcellKey?.Properties;
    assert.equal(key?.EnableKeyRotation, true);
    assert.equal(key?.MultiRegion, true);
    const statements = asList<Statement>(key?.KeyPolicy.Statement);
    assert.deepEqual(openPrincipalViolations(statements, 'StemcellKey'), []);
    const ebs = statements.find((s) => s.Sid === 'OrganizationUsesTheKeyForEbsThroughEc2');
    assert.deepEqual(ebs?.Condition?.StringEquals?.['kms:ViaService'], {
      'Fn::Sub': 'ec2.${AWS::Region}.amazonaws.com',
    });
    assert.equal(ebs?.Condition?.StringEquals?.['aws:PrincipalOrgID'], 'o-exampleorg01');
    const grant = statements.find((s) => s.Sid === 'OrganizationLetsAwsResourcesUseTheKey');
    assert.deepEqual(asList(grant?.Action), ['kms:CreateGrant']);
    assert.equal(grant?.Condition?.Bool?.['kms:GrantIsForAWSResource'], 'true');
  });

  it('creates the central bus "stemcell" with a policy scoped to the Organization', () => {
    assert.equal(template.Resources.StemcellEventBridgeEventBus?.Properties?.Name, 'stemcell');
    const statement = template.Resources.CentralBusPolicy?.Properties?.Statement as Statement;
    assert.equal(statement.Action, 'events:PutEvents');
    assert.deepEqual(openPrincipalViolations([statement], 'CentralBusPolicy'), []);
  });

  it('lets sync-subscribers touch only its own rules on the central bus (the prefix the code names them by)', () => {
    const manage = roleStatements(template).find(
      (s) => s.statement.Sid === 'ManageSubscriberRulesOnly',
    )?.statement;
    assert.match(JSON.stringify(manage?.Resource), new RegExp(`rule/stemcell/${SUBSCRIBER_RULE_PREFIX}\\*`));
  });

  it('targets member buses not named like the central bus (the home account may run the member stack)', async () => {
    const env = lambda('sync-subscribers')?.Properties?.Environment?.Variables;
    const memberBus = env?.STEMCELL_MEMBER_BUS_NAME;
    assert.ok(memberBus, 'sync-subscribers is told the member bus name');
    assert.notEqual(memberBus, template.Resources.StemcellEventBridgeEventBus?.Properties?.Name);
    const member = (await import('#test/support/cfn.ts')).loadCfnYaml(
      join(ROOT, 'infra/member.yml'),
    ) as unknown as {
      Parameters: Record<string, { Default?: string }>;
    };
    assert.equal(member.Parameters.BusName?.Default, memberBus, 'infra/member.yml names its bus the same');
  });

  it('sets no environment variable the code never reads', async () => {
    const unread: string[] = [];
    for (const fn of FUNCTIONS) {
      const vars = Object.keys(lambda(fn)?.Properties?.Environment?.Variables ?? {});
      unread.push(...(await unreadEnvironment(vars)).map((v) => `${fn}: ${v}`));
    }
    assert.deepEqual(unread, []);
  });

  it('encrypts the alarm topic with a key of its own that lets CloudWatch publish (not alias/aws/sns)', async () => {
    assert.deepEqual(await alarmTopicViolations(template, 'serverless.yml'), []);
  });

  it("blocks public access to the framework's deployment bucket", async () => {
    const core = JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'));
    assert.deepEqual(core.Resources.ServerlessDeploymentBucket?.Properties?.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
  });
});
