// Roles proven against the code, in a member account (infra/member.yml): the subscriber runs its real code
// (handler, core, AWS adapters, the AWS wiring) over stateful fakes, every SDK command is traced and
// evaluated with the IAM policy simulator against SubscriberRole, including what the calls imply: SSM's
// validation of aws:ec2:image values (ec2:DescribeImages as the caller) and PutEvents to the publisher's
// central bus, which that bus's policy must admit too. The KMS grant the stack's custom resource makes is
// evaluated against the publisher's key policies (primary and replica). See roles-vs-code.test.ts for the
// home account; this file is its own process because it runs as another account.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Context } from 'aws-lambda';
import { sample } from '#events/samples/index.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as subscriberHandler } from '#functions/subscriber/handler.ts';
import { asList, resourcesOfType } from '#test/support/cfn.ts';
import { deniedMessages, HOME, HOME_REGION, KEY_ID, MEMBER, RoleWorld } from '#test/support/role-world.ts';
import {
  type AllowedUnused,
  packagedServerlessTemplate,
  type RolePrincipal,
  rolePrincipal,
  unusedGrants,
  type Verdict,
} from '#test/support/roles.ts';

const ALLOWED_UNUSED: AllowedUnused[] = [
  {
    role: 'SubscriberRole',
    action: 'logs:CreateLogStream',
    reason: 'the Lambda runtime writes the function log',
  },
  {
    role: 'SubscriberRole',
    action: 'logs:PutLogEvents',
    reason: 'the Lambda runtime writes the function log',
  },
  {
    role: 'SubscriberRole',
    action: 'xray:PutTraceSegments',
    reason: 'active tracing: Lambda sends segments',
  },
  {
    role: 'SubscriberRole',
    action: 'xray:PutTelemetryRecords',
    reason: 'active tracing: Lambda sends segments',
  },
  ...['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'].map((action) => ({
    role: 'SubscriberRole',
    action,
    reason: "the SQS event source mapping polls the subscriber's FIFO queue with the function's role",
  })),
  ...['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'].map((action) => ({
    role: 'KeyGrantFunctionRole',
    action,
    reason: "the Lambda runtime writes the custom resource's log",
  })),
];

const tools = createPowertools({ serviceName: 'stemcell-roles-member', quiet: true });
const context = { functionName: 'stemcell-subscriber', awsRequestId: 'r' } as Context;
const saved = { ...process.env };

