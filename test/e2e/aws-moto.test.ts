// The AWS world end to end on moto (an AWS emulator nobody here wrote): the packaged serverless template,
// infra/region.yml per region and infra/member.yml per member account deployed on moto's CloudFormation; every
// function run as Lambda would run it; members acting as themselves through STS; the builder's agent on the
// instance its Auto Scaling group launched. Then what people do: publish two streams twice, watch a boot check
// fail in one region, a canary wave halt on a failed instance refresh and a rollback follow, an account join
// the Organization, and expire retire what nothing uses. What a user sees is asserted: launch templates and SSM
// parameters in the member accounts, the release table (through `stemcell status`), the central bus, and the
// images. `npm run e2e:aws`. test/support/moto/ holds the launcher (moto's gaps, each patch naming its AWS
// page), the Lambda runtime, the deployer and the builder fleet; what the run does not prove is in
// docs (deploying guide, "What the emulator run proves").
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import { Checks } from '#test/support/moto/checks.ts';
import { type BusEvent, type Member, MotoWorld, type StatusRelease } from '#test/support/moto/world.ts';
import { packageServerless } from '#test/support/roles.ts';

const run = promisify(execFile);
const HOME = 'eu-west-1';
const OTHER = 'us-east-1';
const REGIONS = [HOME, OTHER];
const R1 = '2026.01.01';
const R2 = '2026.02.01';

