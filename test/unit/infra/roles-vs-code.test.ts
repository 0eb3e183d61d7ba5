// Roles proven against the code. Each function of the control plane and the builder runs its real code
// (handler, core, AWS adapters, the same AWS wiring as on Lambda) over stateful fakes of the AWS APIs. Every
// SDK command it sends is traced, turned into the IAM requests AWS would authorize (implied ones included:
// KMS through S3 and EBS, iam:PassRole, cross-account PutEvents and AssumeRole with the other side's policy)
// and evaluated with an IAM policy simulator against the policies the templates deploy (serverless.yml as
// packaged, infra/region.yml, infra/member.yml). A denied request fails; so does a granted action no traced
// request uses, unless ALLOWED_UNUSED says which other user of the role's credentials needs it.
// The member account's subscriber runs in test/unit/infra/roles-vs-code-member.test.ts (its own process: it
// has another account id).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Context } from 'aws-lambda';
import { BuildQueueConsumer } from '#aws/build-queue-consumer.ts';
import { AwsClients } from '#aws/clients.ts';
import { EventBridgePublisher } from '#aws/event-bus.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { Ec2Volumes } from '#aws/volumes.ts';
import { buildFailedEvent } from '#core/build-failure.ts';
import { releaseTags } from '#core/naming.ts';
import type { ReconcileReport } from '#core/reconcile.ts';
import { BuildJob } from '#events/aws.ts';
import { sample } from '#events/samples/index.ts';
import { createHandler as announceHandler } from '#functions/announce/handler.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as expireHandler } from '#functions/expire/handler.ts';
import { createHandler as ingestHandler } from '#functions/ingest/handler.ts';
import { createHandler as reconcileHandler } from '#functions/reconcile/handler.ts';
import { createHandler as registerHandler } from '#functions/register/handler.ts';
import { createHandler as syncHandler } from '#functions/sync-subscribers/handler.ts';
import { resourcesOfType } from '#test/support/cfn.ts';
import {
  BUILD_REGIONS,
  deniedMessages,
  HOME,
  HOME_REGION,
  MEMBER,
  OTHER_MEMBER,
  RoleWorld,
} from '#test/support/role-world.ts';
import {
  type AllowedUnused,
  packagedServerlessTemplate,
  type RolePrincipal,
  rolePrincipal,
  unusedGrants,
  type Verdict,
} from '#test/support/roles.ts';

/** Granted actions no code path sends, and what uses the role's credentials for them instead. */
export const ALLOWED_UNUSED: AllowedUnused[] = [
  ...[
    'IngestRole',
    'RegisterRole',
    'AnnounceRole',
    'SyncSubscribersRole',
    'ExpireRole',
    'ReconcileRole',
  ].flatMap((role) => [
    {
      role,
      action: 'logs:CreateLogStream',
      reason: 'the Lambda runtime writes the function log with the role',
    },
    { role, action: 'logs:PutLogEvents', reason: 'the Lambda runtime writes the function log with the role' },
    {
      role,
      action: 'xray:PutTraceSegments',
      reason: 'active tracing: Lambda and the X-Ray SDK send segments',
    },
    {
      role,
      action: 'xray:PutTelemetryRecords',
      reason: 'active tracing: Lambda and the X-Ray SDK send segments',
    },
  ]),
  ...['IngestRole', 'AnnounceRole', 'SyncSubscribersRole', 'ExpireRole', 'ReconcileRole'].map((role) => ({
    role,
    action: 'sqs:SendMessage',
    reason:
      'the on-failure destination: Lambda sends failed asynchronous invocations to the DLQ with the role',
  })),
  ...['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes'].map((action) => ({
    role: 'RegisterRole',
    action,
    reason: "the SQS event source mapping polls the register queue with the function's role",
  })),
  ...['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'].map((action) => ({
    role: 'BuilderRole',
    action,
    reason: 'the CloudWatch agent on the builder ships /var/log/stemcell with the instance role',
  })),
  {
    role: 'BuilderRole',
    action: 's3:GetObject',
    reason: 'the launch template user data downloads the builder package (the agent reads tarballs too)',
  },
];

const tools = createPowertools({ serviceName: 'stemcell-roles', quiet: true });
const context = (name: string) => ({ functionName: name, awsRequestId: crypto.randomUUID() }) as Context;

let world: RoleWorld;
const verdicts = new Map<string, Verdict[]>();
const saved = { ...process.env };