describe('Roles vs code: a member account', () => {
  let world: RoleWorld;
  let subscriber: RolePrincipal;
  const verdicts: Verdict[] = [];

  before(async () => {
    world = new RoleWorld(await packagedServerlessTemplate());
    world.callerAccount = MEMBER;
    world.install();
    subscriber = rolePrincipal(world.member, 'SubscriberRole', 'infra/member.yml');
    process.env = {
      ...saved,
      AWS_REGION: HOME_REGION,
      AWS_ACCESS_KEY_ID: 'AKIAMEMBER',
      AWS_SECRET_ACCESS_KEY: 'x',
    };
    delete process.env.STEMCELL_CONFIG;
    Object.assign(process.env, world.memberFunctionEnvironment());
  });
  after(() => {
    world?.restore();
    process.env = saved;
  });

  it('subscriber: every call allowed for SubscriberRole, and the parameter it reports exists', async () => {
    // prepare: a tagged launch template, and its group opted in to instance refreshes
    const ec2 = world.ec2(HOME_REGION);
    const lt = ec2.addLaunchTemplate('web', { 'stemcell:stream': 'web' }, 'ami-00000000000000001');
    world.fakes.autoScaling.addGroup(
      'web-asg',
      { 'stemcell:stream': 'web', 'stemcell:refresh': 'true' },
      lt.id,
    );
    const event = sample<{ detail: Record<string, unknown> }>('stemcell-image-ready');
    Object.assign(event.detail, {
      stream: 'web',
      releaseId: 'web#00000002',
      sequence: 2,
      imageId: 'ami-00000000000000002',
    });
    // As the member bus rule delivers it: through the account's FIFO queue.
    const records = sample<{ Records: Record<string, unknown>[] }>('sqs-build-job');
    const sqsEvent = { Records: [{ ...records.Records[0], body: JSON.stringify(event) }] };
    const { awsMemberRuntime } = await import('#functions/commons/aws-deps.ts');
    // act
    world.trace.take();
    const response = await subscriberHandler(await awsMemberRuntime().subscriber(), tools)(
      sqsEvent as never,
      context,
    );
    verdicts.push(...(await world.judge(world.requests(subscriber))));
    // assess
    assert.equal(world.fakes.ssm.parameters.get('/stemcell/web/eu-west-1/image-id'), 'ami-00000000000000002');
    assert.deepEqual(response, { batchItemFailures: [] });
    const actions = new Set(verdicts.map((v) => v.request.action));
    for (const needed of [
      'ec2:CreateLaunchTemplateVersion',
      'autoscaling:StartInstanceRefresh',
      'autoscaling:CreateOrUpdateTags',
      'ec2:DescribeImages',
      'events:PutEvents',
    ])
      assert.ok(actions.has(needed), `${needed} was traced`);
    const report = verdicts.find((v) => v.request.action === 'events:PutEvents');
    assert.equal(report?.request.resource, `arn:aws:events:${HOME_REGION}:${HOME}:event-bus/stemcell`);
    assert.deepEqual(deniedMessages(verdicts), []);
  });

  it('subscriber, a refresh it started failed: every call allowed, and the failure goes back to the centre', async () => {
    // prepare: Auto Scaling's documented "Failed" event for the refresh the test above started, through the queue
    const group = world.fakes.autoScaling.groups.get('web-asg');
    const started = group?.refreshes[0]?.id;
    assert.ok(started, 'the first test started a refresh');
    assert.match(group?.tags['stemcell:instance-refresh'] ?? '', new RegExp(`^${started} lt-`));
    const end = sample<{ account: string; region: string; detail: Record<string, unknown> }>(
      'autoscaling-instance-refresh-failed',
    );
    Object.assign(end, { account: MEMBER, region: HOME_REGION });
    Object.assign(end.detail, { AutoScalingGroupName: 'web-asg', InstanceRefreshId: started });
    const records = sample<{ Records: Record<string, unknown>[] }>('sqs-build-job');
    const sqsEvent = { Records: [{ ...records.Records[0], body: JSON.stringify(end) }] };
    const { awsMemberRuntime } = await import('#functions/commons/aws-deps.ts');
    // act
    world.trace.take();
    const before = world.fakes.events.delivered.length;
    const response = await subscriberHandler(await awsMemberRuntime().subscriber(), tools)(
      sqsEvent as never,
      context,
    );
    const judged = await world.judge(world.requests(subscriber));
    verdicts.push(...judged);
    // assess
    assert.deepEqual(response, { batchItemFailures: [] });
    const reports = world.fakes.events.delivered.slice(before).map((e) => JSON.parse(e.Detail ?? '{}'));
    assert.equal(reports.length, 1);
    assert.equal(reports[0].instanceRefresh, 'failed');
    assert.deepEqual(reports[0].refresh, { autoScalingGroupName: 'web-asg', instanceRefreshId: started });
    assert.equal(reports[0].releaseId, 'web#00000002');
    assert.ok(judged.some((v) => v.request.action === 'events:PutEvents'));
    assert.deepEqual(deniedMessages(judged), []);
  });

  it("the member stack's forward rule may put Auto Scaling's events on the member bus", async () => {
    const judged = await world.judge(world.ruleTargetRequests('member'));
    assert.deepEqual(
      judged.map((v) => `${v.request.origin} ${v.request.resource}`),
      [`rule InstanceRefreshEndsToHome arn:aws:events:${HOME_REGION}:${MEMBER}:event-bus/stemcell-member`],
    );
    assert.deepEqual(deniedMessages(judged), []);
    verdicts.push(...judged);
  });

  it("the key-grant custom resource may grant the publisher's key, primary and replica, to Auto Scaling", async () => {
    const grant = world.member.value(world.member.resource('AutoScalingKeyGrant').Properties);
    const principal = rolePrincipal(world.member, 'KeyGrantFunctionRole', 'infra/member.yml');
    const judged: Verdict[] = [];
    for (const region of [HOME_REGION, 'us-east-1']) {
      const key = `arn:aws:kms:${region}:${HOME}:key/${KEY_ID}`;
      judged.push(
        ...(await world.judge(
          ['CreateGrant', 'RetireGrant'].map((op) => ({
            principal: {
              ...principal,
              policies: principal.policies.map((p) => ({
                ...p,
                policy: JSON.parse(
                  JSON.stringify(p.policy).replaceAll(`:kms:${HOME_REGION}:`, `:kms:${region}:`),
                ),
              })),
            },
            request: {
              action: `kms:${op}`,
              resource: key,
              context: (op === 'CreateGrant'
                ? { 'kms:GranteePrincipal': grant.GranteePrincipal, 'kms:GrantOperations': grant.Operations }
                : {}) as Record<string, string | string[]>,
              origin: `KeyGrantFunction ${op} (${region})`,
            },
          })),
        )),
      );
    }
    // RetireGrant: the grantee or the key's account retires grants; the stack's role only retires its own.
    const create = judged.filter((v) => v.request.action === 'kms:CreateGrant');
    assert.equal(create.length, 2);
    assert.deepEqual(deniedMessages(create), []);
    verdicts.push(...create);
  });

  it('grants nothing in the member stack that no traced call uses, outside the allow-list', () => {
    const unused: string[] = [];
    for (const [id] of resourcesOfType(world.member.template, 'AWS::IAM::Role')) {
      if (id === 'MemberReaderRole') continue; // judged with expire, in roles-vs-code.test.ts
      const principal = rolePrincipal(world.member, id, 'infra/member.yml');
      const mine = verdicts.filter((v) => v.principal === principal.label);
      const allow = [
        ...ALLOWED_UNUSED,
        // RetireGrant runs on stack deletion only, by the inline code; not simulated as allowed above.
        {
          role: 'KeyGrantFunctionRole',
          action: 'kms:RetireGrant',
          reason: 'the custom resource retires its grant on delete',
        },
      ];
      unused.push(...unusedGrants(principal, id, mine, allow));
    }
    assert.deepEqual(unused, []);
    assert.ok(asList(ALLOWED_UNUSED).every((a) => a.reason.length > 10));
  });
});