// Minutes on a quiet machine; a shared one under load can take several times as long.
describe('AWS end to end on moto', { timeout: 30 * 60_000 }, () => {
  let world: MotoWorld;
  const checks = new Checks();
  const started = performance.now();
  let canary: Member;
  let prodA: Member;
  let prodB: Member;
  let prodC: Member;
  let tarballs: string;

  const steps: string[] = [];
  const step = (what: string) => steps.push(`${Math.round(performance.now() - started)} ms ${what}`);

  before(() => checks.phase('setup', setup));

  async function setup(): Promise<void> {
    world = await MotoWorld.start({ homeRegion: HOME, regions: REGIONS });
    step('moto started');
    await world.createOrganization(['canary', 'prod']);
    const packageDir = join(world.dir, 'package');
    tarballs = join(world.dir, 'tarballs');
    // What runs at once: packaging (esbuild), the sample tarballs, the subscriber artifact.
    await Promise.all([
      packageServerless(packageDir, { organizationId: world.organization.id }),
      mkdir(tarballs, { recursive: true }).then(() =>
        Promise.all(
          ['web-base', 'db-base'].flatMap((stream) =>
            [1, 2].map((revision) =>
              buildSampleTarball(join(world.dir, 'trees'), join(tarballs, `${stream}-${revision}.tar.zst`), {
                stream,
                revision,
                withKernel: true,
                files: 40,
              }),
            ),
          ),
        ),
      ),
    ]);
    step('packaged, tarballs built');
    await world.deployHome(packageDir, config(world));
    step('home stack deployed');
    await world.uploadArtifacts(await subscriberArtifact(world.dir));
    for (const region of REGIONS) await world.deployRegion(region);
    step('region stacks deployed');
    // Builders boot while the StackSet deploys to the member accounts.
    const builders = world.startBuilders();
    builders.catch(() => {}); // awaited below, once the member stacks are deployed
    canary = await world.createAccount('canary-a', 'canary');
    prodA = await world.createAccount('prod-a', 'prod');
    prodB = await world.createAccount('prod-b', 'prod');
    // The StackSet deploys to the accounts at once.
    await Promise.all(
      [canary, prodA, prodB].map(async (member) => {
        await world.deployMember(member);
        await world.optIn(member, [
          { name: 'web', stream: 'web-base', refreshGroup: 'web-asg' },
          { name: 'db', stream: 'db-base' },
        ]);
      }),
    );
    step('member stacks deployed');
    await builders;
    step('builders started');
    // An hour passes: sync-subscribers points the central bus at every member's bus.
    await world.fireSchedule('sync-subscribers');
    await world.quiet();
    step('subscribers synced');
  }

  after(async () => {
    const seconds = Math.round((performance.now() - started) / 1000);
    process.stdout.write(
      `${checks.summary({ moto: world?.moto.version ?? '?', regions: REGIONS.length, accounts: world?.members.length ?? 0, seconds })}\n`,
    );
    if (checks.failed > 0 || process.env.STEMCELL_E2E_LOGS) {
      process.stderr.write(`--- steps\n${steps.join('\n')}\n`);
      dumpLogs(world);
    }
    await world?.stop();
  });

  it('release 1: two streams build in both regions, boot, and reach every member account in waves', () =>
    checks.phase('release 1', async () => {
      await publish(world, 'web-base', R1, join(tarballs, 'web-base-1.tar.zst'));
      await publish(world, 'db-base', R1, join(tarballs, 'db-base-1.tar.zst'));
      await world.waitFor(
        'both releases of revision 1 complete',
        async () => {
          const done = (await world.centralBus()).filter((e) => e['detail-type'] === 'Release Complete');
          return done.length >= 2;
        },
        180_000,
      );
      await world.quiet();
      step('release 1 complete');
      const members = [canary, prodA, prodB];
      for (const stream of ['web-base', 'db-base']) {
        for (const region of REGIONS) {
          const image = await world.image(region, stream, R1);
          checks.ok(`${stream} ${R1} has an image in ${region}`, !!image);
          checks.equal(
            `${stream} ${R1} image in ${region} is tagged with its sequence`,
            image?.tags['stemcell:sequence'],
            '1',
          );
          for (const m of members) await expectOn(m, region, stream, image?.imageId, 1);
        }
      }
      const status = await world.status();
      for (const stream of ['web-base', 'db-base']) {
        const r = release(status, stream, R1);
        checks.ok(`status: ${stream} ${R1} complete`, !!r?.completedAt, r);
        for (const region of REGIONS) {
          checks.equal(`status: ${stream} ${R1} ${region}`, r?.regions[region]?.state, 'announced');
          checks.equal(
            `status: ${stream} ${R1} booted in ${region}`,
            r?.regions[region]?.bootCheck?.passed,
            true,
          );
          for (const m of members)
            checks.equal(
              `status: ${stream} ${R1} ${m.name}/${region}`,
              r?.accounts[`${m.id}/${region}`]?.outcome,
              'updated',
            );
        }
      }
      const web = release(status, 'web-base', R1);
      // The Organization's management account is in scope too (no launch template of its own: it never reports).
      const everyone = [world.home, prodA.id, prodB.id].sort();
      checks.equal(
        'status: web-base waves',
        web?.waves.map((w) => [w.name, w.state, w.accounts]),
        [
          ['canary', 'healthy', [canary.id]],
          ['everyone', 'healthy', everyone],
        ],
      );
      checks.equal(
        'status: web-base refreshes reported succeeded',
        REGIONS.map((region) => web?.accounts[`${canary.id}/${region}`]?.instanceRefresh),
        ['succeeded', 'succeeded'],
      );
      const bus = await world.centralBus();
      const readyWeb = bus.filter(
        (e) => e['detail-type'] === 'Image Ready' && e.detail.releaseId === web?.releaseId,
      );
      checks.equal(
        'bus: web-base Image Ready went to the canary wave first, then to everyone',
        readyWeb.map((e) => (e.detail.audience as string[]).join(',')).sort(),
        [canary.id, canary.id, everyone.join(','), everyone.join(',')].sort(),
      );
      checks.equal(
        'bus: no Build Failed, no Release Halted',
        count(bus, 'Build Failed') + count(bus, 'Release Halted'),
        0,
      );
      checks.equal('bus: Release Started ×2', count(bus, 'Release Started'), 2);
      noNewFailures();
      checks.assertAll();
    }));

  it('a new account joins the Organization and gets the newest image of each stream', () =>
    checks.phase(
      'a new account joins the Organization and gets the newest image of each stream',
      async () => {
        prodC = await world.createAccount('prod-c', 'prod');
        await world.deployMember(prodC);
        await world.optIn(prodC, [
          { name: 'web', stream: 'web-base', refreshGroup: 'web-asg' },
          { name: 'db', stream: 'db-base' },
        ]);
        // An hour later: sync-subscribers targets the new account's bus and catches it up.
        await world.fireSchedule('sync-subscribers');
        await world.waitFor('the new account on revision 1', async () => {
          for (const region of REGIONS) {
            const lt = await world.launchTemplate(prodC.id, region, 'db');
            if (lt.imageId !== (await world.image(region, 'db-base', R1))?.imageId) return false;
          }
          return true;
        });
        await world.quiet();
        step('late joiner caught up');
        for (const stream of ['web-base', 'db-base'])
          for (const region of REGIONS)
            await expectOn(prodC, region, stream, (await world.image(region, stream, R1))?.imageId, 1);
        noNewFailures();
        checks.assertAll();
      },
    ));

  it('release 2: a boot check fails in one region; a failed instance refresh halts the canary wave', () =>
    checks.phase('release 2', async () => {
      await world.moto.api('boot', {
        rules: [
          {
            region: OTHER,
            imageTags: { 'stemcell:stream': 'db-base', 'stemcell:revision': R2 },
            console:
              'Loading Linux 6.1.0 ...\n[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n',
            reachability: 'failed',
          },
        ],
      });
      await world.moto.api('refresh-outcomes', {
        outcomes: [
          {
            account: canary.id,
            region: HOME,
            group: 'web-asg',
            status: 'Failed',
            reason: 'instances failed their health checks',
          },
        ],
      });
      await publish(world, 'web-base', R2, join(tarballs, 'web-base-2.tar.zst'));
      await publish(world, 'db-base', R2, join(tarballs, 'db-base-2.tar.zst'));
      await world.waitFor(
        'web-base halted, db-base failed in one region and announced in the other',
        async () => {
          const bus = await world.centralBus();
          const halted = bus.some((e) => e['detail-type'] === 'Release Halted' && e.detail.revision === R2);
          const failed = bus.some(
            (e) => e['detail-type'] === 'Build Failed' && e.detail.stream === 'db-base',
          );
          const reports = bus.filter(
            (e) =>
              e['detail-type'] === 'Launch Template Updated' &&
              e.detail.stream === 'db-base' &&
              e.detail.revision === R2,
          );
          return halted && failed && reports.length >= 4;
        },
        180_000,
      );
      await world.quiet();
      step('release 2 settled');
      const members = [canary, prodA, prodB, prodC];
      const dbR1 = Object.fromEntries(
        await Promise.all(REGIONS.map(async (r) => [r, (await world.image(r, 'db-base', R1))?.imageId])),
      );
      const dbR2 = Object.fromEntries(
        await Promise.all(REGIONS.map(async (r) => [r, (await world.image(r, 'db-base', R2))?.imageId])),
      );
      for (const m of members) {
        await expectOn(m, HOME, 'db-base', dbR2[HOME], 2);
        await expectOn(m, OTHER, 'db-base', dbR1[OTHER], 1);
      }
      const status = await world.status();
      const db = release(status, 'db-base', R2);
      checks.equal(`status: db-base ${R2} ${HOME}`, db?.regions[HOME]?.state, 'announced');
      checks.equal(`status: db-base ${R2} ${OTHER} failed`, db?.regions[OTHER]?.state, 'failed');
      checks.ok(
        `status: db-base ${R2} ${OTHER} says why (boot, console)`,
        /^boot: /.test(db?.regions[OTHER]?.reason ?? '') &&
          /Kernel panic/.test(db?.regions[OTHER]?.reason ?? ''),
        db?.regions[OTHER],
      );
      const failedImage = await world.image(OTHER, 'db-base', R2);
      checks.ok(
        'the image that did not boot is kept for a look, deprecated and tagged',
        !!failedImage?.deprecationTime && !!failedImage?.tags['stemcell:boot-check'],
        failedImage,
      );
      const web = release(status, 'web-base', R2);
      checks.equal('status: web-base halted at the canary wave', web?.halted?.wave, 'canary');
      checks.ok(
        'status: the halt names the failed refresh',
        /instance refresh failed/.test(web?.halted?.reason ?? ''),
        web?.halted,
      );
      const webR1 = Object.fromEntries(
        await Promise.all(REGIONS.map(async (r) => [r, (await world.image(r, 'web-base', R1))?.imageId])),
      );
      const webR2 = Object.fromEntries(
        await Promise.all(REGIONS.map(async (r) => [r, (await world.image(r, 'web-base', R2))?.imageId])),
      );
      const bus = await world.centralBus();
      // A region whose image was ready after the halt is held back from the canary too: the bus says which.
      const toCanary = new Set(
        bus
          .filter(
            (e) =>
              e['detail-type'] === 'Image Ready' &&
              e.detail.revision === R2 &&
              (e.detail.audience as string[] | undefined)?.includes(canary.id),
          )
          .map((e) => e.detail.region as string),
      );
      checks.ok(
        'bus: web-base 2 reached the canary in at least the region whose refresh failed',
        toCanary.has(HOME),
        [...toCanary],
      );
      for (const region of REGIONS) {
        if (toCanary.has(region)) await expectOn(canary, region, 'web-base', webR2[region], 2);
        else await expectOn(canary, region, 'web-base', webR1[region], 1);
        for (const m of [prodA, prodB, prodC]) await expectOn(m, region, 'web-base', webR1[region], 1);
      }
      const haltedEvent = bus.find((e) => e['detail-type'] === 'Release Halted' && e.detail.revision === R2);
      checks.equal('bus: Release Halted names the canary wave', haltedEvent?.detail.wave, 'canary');
      checks.equal(
        'bus: no Image Ready of web-base 2 reached a later wave',
        bus
          .filter(
            (e) =>
              e['detail-type'] === 'Image Ready' &&
              e.detail.revision === R2 &&
              e.detail.stream === 'web-base',
          )
          .flatMap((e) => e.detail.audience as string[])
          .filter((a) => a !== canary.id),
        [],
      );
      const buildFailed = bus.find(
        (e) => e['detail-type'] === 'Build Failed' && e.detail.stream === 'db-base',
      );
      checks.equal(
        'bus: Build Failed for db-base in the region that did not boot',
        buildFailed?.detail.region,
        OTHER,
      );
      noNewFailures();
      checks.assertAll();
    }));

  it('rollback: every account goes back to revision 1, forward in sequence', () =>
    checks.phase('rollback', async () => {
      await world.moto.api('refresh-outcomes', { outcomes: [] });
      const announce = `arn:aws:lambda:${HOME}:${world.home}:function:stemcell-ci-announce`;
      const result = (await world.runtime.runAs(announce, OPERATOR, 'rollbackOnAws', {
        stream: 'web-base',
        to: R1,
      })) as {
        revision: string;
        sequence: number;
        reused: { region: string }[];
      };
      checks.equal(
        'rollback reuses revision 1 images in both regions',
        result.reused.map((r) => r.region).sort(),
        [...REGIONS].sort(),
      );
      await world.waitFor(
        'the rollback complete',
        async () =>
          (await world.centralBus()).some(
            (e) => e['detail-type'] === 'Release Complete' && e.detail.revision === result.revision,
          ),
        120_000,
      );
      await world.quiet();
      step('rollback complete');
      for (const region of REGIONS) {
        const webR1 = (await world.image(region, 'web-base', R1))?.imageId;
        for (const m of [canary, prodA, prodB, prodC])
          await expectOn(m, region, 'web-base', webR1, result.sequence);
      }
      const status = await world.status();
      const rb = release(status, 'web-base', result.revision);
      checks.equal('status: the rollback is a new release with the next sequence', rb?.sequence, 3);
      checks.ok('status: the rollback complete', !!rb?.completedAt, rb);
      const ready = (await world.centralBus()).filter(
        (e) => e['detail-type'] === 'Image Ready' && e.detail.revision === result.revision,
      );
      checks.ok(
        "bus: the rollback's Image Ready says what it rolls back",
        ready.length === 2 && ready.every((e) => !!e.detail.rollbackOf),
        ready,
      );
      noNewFailures();
      checks.assertAll();
    }));

  it('expire: retires the image nothing uses (deprecated, then deregistered), keeps the ones in use', () =>
    checks.phase('expire', async () => {
      const unused = (await world.image(HOME, 'db-base', R1))?.imageId ?? '';
      const inUse = (await world.image(OTHER, 'db-base', R1))?.imageId ?? '';
      const rolledBackTo = await Promise.all(
        REGIONS.map(async (r) => (await world.image(r, 'web-base', R1))?.imageId ?? ''),
      );
      await world.fireSchedule('expire');
      await world.quiet();
      const deprecated = await world.image(HOME, 'db-base', R1);
      checks.ok(
        'expire deprecates the unused image first (7 days of grace)',
        !!deprecated?.deprecationTime,
        deprecated,
      );
      checks.ok(
        'expire keeps the image launch templates still use',
        !(await world.image(OTHER, 'db-base', R1))?.deprecationTime,
      );
      for (const [i, region] of REGIONS.entries()) {
        const image = await world.image(region, 'web-base', R1);
        checks.ok(
          `expire keeps the image the rollback points at (${region})`,
          image?.imageId === rolledBackTo[i] && !image?.deprecationTime,
          image,
        );
      }
      // The operator shortens the grace: the next run deregisters what is deprecated and unused.
      await world.setFunctionVariable('stemcell-ci-expire', 'EXPIRE_GRACE_HOURS', '0');
      await world.fireSchedule('expire');
      await world.quiet();
      step('expired');
      checks.equal('expire deregistered the unused image', await world.imageExists(HOME, unused), false);
      checks.equal('expire kept the image in use', await world.imageExists(OTHER, inUse), true);
      for (const [i, region] of REGIONS.entries())
        checks.equal(
          `the rollback's image stays (${region})`,
          await world.imageExists(region, rolledBackTo[i] ?? ''),
          true,
        );
      noNewFailures();
      checks.assertAll();
    }));

  /** No invocation failed (errors, timeouts) since the last phase: the flow needed no retry to get here. */
  let failuresSeen = 0;
  function noNewFailures(): void {
    const failures = world.runtime.failures.slice(failuresSeen);
    failuresSeen = world.runtime.failures.length;
    checks.equal(
      'no function invocation failed',
      failures.map((f) => `${f.functionArn}: ${f.error.message}`),
      [],
    );
  }

  /** The member's launch template for the stream defaults to `imageId` (a stemcell version of `sequence`), and its SSM parameter says the same. */
  async function expectOn(
    m: Member,
    region: string,
    stream: string,
    imageId: string | undefined,
    sequence: number,
  ) {
    const lt = await world.launchTemplate(m.id, region, stream === 'web-base' ? 'web' : 'db');
    checks.ok(
      `${m.name} ${region} ${stream}: launch template default on ${imageId}`,
      !!imageId && lt.imageId === imageId,
      lt,
    );
    checks.ok(
      `${m.name} ${region} ${stream}: the default version is stemcell's, sequence ${sequence}`,
      lt.description.startsWith(`stemcell stream=${stream} sequence=${sequence} `),
      lt,
    );
    checks.equal(
      `${m.name} ${region} ${stream}: SSM parameter`,
      await world.parameter(m.id, region, `/stemcell/${stream}/${region}/image-id`),
      imageId,
    );
  }
});

