// `stemcell dev`: keep the local stack running over a data folder; `stemcell publish` feeds it.
import type { Command } from 'commander';
import { regionReports, reportTable } from '#demo/report.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';
import { createProgress } from '../progress.ts';
import { trackStack } from '../stack-progress.ts';

export function register(program: Command): void {
  localOptions(
    program
      .command('dev')
      .description('run the local stack (bucket, queues, buses, builders, handlers) until interrupted')
      .option('--volumes <backend>', 'auto | block (loop devices) | directory', 'auto')
      .option(
        '--ui <host:port>',
        'serve the live status page (read-only; loopback only), e.g. 127.0.0.1:8080',
      ),
  ).action(async (options: LocalOptions & { volumes: 'auto' | 'block' | 'directory'; ui?: string }) => {
    const config = await resolveConfig(options);
    const progress = createProgress(process.stderr);
    const { LocalStack } = await import('#local/stack.ts');
    const stack = new LocalStack({
      dataDir: options.data,
      config,
      volumeBackend: options.volumes,
      log: (line) => progress.line(line),
      onProgress: (event) => {
        tracker.onProgress(event);
        if (event.kind === 'account-updated') void printRelease(event.stream, event.sequence);
      },
    });
    const tracker = trackStack(progress, stack);
    const printed = new Set<string>();
    const printRelease = async (stream: string, sequence: number) => {
      const release = (await stack.releases.list(stream)).find((r) => r.sequence === sequence);
      if (!release?.completedAt || printed.has(release.releaseId)) return;
      const rows = regionReports(config, release);
      // Complete means every region announced; print once the accounts in scope have all answered too.
      if (rows.some((r) => r.accountsUpdated < r.accountsInScope)) return;
      printed.add(release.releaseId);
      progress.line(`release ${release.releaseId} complete:\n${reportTable(rows)}`);
    };
    await stack.start();
    stack.watchBucket();
    const page = options.ui
      ? await (await import('#ui/serve.ts')).startStatusPage(
          {
            config,
            releases: stack.releases,
            rollouts: stack.rollouts,
            organization: stack.organization,
            members: stack.members,
          },
          options.ui,
          { dataDir: options.data },
        )
      : undefined;
    if (page) progress.line(`status page: ${page.url}`);
    progress.line(
      `stemcell dev: watching s3://${config.bucket}/streams/ in ${options.data}; ` +
        'publish with `stemcell publish <tarball> --stream <name>`; Ctrl-C stops',
    );
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    progress.line('stopping: finishing the builds in progress');
    await page?.close();
    await stack.stop();
    progress.stop();
  });
}