/** Runs `act` as the role, and returns the verdicts of every request it made. */
async function asRole(
  roleLabel: string,
  principal: RolePrincipal,
  act: () => Promise<unknown>,
  assumed: Record<string, RolePrincipal> = {},
): Promise<Verdict[]> {
  world.trace.take();
  await act();
  const requests = world.requests(principal, assumed);
  assert.ok(requests.length > 0, `${roleLabel} made no AWS call: the scenario does not exercise it`);
  const judged = await world.judge(requests);
  verdicts.set(roleLabel, [...(verdicts.get(roleLabel) ?? []), ...judged]);
  return judged;
}

/**
 * aws-deps as a fresh module: each Lambda function is its own process, with its own clients, account id and
 * configuration read from the bucket; one module shared by all would let the first function's reads hide
 * the others'.
 */
let generation = 0;
async function freshAwsDeps(): Promise<typeof import('#functions/commons/aws-deps.ts')> {
  const url = new URL('../../../functions/commons/aws-deps.ts', import.meta.url);
  url.search = `fn=${++generation}`;
  return import(url.href);
}

/** The configuration the functions read from the bucket (config/stemcell.config.yml). */
function putConfig(streams: Record<string, unknown>) {
  world.fakes.s3.objects.set(`${world.bucket}/config/stemcell.config.yml`, {
    body: Buffer.from(JSON.stringify({ homeRegion: HOME_REGION, streams })),
    etag: `"c${generation}"`,
    versionId: `v${generation}`,
    metadata: {},
  });
}
const OU = 'ou-ab12-11111111';
const web = (keep: number, scope: unknown = 'organization') => ({
  regions: BUILD_REGIONS,
  keep,
  sharing: { organization: true },
  subscribers: { scope, ssmParameter: '/stemcell/{stream}/{region}/image-id' },
});
// Another stream, announced to an OU only: sync-subscribers walks the OU for it.
const api = {
  regions: [HOME_REGION],
  sharing: { organization: false, ous: [OU] },
  subscribers: { scope: { ous: [OU] } },
};

const CANARY_ALARM_NAME = 'stemcell-canary-errors';
const ROLLOUT = {
  waves: [
    {
      name: 'canary',
      accounts: [MEMBER],
      bakeMinutes: 30,
      alarmArn: `arn:aws:cloudwatch:${HOME_REGION}:${HOME}:alarm:${CANARY_ALARM_NAME}`,
    },
    // An OU's accounts (the OU is walked), then everything else in scope.
    { name: 'ou', ous: [OU], bakeMinutes: 30 },
    { name: 'rest', bakeMinutes: 30 },
  ],
};

function setEnv(vars: Record<string, string>) {
  for (const [k, v] of Object.entries(vars)) process.env[k] = v;
}

/** Exactly one function's environment, as Lambda gives it: nothing another function set stays behind. */
function useFunctionEnvironment(logicalId: string) {
  for (const [id] of resourcesOfType(world.home.template, 'AWS::Lambda::Function')) {
    for (const k of Object.keys(world.functionEnvironment(id))) delete process.env[k];
  }
  setEnv(world.functionEnvironment(logicalId));
}