const OPERATOR = new URL('../support/moto/operator.ts', import.meta.url).pathname;

function release(status: StatusRelease[], stream: string, revision: string): StatusRelease | undefined {
  return status.find((r) => r.stream === stream && r.revision === revision);
}

function count(events: BusEvent[], detailType: string): number {
  return events.filter((e) => e['detail-type'] === detailType).length;
}

function config(world: MotoWorld): string {
  const canaryOu = world.ous.get('canary');
  const prodOu = world.ous.get('prod');
  return JSON.stringify({
    homeRegion: HOME,
    streams: {
      'web-base': {
        regions: REGIONS,
        bootMode: 'legacy-bios',
        volumeSizeGiB: 1,
        keep: 1,
        // The builder here attaches a directory, not a block device (builder-worker.ts): the EBS volume and
        // CreateSnapshot path. The direct-API writer runs on moto in its contract case (contract-aws.test.ts).
        snapshots: 'create-snapshot',
        subscribers: { scope: 'organization', instanceRefresh: true },
        rollout: {
          waves: [
            // Long enough for every canary account to report (a silent follower halts the wave too): the halt
            // of revision 2 must come from its failed instance refresh, which halts at once.
            { name: 'canary', ous: [canaryOu], bakeMinutes: 0.34 },
            { name: 'everyone', bakeMinutes: 0.05 },
          ],
        },
      },
      'db-base': {
        regions: REGIONS,
        bootMode: 'legacy-bios',
        volumeSizeGiB: 1,
        keep: 1,
        snapshots: 'create-snapshot',
        subscribers: { scope: { ous: [canaryOu, prodOu] }, instanceRefresh: false },
      },
    },
  });
}

