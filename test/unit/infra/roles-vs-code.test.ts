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
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { zstdCompressSync } from 'node:zlib';
import type { Context } from 'aws-lambda';
import { BuildQueueConsumer } from '#aws/build-queue-consumer.ts';
import { AwsFleetControl } from '#aws/builder-fleet.ts';
import { AwsClients } from '#aws/clients.ts';
import { EventBridgePublisher } from '#aws/event-bus.ts';
import { S3ObjectStore } from '#aws/object-store.ts';
import { DynamoReleaseStore } from '#aws/release-store.ts';
import { EbsSnapshots } from '#aws/snapshots.ts';
import { Ec2Volumes } from '#aws/volumes.ts';
import { clearUnfinishedSnapshots } from '#builder/direct.ts';
import { backlogPerBuilder } from '#builder/fleet.ts';
import { latestStreamSnapshot } from '#builder/snapshot/restore.ts';
import { writeDirectSnapshot } from '#builder/snapshot/writer.ts';
import { releaseTags, SIGNATURE_METADATA_KEY, SIGNER_METADATA_KEY } from '#core/model/naming.ts';
import { buildFailedEvent } from '#core/release/build-failure.ts';
import type { ReconcileReport } from '#core/release/reconcile.ts';
import { snapshotCompletedEvent } from '#core/release/register.ts';
import { BootCheckJob, BuildJob } from '#events/aws.ts';
import { sample } from '#events/samples/index.ts';
import { createHandler as announceHandler } from '#functions/announce/handler.ts';
import { createHandler as bootCheckHandler } from '#functions/boot-check/handler.ts';
import { createPowertools } from '#functions/commons/powertools.ts';
import { createHandler as expireHandler } from '#functions/expire/handler.ts';
import { createHandler as ingestHandler } from '#functions/ingest/handler.ts';
import { createHandler as reconcileHandler } from '#functions/reconcile/handler.ts';
import { createHandler as registerHandler } from '#functions/register/handler.ts';
import { createHandler as sweepHandler } from '#functions/sweep-smoke-instances/handler.ts';
import { createHandler as syncHandler } from '#functions/sync-subscribers/handler.ts';
import { resourcesOfType } from '#test/support/cfn.ts';
import type { FakeInstance } from '#test/support/fake-aws/ec2.ts';
import {
  BUILD_REGIONS,
  deniedMessages,
  HOME,
  HOME_REGION,
  KEY_ID,
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
import { TarBuilder } from '#test/support/tar-builder.ts';

/** Granted actions no code path sends, and what uses the role's credentials for them instead. */
export const ALLOWED_UNUSED: AllowedUnused[] = [
  ...[
    'IngestRole',
    'RegisterRole',
    'AnnounceRole',
    'SyncSubscribersRole',
    'ExpireRole',
    'BootCheckRole',
    'SweepSmokeInstancesRole',
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
  ...[
    'IngestRole',
    'AnnounceRole',
    'SyncSubscribersRole',
    'ExpireRole',
    'ReconcileRole',
    'SweepSmokeInstancesRole',
  ].map((role) => ({
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
  ...['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes'].map(
    (action) => ({
      role: 'BootCheckRole',
      action,
      reason:
        "the SQS event source mapping polls the boot-check queue with the function's role (a boot still under way is left to come back)",
    }),
  ),
  ...[
    'dynamodb:PutItem',
    'organizations:ListAccounts',
    'organizations:ListAccountsForParent',
    'organizations:ListOrganizationalUnitsForParent',
    'scheduler:CreateSchedule',
    'iam:PassRole',
  ].map((action) => ({
    role: 'BootCheckRole',
    action,
    reason:
      "announcing what booted starts a stream's rollout waves (announceImage, the same code traced for AnnounceRole and ReconcileRole); no boot-checked stream with waves is traced here yet",
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

  /**
   * How a revision's images fare at the boot gate: its smoke instances show the marker, or pass both status
   * checks, or come up impaired; or the stream skips the check (announce shares and publishes itself).
   */
  type Boot = 'marker' | 'status-checks' | 'impaired' | 'unchecked';
  const SMOKE_PARAMETER = '/stemcell/boot-check/smoke-instance';

  /** The boot-check jobs announce queued, taken off the (shared) fake queue as Lambda's poller would. */
  function takeBootCheckJobs(): { messageId: string; body: string }[] {
    const queue = world.fakes.sqs.messages;
    const jobs = queue.filter((m) => BootCheckJob.safeParse(JSON.parse(m.body)).success);
    for (const job of jobs) queue.splice(queue.indexOf(job), 1);
    return jobs.map((m) => ({ messageId: m.id, body: m.body }));
  }

  /** The SQS event Lambda's event source mapping delivers for those jobs. */
  function bootCheckEvent(jobs: { messageId: string; body: string }[]) {
    const template = sample<{ Records: Record<string, unknown>[] }>('sqs-ebs-snapshot-notification')
      .Records[0];
    const queueArn = world.home.attribute('BootCheckQueue', 'Arn');
    return {
      Records: jobs.map((j) => ({
        ...template,
        messageId: j.messageId,
        body: j.body,
        eventSourceARN: queueArn,
      })),
    };
  }

  /** The smoke instances launched from this revision's image in a region. */
  const smokeInstancesOf = (region: string): FakeInstance[] =>
    [...world.ec2(region).instances.values()].filter(
      (i) => 'stemcell:boot-check' in i.tags && i.imageId === images.get(region),
    );

  // Three releases go all the way (their images boot, by the marker or by status checks, or their stream
  // skips the check); a fourth fails at its snapshot (register's failure path). A fifth, after expire, does not
  // boot (releaseSteps below).
  const revisions: [string, Boot | 'snapshot-fails'][] = [
    ['2026.11.20', 'marker'],
    ['2026.11.21', 'status-checks'],
    ['2026.11.22', 'unchecked'],
    ['2026.11.23', 'snapshot-fails'],
  ];
  function releaseSteps(revision: string, outcome: Boot | 'snapshot-fails') {
    const fails = outcome === 'snapshot-fails';
    it(`ingest of ${revision}: every call allowed for IngestRole`, async () => {
      // The release whose snapshot fails is a `create-snapshot` stream's (EBS's failure notification); the
      // others take the default, direct-API snapshots. The builder runs both ways.
      if (fails) putConfig({ web: { ...web(2), snapshots: 'create-snapshot' }, api });
      try {
        assert.deepEqual(deniedMessages(await ingestOnce(revision)), []);
      } finally {
        if (fails) putConfig({ web: web(2), api });
      }
    });

    it(`builder of ${revision} in every region: every call allowed for BuilderRole`, async () => {
      assert.deepEqual(deniedMessages(await buildEverywhere()), []);
    });

    it(`register of ${revision}: every call allowed for RegisterRole`, async () => {
      useFunctionEnvironment('RegisterLambdaFunction');
      const { awsRuntime } = await freshAwsDeps();
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
        const out = await registerHandler(await awsRuntime().register(), tools)(
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

    if (outcome === 'snapshot-fails') return;
    const boot: Boot = outcome;
    // The third release (its stream skips the boot check) rolls out in waves: the canary (MEMBER, with an
    // alarm), an OU, then everything else.
    const waves = revision === '2026.11.22';
    it(`announce of ${revision}: every call allowed for AnnounceRole`, async () => {
      useFunctionEnvironment('AnnounceLambdaFunction');
      // A stream may skip the boot check (an image nobody boots as is); otherwise the smoke instance decides.
      const unchecked = { ...web(2), bootCheck: { mode: 'none', allowUnverified: true } };
      putConfig({
        web: boot === 'unchecked' ? { ...unchecked, ...(waves ? { rollout: ROLLOUT } : {}) } : web(2),
        api,
      });
      const { awsRuntime } = await freshAwsDeps();
      const judged = await asRole('AnnounceRole', role('AnnounceRole'), async () => {
        const handler = announceHandler(await awsRuntime().announce(), tools);
        for (const region of waves ? [HOME_REGION] : BUILD_REGIONS) {
          const event = sample<{ region: string; detail: { ImageId: string } }>('ec2-ami-state-change');
          event.region = region;
          event.detail.ImageId = images.get(region) as string;
          const out = await handler(event as never, context('announce'));
          assert.equal(out.outcome, boot === 'unchecked' ? 'announced' : 'boot-checking');
        }
      });
      const shared = world.ec2(HOME_REGION).images.get(images.get(HOME_REGION) as string)?.launchPermissions;
      assert.equal(
        Boolean(shared?.length),
        boot === 'unchecked',
        'shared only once it booted (or unchecked)',
      );
      assert.deepEqual(deniedMessages(judged), []);
    });

    if (boot !== 'unchecked')
      it(`boot-check of ${revision} (${boot}): every call allowed for BootCheckRole`, async () => {
        useFunctionEnvironment('BootDashcheckLambdaFunction');
        // What each region stack publishes for the boot check (infra/region.yml SmokeInstanceSettings).
        const settings = world.regions.get(HOME_REGION) as RoleWorld['home'];
        world.fakes.ssm.parameters.set(
          SMOKE_PARAMETER,
          String(settings.value(settings.resource('SmokeInstanceSettings').Properties?.Value)),
        );
        const jobs = takeBootCheckJobs();
        assert.equal(jobs.length, BUILD_REGIONS.length, 'announce asked for one boot check per region');
        const { awsRuntime } = await freshAwsDeps();
        const judged = await asRole('BootCheckRole', role('BootCheckRole'), async () => {
          const handler = bootCheckHandler(await awsRuntime().bootCheck(), tools);
          // First look: the smoke instances are launched and pending; the records come back later.
          const first = await handler(bootCheckEvent(jobs) as never, context('boot-check'));
          assert.equal(first.batchItemFailures.length, BUILD_REGIONS.length, JSON.stringify(first));
          for (const region of BUILD_REGIONS) {
            const [instance, ...more] = smokeInstancesOf(region);
            assert.ok(instance && more.length === 0, `one smoke instance in ${region}`);
            instance.state = 'running';
            if (boot === 'marker') instance.console = 'Debian GNU/Linux 12 web ttyS0\n\nweb login: ';
            if (boot === 'status-checks') instance.status = { system: 'ok', instance: 'ok' };
            if (boot === 'impaired') {
              instance.console = 'Kernel panic - not syncing: No working init found.';
              instance.status = { system: 'ok', instance: 'impaired' };
            }
          }
          // Second look: decided.
          const second = await handler(bootCheckEvent(jobs) as never, context('boot-check'));
          assert.deepEqual(second, { batchItemFailures: [] });
        });
        for (const region of BUILD_REGIONS) {
          assert.deepEqual(
            smokeInstancesOf(region).map((i) => i.state),
            ['terminated'],
            `the smoke instance in ${region} is terminated`,
          );
          const image = world.ec2(region).images.get(images.get(region) as string);
          assert.equal(Boolean(image?.launchPermissions.length), boot !== 'impaired', `shared in ${region}`);
          if (boot === 'impaired') {
            assert.match(image?.tags['stemcell:boot-check'] ?? '', /^boot: /);
            assert.ok(image?.deprecation, `the image in ${region} is kept, deprecated`);
          }
        }
        assert.deepEqual(deniedMessages(judged), []);
      });

    if (boot !== 'impaired')
      it(`announce of ${revision}'s launch template reports: every call allowed for AnnounceRole`, async () => {
        useFunctionEnvironment('AnnounceLambdaFunction');
        const { awsRuntime } = await freshAwsDeps();
        const judged = await asRole('AnnounceRole', role('AnnounceRole'), async () => {
          const handler = announceHandler(await awsRuntime().announce(), tools);
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
          // The subscriber's second report: the refresh it started succeeded (Auto Scaling's end event).
          const ended = structuredClone(updated);
          Object.assign(ended.detail, {
            instanceRefresh: 'succeeded',
            refresh: {
              autoScalingGroupName: 'web-asg',
              instanceRefreshId: 'c613620e-07e2-4ed2-a9e2-ef8258911ade',
            },
          });
          await handler(ended as never, context('announce'));
        });
        assert.deepEqual(deniedMessages(judged), []);
      });
    if (!waves) return;
    // us-east-1's "AMI available" event was lost: the reconciler announces that image (to the canary only),
    // and, the last region of the wave, starts its bake timer.
    it(`reconcile of ${revision} (an announcement lost): every call allowed for ReconcileRole, to the canary only`, async () => {
      useFunctionEnvironment('ReconcileLambdaFunction');
      const { awsRuntime } = await freshAwsDeps();
      let announced: string[] = [];
      const judged = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
        const report = await reconcileHandler(await awsRuntime().reconcile(), tools)(
          {},
          context('reconcile'),
        );
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
      const { awsRuntime } = await freshAwsDeps();
      const fired: Awaited<ReturnType<ReturnType<typeof announceHandler>>>[] = [];
      const schedules: ReturnType<RoleWorld['fakes']['scheduler']['take']> = [];
      const judged = await asRole('AnnounceRole', role('AnnounceRole'), async () => {
        const handler = announceHandler(await awsRuntime().announce(), tools);
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
  for (const [revision, outcome] of revisions) releaseSteps(revision, outcome);

  it('sync-subscribers: every call allowed for SyncSubscribersRole; EventBridge may deliver to every target', async () => {
    useFunctionEnvironment('SyncDashsubscribersLambdaFunction');
    const { awsRuntime } = await freshAwsDeps();
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
      ({ caughtUp } = await syncHandler(await awsRuntime().syncSubscribers(), tools)(
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
    const targets = world.fakes.events.allRules().flatMap((r) => r.targets);
    assert.deepEqual(targets.map((t) => t.Id).sort(), [MEMBER, OTHER_MEMBER]);
    assert.deepEqual(
      [...world.fakes.events.buses.keys()],
      ['stemcell-fanout-1'],
      'the rules are on a fan-out bus',
    );
    assert.ok(
      !world.fakes.events.rules.has('stemcell-subscribers-9'),
      'the rule left on the central bus was removed',
    );
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
      const { awsRuntime } = await freshAwsDeps();
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
          const result = await expireHandler(await awsRuntime().expire(), tools, { graceMs: 0 })(
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
    const { awsRuntime } = await freshAwsDeps();
    let report: ReconcileReport | undefined;
    // act: one scheduled run; no report timeout, so every account of the audience is told again too.
    const judged = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
      report = await reconcileHandler(await awsRuntime().reconcile(), tools, { reportTimeoutMs: 0 })(
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
    // The registered images have not booted: the reconciler asks for their boot checks, and announces nothing.
    assert.deepEqual(report?.announced, [], 'nothing announced before it booted');
    const jobs = takeBootCheckJobs();
    assert.deepEqual(
      jobs.map((j) => BootCheckJob.parse(JSON.parse(j.body)).region).sort(),
      [...BUILD_REGIONS].sort(),
    );
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

    // prepare: their checks passed and were recorded, but the boot-check worker died before announcing
    const releases = new DynamoReleaseStore({
      tableName: world.home.ref('ReleaseTable'),
      client: new AwsClients().dynamodb(HOME_REGION),
    });
    const booting = (await releases.get(stranded))?.regions ?? {};
    for (const region of BUILD_REGIONS) {
      const check = booting[region]?.bootCheck;
      assert.equal(booting[region]?.state, 'booting');
      assert.ok(check);
      await releases.updateRegion(
        stranded,
        region,
        { bootCheck: { ...check, startedAt: check.requestedAt, passed: true, seconds: 30 } },
        { stateIn: ['booting'] },
      );
    }
    // act: the next run announces them (shares, publishes "Image Ready")
    let again: ReconcileReport | undefined;
    const announced = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
      again = await reconcileHandler(await awsRuntime().reconcile(), tools, { reportTimeoutMs: 0 })(
        { 'detail-type': 'Scheduled Event' },
        context('reconcile'),
      );
    });
    assert.deepEqual(
      again?.announced.map((a) => `${a.releaseId} ${a.region}`).sort(),
      BUILD_REGIONS.map((r) => `${stranded} ${r}`).sort(),
    );
    assert.deepEqual(deniedMessages(announced), []);

    // prepare: `stemcell rollback` killed right after it recorded a rollback whose images are gone everywhere
    // (so every region is rebuilt from the earlier tarball): no rollout marker, no build job sent
    const earlier = await releases.get(stranded);
    assert.ok(earlier);
    const { release: rollback } = await releases.create({
      stream: earlier.stream,
      revision: `${earlier.revision}-rollback-1`,
      source: earlier.source,
      regions: BUILD_REGIONS,
      uploadedAt: new Date().toISOString(),
      rollback: {
        of: earlier.revision,
        images: {},
        rebuild: Object.fromEntries(BUILD_REGIONS.map((r) => [r, 'its image was deregistered'])),
      },
    });
    const sentBefore = world.fakes.sqs.messages.length;
    // act: the next run finishes the rollback: its marker, and a build job per region
    const finished = await asRole('ReconcileRole', role('ReconcileRole'), async () => {
      await reconcileHandler(await awsRuntime().reconcile(), tools, { reportTimeoutMs: 0 })(
        { 'detail-type': 'Scheduled Event' },
        context('reconcile'),
      );
    });
    const rebuilds = world.fakes.sqs.messages
      .slice(sentBefore)
      .map((m) => JSON.parse(m.body) as { releaseId: string; region: string })
      .filter((j) => j.releaseId === rollback.releaseId);
    assert.deepEqual(rebuilds.map((j) => j.region).sort(), [...BUILD_REGIONS].sort());
    assert.deepEqual(deniedMessages(finished), []);
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

  // After expire (which keeps the newest images) and reconcile: a revision whose images do not boot.
  releaseSteps('2026.11.26', 'impaired');

  it('ingest of a duplicate S3 event and of other content under a published revision: every call allowed for IngestRole', async () => {
    // S3 delivers events at least once: the second finds the release (a Query of its items), queues nothing.
    assert.deepEqual(deniedMessages(await ingestOnce('2026.11.20')), []);
    // Another tarball under the same key: refused, recorded on the release, told once.
    assert.deepEqual(deniedMessages(await ingestOnce('2026.11.20', {}, 'other content')), []);
  });

  it("ingest of a signed revision: GetPublicKey of the release pipeline's KMS signing key allowed for IngestRole", async () => {
    // The signing key lives in another account (the release pipeline's); its key policy admits the publisher's
    // account, as docs/guides/provenance.md tells its owner to write it.
    const pipeline = '444455556666';
    const signer = `arn:aws:kms:${HOME_REGION}:${pipeline}:key/0a1b2c3d-1111-2222-3333-444455556666`;
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    world.fakes.kms.signingKeys.set(signer, publicKey.export({ format: 'der', type: 'spki' }));
    world.resources.add(signer, {
      Statement: [
        {
          Sid: 'StemcellIngestReadsThePublicKey',
          Effect: 'Allow',
          Principal: { AWS: `arn:aws:iam::${HOME}:root` },
          Action: 'kms:GetPublicKey',
          Resource: '*',
        },
      ],
    });
    putConfig({ web: { ...web(2), provenance: { required: true, trustedKeys: [signer] } }, api });
    try {
      const body = zstdCompressSync(new TarBuilder().file('etc/revision', '2026.11.30').build());
      const signature = sign('sha256', body, { key: privateKey, dsaEncoding: 'der' }).toString('base64');
      const before = world.fakes.sqs.messages.length;
      const judged = await ingestOnce('2026.11.30', {
        [SIGNATURE_METADATA_KEY]: signature,
        [SIGNER_METADATA_KEY]: signer,
      });
      assert.deepEqual(deniedMessages(judged), []);
      assert.ok(
        judged.some((v) => v.request.action === 'kms:GetPublicKey' && v.request.resource === signer),
        'the signer key was read',
      );
      assert.ok(world.fakes.sqs.messages.length > before, 'the signed revision was queued for its builds');
    } finally {
      putConfig({ web: web(2), api });
    }
  });

  it('sweep-smoke-instances: every call allowed for SweepSmokeInstancesRole', async () => {
    useFunctionEnvironment('SweepDashsmokeDashinstancesLambdaFunction');
    // One smoke instance escaped its check (the invocation died before stop) hours ago; one a live check owns.
    const launched = (ageMs: number, checkId: string): FakeInstance => {
      const i: FakeInstance = {
        id: `i-0${checkId.length}${ageMs}`.slice(0, 19),
        imageId: images.get('us-east-1') as string,
        instanceType: 't3.micro',
        subnetId: 'subnet-0123',
        state: 'running',
        launchTime: new Date(Date.now() - ageMs),
        tags: { 'stemcell:boot-check': checkId, 'stemcell:stream': 'web' },
        console: '',
        status: { system: 'ok', instance: 'ok' },
      };
      world.ec2('us-east-1').instances.set(i.id, i);
      return i;
    };
    const stray = launched(3 * 3600_000, 'boot-stray');
    const live = launched(60_000, 'boot-live');
    const { awsRuntime } = await freshAwsDeps();
    let terminated: Record<string, string[]> = {};
    const judged = await asRole('SweepSmokeInstancesRole', role('SweepSmokeInstancesRole'), async () => {
      ({ terminated } = await sweepHandler(await awsRuntime().sweepSmokeInstances(), tools)(
        {},
        context('sweep'),
      ));
    });
    assert.deepEqual(terminated, { 'us-east-1': [stray.id] });
    assert.equal(live.state, 'running', 'a check still running keeps its instance');
    assert.deepEqual(deniedMessages(judged), []);
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
  async function ingestOnce(
    revision: string,
    metadata: Record<string, string> = {},
    content = revision,
  ): Promise<Verdict[]> {
    useFunctionEnvironment('IngestLambdaFunction');
    // A tar archive (zstd-compressed, as the key says): ingest reads its first header before it takes a sequence.
    const body = zstdCompressSync(new TarBuilder().file('etc/revision', content).build());
    const key = `streams/web/${revision}.tar.zst`;
    // As the S3 event names it (the fake compares IfMatch as given).
    const etag = createHash('md5').update(body).digest('hex');
    world.fakes.s3.objects.set(`${world.bucket}/${key}`, {
      body,
      etag,
      versionId: `v-${revision}`,
      metadata: { sha256: createHash('sha256').update(body).digest('hex'), ...metadata },
    });
    const event = sample<{ detail: { bucket: { name: string }; object: Record<string, unknown> } }>(
      's3-object-created',
    );
    event.detail.bucket.name = world.bucket;
    event.detail.object.key = key;
    event.detail.object.etag = etag;
    event.detail.object.size = body.length;
    const { awsRuntime } = await freshAwsDeps();
    return asRole('IngestRole', role('IngestRole'), async () => {
      await ingestHandler(await awsRuntime().ingest(), tools)(event as never, context('ingest'));
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
    const snaps = new EbsSnapshots({ client: ec2, ebs: clients.ebs(region), sleep: async () => {} });
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
    // Settled by the handler or the consumer's first error, not by a poll: under CI load a build of
    // one job took longer than a fixed wait (stop 17 failed on a 10-second poll).
    const { promise: outcome, resolve: settle } = Promise.withResolvers<Error | undefined>();
    const consumer = new BuildQueueConsumer({
      queueUrl,
      sqs: clients.sqs(region),
      waitTimeSeconds: 0,
      visibilityTimeoutSeconds: 900,
      heartbeatSeconds: 1,
      retryDelaySeconds: () => 0,
      onError: (err) => settle(err),
      handleMessage: async (message) => {
        // The fleet's calls (src/builder/fleet.ts), with the group and hook the launch template names.
        const named = (name: string) =>
          String(JSON.stringify(userData).match(new RegExp(`${name}='?([\\w-]+)`))?.[1]);
        const fleet = new AwsFleetControl({
          autoScaling: clients.autoScaling(region),
          cloudwatch: clients.cloudwatch(region),
          sqs: clients.sqs(region),
          instanceId,
          groupName: named('STEMCELL_BUILDER_GROUP'),
          hookName: named('STEMCELL_LIFECYCLE_HOOK'),
          queueUrl,
        });
        await fleet.protect(true);
        const { visible, inService } = await fleet.backlog();
        await fleet.publishBacklogPerBuilder(backlogPerBuilder(visible, inService));
        await fleet.heartbeat();
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
        await fleet.protect(false);
        await fleet.complete();
        const tags = {
          ...releaseTags(job),
          'stemcell:sha256': job.source.sha256 ?? '',
          'stemcell:region': job.region,
        };
        let snapshotId: string;
        if (job.snapshots === 'direct') {
          // src/builder/direct.ts and snapshot/: what an earlier attempt left is deleted, the stream's disk is
          // restored from its last snapshot (a builder without it), the changed blocks are written on it.
          await snaps.start({
            volumeSizeGiB: 1,
            kmsKeyId: `arn:aws:kms:${region}:${HOME}:key/${KEY_ID}`,
            description: 'an attempt killed midway',
            tags,
            clientToken: `${job.releaseId}:${job.region}:0.1`,
            timeoutMinutes: 60,
          });
          await clearUnfinishedSnapshots(snaps, job);
          const parent = await latestStreamSnapshot(snaps, job.stream, job.region);
          if (parent) {
            for await (const ref of snaps.listBlocks(parent.snapshotId))
              await snaps.getBlock(parent.snapshotId, ref);
          }
          const data = Buffer.alloc(512 * 1024, job.sequence);
          const written = await writeDirectSnapshot(
            snaps,
            {
              volumeSizeGiB: 1,
              ...(parent
                ? { parentSnapshotId: parent.snapshotId }
                : { kmsKeyId: `arn:aws:kms:${region}:${HOME}:key/${KEY_ID}` }),
              description: `stemcell ${job.stream} ${job.revision}`,
              tags,
              clientToken: `${job.releaseId}:${job.region}:1.1`,
            },
            (async function* () {
              yield { index: 3, data, checksum: createHash('sha256').update(data).digest() };
            })(),
            { sleep: async () => {} },
          );
          snapshotId = written.snapshotId;
          await publisher.publish([
            snapshotCompletedEvent({
              stream: job.stream,
              revision: job.revision,
              sequence: job.sequence,
              releaseId: job.releaseId,
              region: job.region,
              snapshotId,
              method: 'direct',
              changedBlocks: written.changedBlocks,
              bytesPut: written.bytesPut,
              completedAt: new Date().toISOString(),
            }),
          ]);
        } else {
          snapshotId = (
            await snaps.create(volume.volumeId, {
              description: `stemcell ${job.stream} ${job.revision}`,
              tags,
              clientToken: `${job.releaseId}:${job.region}`,
            })
          ).snapshotId;
        }
        // One fake queue serves every region's URL: the job names its region.
        snapshots.set(job.region, snapshotId);
        await releases.updateRegion(job.releaseId, job.region, {
          state: 'snapshotting',
          updatedAt: new Date().toISOString(),
          snapshotId,
        });
        // The last attempt of a failed build reports it (handleBuildFailure); its PutEvents is the same call.
        await publisher.publish([buildFailedEvent(job, 'the last attempt of another build', 5, new Date())]);
        settle(undefined);
      },
    });
    consumer.start();
    // A liveness guard, not a timing bound: a job that never arrives fails the test instead of hanging it.
    const guard = setTimeout(() => settle(new Error('no job received within 300 s')), 300_000);
    const failure = await outcome.finally(() => {
      clearTimeout(guard);
      return consumer.stop();
    });
    assert.equal(failure, undefined, `the builder in ${region} handled its job: ${failure?.message}`);
  }
});