describe('Roles vs code: the control plane and the builder (home account)', () => {
  let role: (id: string) => RolePrincipal;
  let builderRole: (region: string) => RolePrincipal;
  const snapshots = new Map<string, string>();
  const images = new Map<string, string>();
  let releaseId = '';
  let releaseSequence = 0;

  before(async () => {
    world = new RoleWorld(await packagedServerlessTemplate());
    role = (id) => rolePrincipal(world.home, id, 'serverless.yml');
    builderRole = (region) =>
      rolePrincipal(
        world.regions.get(region) as RoleWorld['home'],
        'BuilderRole',
        `infra/region.yml (${region})`,
      );
    world.install();
    setEnv({
      AWS_REGION: HOME_REGION,
      AWS_ACCESS_KEY_ID: 'AKIAHOMEFUNCTION',
      AWS_SECRET_ACCESS_KEY: 'x',
      POWERTOOLS_DEV: 'false',
    });
    delete process.env.STEMCELL_CONFIG;
    putConfig({ web: web(2), api });
  });
  after(() => {
    world?.restore();
    process.env = saved;
  });

  // Three releases go all the way; a fourth fails at its snapshot (register's failure path).
  for (const revision of ['2026.11.20', '2026.11.21', '2026.11.22', '2026.11.23']) {
    const fails = revision === '2026.11.23';
    it(`ingest of ${revision}: every call allowed for IngestRole`, async () => {
      assert.deepEqual(deniedMessages(await ingestOnce(revision)), []);
    });

    it(`builder of ${revision} in every region: every call allowed for BuilderRole`, async () => {
      assert.deepEqual(deniedMessages(await buildEverywhere()), []);
    });

    it(`register of ${revision}: every call allowed for RegisterRole`, async () => {
      useFunctionEnvironment('RegisterLambdaFunction');
      const { awsRegisterDeps } = await freshAwsDeps();
      const event = sample<{ Records: { body: string }[] }>('sqs-ebs-snapshot-notification');
      const template = event.Records[0] as { body: string };
      event.Records = BUILD_REGIONS.map((region) => {
        const body = JSON.parse(template.body);
        body.region = region;
        body.detail.snapshot_id = `arn:aws:ec2::${region}:snapshot/${snapshots.get(region)}`;
        if (fails) Object.assign(body.detail, { result: 'failed', cause: 'Source volume is in error state' });
        return { ...template, messageId: region, body: JSON.stringify(body) };
      });
      // A redelivered notification: RegisterImage meets the name it already holds and finds that image.
      if (!fails)
        event.Records.push({ ...(event.Records[0] as { body: string }), messageId: 'redelivered' } as never);
      const judged = await asRole('RegisterRole', role('RegisterRole'), async () => {
        const out = await registerHandler(await awsRegisterDeps(), tools)(
          event as never,
          context('register'),
        );
        assert.deepEqual(out, { batchItemFailures: [] });
      });
      for (const region of BUILD_REGIONS) {
        const image = [...world.ec2(region).images.values()].find(
          (i) => i.snapshotId === snapshots.get(region),
        );
        assert.equal(Boolean(image), !fails, `image registered in ${region}`);
        if (image) images.set(region, image.id);
      }
      assert.deepEqual(deniedMessages(judged), []);
    });

    if (fails) continue;
    // The third release rolls out in waves: the canary (MEMBER, with an alarm), an OU, then everything else.
    const waves = revision === '2026.11.22';
    it(`announce of ${revision}: every call allowed for AnnounceRole`, async () => {
      if (waves) putConfig({ web: { ...web(2), rollout: ROLLOUT }, api });
      useFunctionEnvironment('AnnounceLambdaFunction');
      const { awsAnnounceDeps } = await freshAwsDeps();
      const judged = await asRole('AnnounceRole', role('AnnounceRole'), async () => {
        const handler = announceHandler(await awsAnnounceDeps(), tools);
        for (const region of waves ? [HOME_REGION] : BUILD_REGIONS) {
          const event = sample<{ region: string; detail: { ImageId: string } }>('ec2-ami-state-change');
          event.region = region;
          event.detail.ImageId = images.get(region) as string;
          await handler(event as never, context('announce'));
        }
        const updated = sample<{ detail: Record<string, unknown> }>('stemcell-launch-template-updated');
        Object.assign(updated.detail, {
          releaseId,
          stream: 'web',
          revision,
          sequence: releaseSequence,
          accountId: MEMBER,
          imageId: images.get(HOME_REGION),
        });
        const parsed = (await import('#events/stemcell.ts')).LaunchTemplateUpdatedEvent.safeParse(updated);
        assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
        await handler(updated as never, context('announce'));
      });
      const shared = world.ec2(HOME_REGION).images.get(images.get(HOME_REGION) as string)?.launchPermissions;
      assert.ok(shared?.length, 'the image was shared');
      assert.deepEqual(deniedMessages(judged), []);
    });

    if (!waves) continue;
    // us-east-1's "AMI available" event was lost: the reconciler announces that image (to the canary only),
    // and, the last region of the wave, starts its bake timer.
    it(`reconcile of ${revision} (an announcement lost): every call allowed for ReconcileRole, to the canary only`, async () => {
      useFunctionEnvironment('ReconcileLambdaFunction');
      const { awsReconcileDeps } = await freshAwsDeps();
      let announced: string[] = [];
      const judged = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
        const report = await reconcileHandler(await awsReconcileDeps(), tools)({}, context('reconcile'));
        announced = report.announced.map((a) => a.region);
      });
      assert.deepEqual(announced, ['us-east-1'], 'the reconciler announced the region whose event was lost');
      const readies = world.fakes.events.delivered.filter((e) => e.DetailType === 'Image Ready');
      assert.deepEqual(JSON.parse(readies.at(-1)?.Detail ?? '{}').audience, [MEMBER], 'to the canary only');
      // The last region of the canary: the reconciler started its bake timer.
      assert.equal(world.fakes.scheduler.schedules.size, 1);
      assert.deepEqual(deniedMessages(judged), []);
    });

    it(`bake timers of ${revision}: Scheduler invokes announce with BakeTimerRole, announce reads the wave alarm`, async () => {
      useFunctionEnvironment('AnnounceLambdaFunction');
      world.fakes.cloudwatch.alarms.set(CANARY_ALARM_NAME, 'OK');
      const { awsAnnounceDeps } = await freshAwsDeps();
      const fired: Awaited<ReturnType<ReturnType<typeof announceHandler>>>[] = [];
      const schedules: ReturnType<RoleWorld['fakes']['scheduler']['take']> = [];
      const judged = await asRole('AnnounceRole', role('AnnounceRole'), async () => {
        const handler = announceHandler(await awsAnnounceDeps(), tools);
        // Each wave's timer, as Scheduler fires it: the target input is what announce scheduled.
        for (let due = world.fakes.scheduler.take(); due.length > 0; due = world.fakes.scheduler.take()) {
          for (const schedule of due) {
            schedules.push(schedule);
            fired.push(await handler(JSON.parse(schedule.target.Input ?? '{}'), context('announce')));
          }
        }
      });
      assert.deepEqual(
        fired.map((f) => (f as { outcome: string }).outcome),
        ['next-wave', 'next-wave', 'rollout-complete'],
      );
      assert.deepEqual(deniedMessages(judged), []);
      // What Scheduler then does with the schedule's role: invoke the target, dead-letter what it cannot.
      const timerRole = role('BakeTimerRole');
      const invocations = await world.judge(
        schedules.flatMap((s) => [
          {
            principal: timerRole,
            request: { action: 'lambda:InvokeFunction', resource: s.target.Arn, context: {}, origin: s.name },
          },
          ...(s.target.DeadLetterConfig?.Arn
            ? [
                {
                  principal: timerRole,
                  request: {
                    action: 'sqs:SendMessage',
                    resource: s.target.DeadLetterConfig.Arn,
                    context: {},
                    origin: `${s.name} dead letter`,
                  },
                },
              ]
            : []),
        ]),
      );
      assert.equal(invocations.length, 6, 'three timers, each with a target and a dead-letter queue');
      assert.ok(
        schedules.every((s) => s.target.RoleArn === world.home.attribute('BakeTimerRole', 'Arn')),
        'the schedules run as BakeTimerRole',
      );
      assert.deepEqual(deniedMessages(invocations), []);
      verdicts.set('BakeTimerRole', invocations);
      putConfig({ web: web(2), api });
    });
  }

  it('sync-subscribers: every call allowed for SyncSubscribersRole; EventBridge may deliver to every target', async () => {
    useFunctionEnvironment('SyncDashsubscribersLambdaFunction');
    const { awsSyncSubscribersDeps } = await freshAwsDeps();
    // A rule left over with a target that must go: removal and deletion run too.
    world.fakes.events.rules.set('stemcell-subscribers-9', {
      pattern: JSON.stringify({
        source: ['stemcell'],
        'detail-type': ['Image Ready'],
        detail: { stream: ['old'] },
      }),
      targets: [
        { Id: '444444444444', Arn: 'arn:aws:events:eu-west-1:444444444444:event-bus/stemcell-member' },
      ],
    });
    let caughtUp: { accountId: string; region: string }[] = [];
    const judged = await asRole('SyncSubscribersRole', role('SyncSubscribersRole'), async () => {
      ({ caughtUp } = await syncHandler(await awsSyncSubscribersDeps(), tools)(
        { 'detail-type': 'Scheduled Event' },
        context('sync'),
      ));
    });
    // No rule targeted the members before this run: they are late joiners, told of the newest image everywhere.
    assert.deepEqual(
      caughtUp.map((c) => `${c.accountId} ${c.region}`).sort(),
      [MEMBER, OTHER_MEMBER].flatMap((a) => BUILD_REGIONS.map((r) => `${a} ${r}`)).sort(),
    );
    assert.deepEqual(deniedMessages(judged), []);
    // What EventBridge then does with the delivery role: put events on each member account's bus.
    const targets = [...world.fakes.events.rules.values()].flatMap((r) => r.targets);
    assert.deepEqual(targets.map((t) => t.Id).sort(), [MEMBER, OTHER_MEMBER]);
    const delivery = role('SubscriberDeliveryRole');
    const deliveries = await world.judge(
      targets.map((t) => ({
        principal: delivery,
        request: { action: 'events:PutEvents', resource: t.Arn, context: {}, origin: 'rule target' },
      })),
    );
    // The member stack's bus policy lets the publisher account in: the member bus of MEMBER is modelled.
    const modelled = deliveries.filter((v) => v.request.resource.includes(`:${MEMBER}:`));
    assert.equal(modelled.length, 1);
    assert.deepEqual(deniedMessages(modelled), []);
    verdicts.set('SubscriberDeliveryRole', modelled);
  });

  for (const [round, config] of [
    ['keep 2, announced to the Organization', { web: web(2), api }],
    ['keep 1, announced to an OU', { web: web(1, { ous: [OU] }), api }],
  ] as const) {
    it(`expire (${round}): every call allowed for ExpireRole, and in member accounts for the reader role`, async () => {
      useFunctionEnvironment('ExpireLambdaFunction');
      putConfig(config);
      // The home account has a launch template of its own on the newest image.
      world
        .ec2(HOME_REGION)
        .addLaunchTemplate('home-web', { 'stemcell:stream': 'web' }, images.get(HOME_REGION) as string);
      const { awsExpireDeps } = await freshAwsDeps();
      const reader = rolePrincipal(world.member, 'MemberReaderRole', 'infra/member.yml');
      const assumed = Object.fromEntries(
        [MEMBER, OTHER_MEMBER].map((account) => [
          `arn:aws:iam::${account}:role/stemcell-member-reader`,
          { ...reader, arn: `arn:aws:iam::${account}:role/stemcell-member-reader`, account },
        ]),
      );
      let retired = 0;
      const judged = await asRole(
        'ExpireRole',
        role('ExpireRole'),
        async () => {
          // No grace: deprecation and deregistration in the same run, so every retiring call is made.
          const result = await expireHandler(await awsExpireDeps(), tools, { graceMs: 0 })(
            {},
            context('expire'),
          );
          retired = result.expired.filter((e) => e.action === 'deregistered').length;
        },
        assumed,
      );
      assert.equal(retired, BUILD_REGIONS.length, 'an older revision was retired in every region');
      // Member reader roles are judged as the member stack's MemberReaderRole, with its own trust policy.
      const byReader = judged.filter((v) => v.principal.includes('MemberReaderRole'));
      assert.ok(byReader.length > 0, 'expire read member accounts through their reader role');
      verdicts.set('MemberReaderRole', [...(verdicts.get('MemberReaderRole') ?? []), ...byReader]);
      verdicts.set(
        'ExpireRole',
        (verdicts.get('ExpireRole') ?? []).filter((v) => !v.principal.includes('MemberReaderRole')),
      );
      assert.deepEqual(deniedMessages(judged), []);
    });
  }

  it('reconcile: every call allowed for ReconcileRole, on every path it re-drives', async () => {
    putConfig({ web: web(2), api });
    // prepare: 2026.11.24 built everywhere, its snapshot notifications lost (snapshot, no image: register and
    // announce are the reconciler's); 2026.11.25 ingested and never built. The fake SQS serves every queue URL
    // from one list: the jobs of 2026.11.25 stand for the build DLQs' content (their attempts ran out).
    assert.deepEqual(deniedMessages(await ingestOnce('2026.11.24')), []);
    assert.deepEqual(deniedMessages(await buildEverywhere()), []);
    const stranded = releaseId;
    assert.deepEqual(deniedMessages(await ingestOnce('2026.11.25')), []);
    useFunctionEnvironment('ReconcileLambdaFunction');
    const { awsReconcileDeps } = await freshAwsDeps();
    let report: ReconcileReport | undefined;
    // act: one scheduled run; no report timeout, so every account of the audience is told again too.
    const judged = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
      report = await reconcileHandler(await awsReconcileDeps(), tools, { reportTimeoutMs: 0 })(
        { 'detail-type': 'Scheduled Event' },
        context('reconcile'),
      );
    });
    // assess: each path ran, and each call was allowed
    assert.deepEqual(
      report?.failed.map((f) => f.region).sort(),
      [...BUILD_REGIONS].sort(),
      'the DLQ jobs failed their regions',
    );
    assert.deepEqual(
      report?.registered.map((r) => `${r.releaseId} ${r.region}`).sort(),
      BUILD_REGIONS.map((r) => `${stranded} ${r}`).sort(),
    );
    assert.equal(report?.announced.length, BUILD_REGIONS.length);
    const told = new Set(report?.redelivered.map((r) => r.accountId));
    assert.deepEqual([...told].sort(), [MEMBER, OTHER_MEMBER]);
    const memberPuts = judged.filter(
      (v) => v.request.action === 'events:PutEvents' && !v.request.resource.includes(`:${HOME}:`),
    );
    assert.ok(
      memberPuts.every((v) => v.request.resource.endsWith(':event-bus/stemcell-member')),
      `Image Ready goes to the member stack's bus: ${memberPuts.map((v) => v.request.resource).join(', ')}`,
    );
    assert.deepEqual(deniedMessages(judged), []);
  });

  it("the templates' own rule targets may put events on the buses they target", async () => {
    const judged = await world.judge(world.ruleTargetRequests());
    assert.ok(judged.length >= 3);
    assert.deepEqual(deniedMessages(judged), []);
    for (const v of judged) {
      const id = v.principal.split(' ').at(-1) as string;
      verdicts.set(id, [...(verdicts.get(id) ?? []), v]);
    }
  });

  it('grants nothing that no traced call uses, outside the allow-list', () => {
    const unused: string[] = [];
    const check = (id: string, principal: RolePrincipal) =>
      unused.push(...unusedGrants(principal, id, verdicts.get(id) ?? [], ALLOWED_UNUSED));
    for (const [id] of resourcesOfType(world.home.template, 'AWS::IAM::Role')) {
      if (id === 'OrganizationEventsRole' && !verdicts.has(id)) continue; // us-east-1 home only
      check(id, role(id));
    }
    for (const region of BUILD_REGIONS) {
      const t = world.regions.get(region) as RoleWorld['home'];
      for (const [id] of resourcesOfType(t.template, 'AWS::IAM::Role')) {
        check(id, rolePrincipal(t, id, `infra/region.yml (${region})`));
      }
    }
    check('MemberReaderRole', rolePrincipal(world.member, 'MemberReaderRole', 'infra/member.yml'));
    assert.deepEqual(unused, []);
  });

  it('every allow-list entry names a grant that exists and gives a reason', () => {
    for (const entry of ALLOWED_UNUSED) {
      assert.ok(entry.reason.length > 10, `${entry.role} ${entry.action}: reason`);
    }
  });

  /** Ingest of one revision of web, as S3's "Object Created" event triggers it; the verdicts of its calls. */
  async function ingestOnce(revision: string): Promise<Verdict[]> {
    useFunctionEnvironment('IngestLambdaFunction');
    const body = Buffer.from(`tarball ${revision}`);
    const key = `streams/web/${revision}.tar.zst`;
    // As the S3 event names it (the fake compares IfMatch as given).
    const etag = createHash('md5').update(body).digest('hex');
    world.fakes.s3.objects.set(`${world.bucket}/${key}`, {
      body,
      etag,
      versionId: `v-${revision}`,
      metadata: { sha256: createHash('sha256').update(body).digest('hex') },
    });
    const event = sample<{ detail: { bucket: { name: string }; object: Record<string, unknown> } }>(
      's3-object-created',
    );
    event.detail.bucket.name = world.bucket;
    event.detail.object.key = key;
    event.detail.object.etag = etag;
    event.detail.object.size = body.length;
    const { awsIngestDeps } = await freshAwsDeps();
    return asRole('IngestRole', role('IngestRole'), async () => {
      await ingestHandler(await awsIngestDeps(), tools)(event as never, context('ingest'));
    });
  }

  /** One build of the queued job in every build region, each as that region's BuilderRole. */
  async function buildEverywhere(): Promise<Verdict[]> {
    const judged: Verdict[] = [];
    for (const region of BUILD_REGIONS) {
      const instanceId = `i-0builder${region.replaceAll('-', '')}`.slice(0, 19);
      world.instanceTags.set(instanceId, { 'stemcell:builder': 'true', Name: 'stemcell-builder' });
      const t = world.regions.get(region) as RoleWorld['home'];
      judged.push(
        ...(await asRole(`BuilderRole`, builderRole(region), () =>
          buildOnce(
            region,
            instanceId,
            t.value(t.resource('BuilderLaunchTemplate').Properties?.LaunchTemplateData?.UserData),
          ),
        )),
      );
    }
    return judged;
  }

  /** The builder's calls for one build, through the adapters and wiring src/builder/agent.ts uses. */
  async function buildOnce(region: string, instanceId: string, userData: unknown): Promise<void> {
    assert.ok(userData, 'the launch template has user data');
    const clients = new AwsClients();
    const ec2 = clients.ec2(region);
    const volumes = new Ec2Volumes({
      client: ec2,
      wait: { maxWaitTime: 5, minDelay: 1, maxDelay: 1 },
      sleep: async () => {},
      deviceLookup: async (volumeId) => `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId}`,
    });
    const snaps = new EbsSnapshots({ client: ec2, sleep: async () => {} });
    const objects = new S3ObjectStore({ bucket: world.bucket, client: clients.s3(HOME_REGION) });
    const releases = new DynamoReleaseStore({
      tableName: world.home.ref('ReleaseTable'),
      client: clients.dynamodb(HOME_REGION),
    });
    const publisher = new EventBridgePublisher({
      client: clients.eventBridge(HOME_REGION),
      eventBusName: 'stemcell',
    });
    const queueUrl = world.regions.get(region)?.ref('BuildQueue') as string;
    let handled = false;
    const consumer = new BuildQueueConsumer({
      queueUrl,
      sqs: clients.sqs(region),
      waitTimeSeconds: 0,
      visibilityTimeoutSeconds: 900,
      heartbeatSeconds: 1,
      onError: (err) => console.error('builder consumer:', err),
      handleMessage: async (message) => {
        // The worker's steps (src/builder/worker.ts), each through its port.
        const job = BuildJob.parse(JSON.parse(message.body));
        // A build outlasts the heartbeat: the consumer extends the message's visibility meanwhile.
        await new Promise((r) => setTimeout(r, 1_300));
        releaseId = job.releaseId;
        releaseSequence = job.sequence;
        await releases.get(job.releaseId);
        await releases.updateRegion(
          job.releaseId,
          job.region,
          { state: 'building', updatedAt: new Date().toISOString(), attempts: 1 },
          { stateIn: ['queued', 'building', 'failed'] },
        );
        const existing = await volumes.findForStream(job.stream, `${region}a`);
        const volume =
          existing ??
          (await volumes.create({
            stream: job.stream,
            availabilityZone: `${region}a`,
            sizeGiB: job.volumeSizeGiB,
            kmsKeyId: `arn:aws:kms:${region}:${HOME}:key/${world.keyArn.split('/').at(-1)}`,
            tags: {},
            clientToken: `${job.stream}:${region}a`,
          }));
        await volumes.grow(volume.volumeId, volume.sizeGiB + 1);
        await volumes.attach(volume.volumeId, instanceId);
        const { body } = await objects.get(job.source.key, job.source.etag);
        for await (const _ of body) {
          // the applier consumes the stream
        }
        await volumes.detach(volume.volumeId, instanceId);
        const snapshot = await snaps.create(volume.volumeId, {
          description: `stemcell ${job.stream} ${job.revision}`,
          tags: {
            ...releaseTags(job),
            'stemcell:sha256': job.source.sha256 ?? '',
            'stemcell:region': job.region,
          },
          clientToken: `${job.releaseId}:${job.region}`,
        });
        // One fake queue serves every region's URL: the job names its region.
        snapshots.set(job.region, snapshot.snapshotId);
        await releases.updateRegion(job.releaseId, job.region, {
          state: 'snapshotting',
          updatedAt: new Date().toISOString(),
          snapshotId: snapshot.snapshotId,
        });
        // The last attempt of a failed build reports it (handleBuildFailure); its PutEvents is the same call.
        await publisher.publish([buildFailedEvent(job, 'the last attempt of another build', 5, new Date())]);
        handled = true;
      },
    });
    consumer.start();
    for (let i = 0; i < 1000 && !handled; i++) await new Promise((r) => setTimeout(r, 10));
    await consumer.stop();
    assert.ok(handled, `the builder in ${region} received its job`);
  }
});