/** README "Publishing a tarball": the upload, with its sha256 as metadata. */
async function publish(world: MotoWorld, stream: string, revision: string, file: string): Promise<void> {
  const body = await readFile(file);
  const { createHash } = await import('node:crypto');
  await world.client(S3Client, world.home).send(
    new PutObjectCommand({
      Bucket: world.output('TarballBucketName'),
      Key: `streams/${stream}/${revision}.tar.zst`,
      Body: body,
      Metadata: { sha256: createHash('sha256').update(body).digest('hex') },
    }),
  );
}

/**
 * The member stacks' code object (README step 2 uploads dist/subscriber.zip). The runtime runs the checkout's
 * functions/subscriber/handler.ts, the module the bundle is built from, so the zip only has to exist.
 */
async function subscriberArtifact(dir: string): Promise<Buffer> {
  const stage = join(dir, 'artifact');
  await mkdir(join(stage, 'functions/subscriber'), { recursive: true });
  await writeFile(
    join(stage, 'functions/subscriber/README'),
    'stemcell e2e: the runtime runs functions/subscriber/handler.ts from the checkout\n',
  );
  await run('zip', ['-qr', join(dir, 'subscriber.zip'), '.'], { cwd: stage });
  return readFile(join(dir, 'subscriber.zip'));
}

function dumpLogs(world: MotoWorld | undefined): void {
  if (!world) return;
  for (const [name, lines] of world.runtime.logs())
    process.stderr.write(`--- ${name}\n${lines.slice(-60).join('\n')}\n`);
  for (const b of world.builders)
    process.stderr.write(`--- builder ${b.region}\n${b.logs.slice(-40).join('\n')}\n`);
  process.stderr.write(`--- invocations\n${world.runtime.trace.join('\n')}\n`);
  for (const f of world.runtime.failures)
    process.stderr.write(`--- failure ${f.functionArn} (${f.source})\n${f.error.stack}\n`);
  process.stderr.write(`--- moto\n${world.moto.log().split('\n').slice(-80).join('\n')}\n`);
}
