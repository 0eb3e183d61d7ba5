// `stemcell dev`: keep the local stack running over a data folder; `stemcell publish` feeds it.
import type { Command } from 'commander';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';
import { createProgress } from '../progress.ts';
import { releaseEndReporter } from '../release-ends.ts';
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
      onProgress: (event) => tracker.onProgress(event),
      expireIntervalMs: 60_000,
    });
    const tracker = trackStack(progress, stack);
    // A republished revision with other content is refused: say so at once, not in a dead-letter file.
    stack.centralBus.addRule(
      'stemcell-dev-rejected',
      { source: ['stemcell'], 'detail-type': ['Release Rejected'] },
      (e) => {
        const d = e.detail as { releaseId?: string; stream: string; revision: string; reason: string };
        progress.line(`upload refused for ${d.releaseId ?? `${d.stream} ${d.revision}`}: ${d.reason}`);
      },
    );
    // The end of each release, once, those in flight at start included (src/cli/release-ends.ts).
    const printEnded = await releaseEndReporter(stack.releases, config, (end) => progress.line(end.line));
    const ender = setInterval(() => void printEnded().catch(() => {}), 1000);
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
    clearInterval(ender);
    await page?.close();
    await stack.stop();
    progress.stop();
  });
}
