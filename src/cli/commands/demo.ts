// `stemcell demo`: the whole local flow end to end, on sample root filesystems it builds itself.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { objectKey } from '#core/model/naming.ts';
import { demoConfig } from '#demo/config.ts';
import { checkLaunchTemplates, reportTable } from '#demo/report.ts';
import { buildSampleTarball, prepareSampleBoot, type SampleBoot } from '#demo/sample-rootfs.ts';
import { allLaunchable, launchVerdict, type Verdict, verdictLines } from '#demo/verdict.ts';
import { FAILING_STREAM, haltThenRollBack, releaseRows } from '#demo/waves.ts';
import type { LocalStack } from '#local/stack.ts';
import { CliError } from '../errors.ts';
import { createProgress } from '../progress.ts';
import { trackStack } from '../stack-progress.ts';

interface DemoOptions {
  json?: boolean;
  data?: string;
  keep?: boolean;
  volumes: 'auto' | 'block' | 'directory';
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole flow locally: 4 streams × 2 revisions → images in 2 regions, booted under qemu (BIOS, UEFI, ' +
        'arm64) → 6 accounts updated, in waves; then a revision that halts in the canary, and a rollback',
    )
    .option('--json', 'print one JSON object with the results on stdout')
    .option('--data <dir>', 'local data folder (default: a fresh temporary folder, removed afterwards)')
    .option('--keep', 'keep the data folder for `stemcell status --data` and `stemcell export`')
    .option('--volumes <backend>', 'auto | block (loop devices) | directory', 'auto')
    .action(async (options: DemoOptions) => {
      const code = await runDemo(options);
      if (code !== 0)
        throw new CliError(
          'demo: not every account can launch the newest image, or some launch templates are behind',
          code,
        );
    });
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const progress = createProgress(process.stderr);
  const dataDir = options.data ?? (await mkdtemp(join(tmpdir(), 'stemcell-demo-')));
  const config = demoConfig();
  const started = performance.now();
  let stack: LocalStack | undefined;
  try {
    progress.line(`data folder: ${dataDir}`);
    // The stack (handlers, Powertools, adapters) loads only for the commands that run it.
    const { LocalStack } = await import('#local/stack.ts');
    stack = new LocalStack({
      dataDir,
      config,
      volumeBackend: options.volumes,
      log: (line) => progress.line(line),
      onProgress: (event) => tracker.onProgress(event),
    });
    const tracker = trackStack(progress, stack);
    await stack.start();
    // Real kernels and busybox for the streams that boot, once per architecture (apt, cached).
    const boots = new Map<string, SampleBoot>();
    for (const s of Object.values(config.streams)) {
      if (s.bootMode === 'none' || boots.has(s.architecture)) continue;
      const fetch = progress.task(`packages:${s.architecture}`, `kernel + busybox (${s.architecture})`, 1);
      boots.set(s.architecture, await prepareSampleBoot(s.architecture, (line) => progress.line(line)));
      fetch.done('ready');
    }
    // After each release, every tagged launch template is launched through the launch model.
    const verdicts: Verdict[] = [];
    for (const revision of [1, 2]) {
      for (const [stream, streamConfig] of Object.entries(config.streams)) {
        const label = `${stream} r${revision}`;
        const upload = progress.task(`upload:${label}`, `upload ${label}`, 2);
        const tarball = await buildSampleTarball(
          join(dataDir, 'work'),
          join(dataDir, 'tarballs', `${stream}-${revision}.tar.zst`),
          {
            stream,
            revision,
            withKernel: streamConfig.bootMode !== 'none',
            ...(boots.has(streamConfig.architecture) && streamConfig.bootMode !== 'none'
              ? { boot: boots.get(streamConfig.architecture) as SampleBoot }
              : {}),
          },
        );
        upload.update(1, 'built');
        const body = await readFile(tarball);
        const sha256 = createHash('sha256').update(body).digest('hex');
        const revisionName = `2026.11.${20 + revision}`;
        await stack.publish(objectKey(stream, revisionName), body, { sha256 });
        upload.done(`${(body.length / 1024).toFixed(0)} KiB uploaded`);
      }
      await stack.settle();
      const verdict = await launchVerdict(stack);
      verdicts.push(verdict);
      progress.line(`after revision ${revision}: ${verdictLines(verdict).join('\n')}`);
    }
    // Rolling out safely: revision 3 halts in the canary wave, then a rollback to revision 2.
    const failing = config.streams[FAILING_STREAM];
    const story = await haltThenRollBack(
      stack,
      dataDir,
      (line) => progress.line(line),
      failing && failing.bootMode !== 'none' ? boots.get(failing.architecture) : undefined,
    );
    const afterRollback = await launchVerdict(stack);
    verdicts.push(afterRollback);
    progress.line(`after the rollback: ${verdictLines(afterRollback).join('\n')}`);
    const verdict = verdicts.at(-1) as Verdict;
    const releases = await stack.releases.list();
    const reports = await releaseRows(stack, config);
    const checks = checkLaunchTemplates(config, releases, stack.members);
    const failedChecks = checks.filter((c) => !c.ok);
    const deadLetters = [...stack.registry.list()].flatMap((bus) =>
      bus.deadLetters().map((d) => ({ bus: bus.arn, ...d })),
    );
    // Every image of a stream that boots was announced only after its boot check passed.
    const unbooted = reports.filter(
      (r) => config.streams[r.stream]?.bootMode !== 'none' && r.bootCheck?.passed !== true,
    );
    const ok =
      failedChecks.length === 0 &&
      unbooted.length === 0 &&
      reports.every(
        (r) =>
          r.state === 'announced' ||
          (r.releaseId === story.halted?.releaseId &&
            story.heldByHalt.includes(r.region) &&
            r.accountsUpdated === 0),
      ) &&
      // The halt itself came from a region where the canary got the revision.
      reports.some((r) => r.releaseId === story.halted?.releaseId && r.state === 'announced') &&
      verdicts.every(allLaunchable) &&
      story.halted !== undefined &&
      story.movedPastHalt.length === 0 &&
      story.rollback !== undefined;
    progress.stop();
    const seconds = (performance.now() - started) / 1000;
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify({ ok, seconds, dataDir, volumeBackend: stack.region(config.homeRegion).volumes.backend, launch: verdict.launch, accountsUpdated: verdict.accountsUpdated, accountsInScope: verdict.accountsInScope, releases: reports, halted: story.halted ?? null, heldByHalt: story.heldByHalt, movedPastHalt: story.movedPastHalt, rollback: story.rollback ?? null, launchTemplates: { checked: checks.length, failed: failedChecks }, deadLetters }, null, 2)}\n`,
      );
    } else {
      process.stdout.write(`\n${reportTable(reports)}\n\n`);
      process.stdout.write(`${verdictLines(verdict).join('\n')}\n`);
      if (story.halted)
        process.stdout.write(
          `${story.halted.releaseId} halted in wave ${story.halted.wave} (${story.halted.reason}); ` +
            `${story.movedPastHalt.length} account(s) of later waves moved` +
            (story.heldByHalt.length > 0
              ? `; not announced in ${story.heldByHalt.join(', ')} (held by the halt)`
              : '') +
            '\n',
        );
      if (story.rollback)
        process.stdout.write(
          `rolled back to ${story.rollback.to} as ${story.rollback.revision} (sequence ${story.rollback.sequence})\n`,
        );
      process.stdout.write(
        `${checks.length - failedChecks.length}/${checks.length} launch templates default to the newest image` +
          ` (volumes: ${stack.region(config.homeRegion).volumes.backend}; ${seconds.toFixed(1)} s in all)\n`,
      );
      for (const c of failedChecks) {
        process.stdout.write(
          `  NOT CURRENT: ${c.account} ${c.region} ${c.launchTemplate}: ${c.defaultImageId ?? 'none'} (want ${c.expectedImageId ?? 'no image'})\n`,
        );
      }
      if (deadLetters.length > 0)
        process.stdout.write(`  ${deadLetters.length} event deliveries failed (dead letters)\n`);
    }
    return ok ? 0 : 3;
  } finally {
    await stack?.stop();
    if (!options.keep && !options.data) await rm(dataDir, { recursive: true, force: true });
  }
}
