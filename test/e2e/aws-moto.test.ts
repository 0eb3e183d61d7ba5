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
import { type Member, MotoWorld } from '#test/support/moto/world.ts';
import { packageServerless } from '#test/support/roles.ts';

const run = promisify(execFile);
const HOME = 'eu-west-1';
const OTHER = 'us-east-1';
const REGIONS = [HOME, OTHER];
const R1 = '2026.01.01';
const R2 = '2026.02.01';

describe('AWS end to end on moto', { timeout: 10 * 60_000 }, () => {
  let world: MotoWorld;
  const checks = new Checks();
  const started = performance.now();
  let canary: Member;
  let prodA: Member;
  let prodB: Member;
  let tarballs: string;

  const steps: string[] = [];
  const step = (what: string) => steps.push(`${Math.round(performance.now() - started)} ms ${what}`);

  before(async () => {
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
    canary = await world.createAccount('canary-a', 'canary');
    prodA = await world.createAccount('prod-a', 'prod');
    prodB = await world.createAccount('prod-b', 'prod');
    for (const member of [canary, prodA, prodB]) {
      await world.deployMember(member);
      await world.optIn(member, [
        { name: 'web', stream: 'web-base', refreshGroup: 'web-asg' },
        { name: 'db', stream: 'db-base' },
      ]);
      step(`member ${member.name} deployed`);
    }
    await world.startBuilders();
    step('builders started');
    // An hour passes: sync-subscribers points the central bus at every member's bus.
    await world.fireSchedule('sync-subscribers');
    await world.quiet();
    step('subscribers synced');
  });

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

  it('release 1: two streams build, boot and reach every member account', async () => {
    await publish(world, 'web-base', R1, join(tarballs, 'web-base-1.tar.zst'));
    await publish(world, 'db-base', R1, join(tarballs, 'db-base-1.tar.zst'));
    await world.waitFor(
      'release 1 complete',
      async () => {
        const events = await world.centralBus();
        return events.filter((e) => e['detail-type'] === 'Release Complete').length >= 2;
      },
      120_000,
    );
    step('release 1 complete');
    await world.quiet();
    checks.ok('events', (await world.centralBus()).length > 0);
    checks.assertAll();
  });
});

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
        subscribers: { scope: 'organization', instanceRefresh: true },
        rollout: {
          waves: [
            { name: 'canary', ous: [canaryOu], bakeMinutes: 0.05 },
            { name: 'everyone', bakeMinutes: 0.05 },
          ],
        },
      },
      'db-base': {
        regions: REGIONS,
        bootMode: 'legacy-bios',
        volumeSizeGiB: 1,
        keep: 1,
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
