// `stemcell release resume|abort <stream> <revision>`: the operator's way past a halted wave, or out of a release.
// Local mode runs the local stack over the data folder until the command's effects settle (stop `stemcell dev`
// first: two processes must not drive one data folder); the next wave's bake timer stays in its schedules for
// the next `stemcell dev`.

import type { Command } from 'commander';
import { abortRelease, resumeRelease, rolloutSummary } from '#core/rollout/rollout.ts';
import { isInputError } from '#errors';
import { CliError } from '../errors.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';

type Action = 'resume' | 'abort';

export function register(program: Command): void {
  const release = program
    .command('release')
    .description('operate on a release in flight: resume it past a halted wave, or abort it');
  for (const action of ['resume', 'abort'] as const) {
    localOptions(
      release
        .command(`${action} <stream> <revision>`)
        .description(
          action === 'resume'
            ? 'count the halted wave as done and send the release to the next wave now'
            : 'stop the release for good: no further wave receives it',
        )
        .option('--json', 'print the rollout as JSON'),
    ).action(async (stream: string, revision: string, options: LocalOptions & { json?: boolean }) => {
      await run(action, stream, revision, options);
    });
  }
}

async function run(
  action: Action,
  stream: string,
  revision: string,
  options: LocalOptions & { json?: boolean },
) {
  const config = await resolveConfig(options);
  if (!config.streams[stream]) throw new CliError(`release ${action}: unknown stream ${stream}`, 2);
  const { LocalStack } = await import('#local/stack.ts');
  const stack = new LocalStack({ dataDir: options.data, config, log: () => {} });
  try {
    await stack.start();
    const deps = { ...stack.announceDeps(), rollouts: stack.rollouts, timer: stack.scheduler };
    if (action === 'resume') await resumeRelease(deps, stream, revision);
    else await abortRelease(deps, stream, revision);
    // The next wave moves now; its bake timer stays in the data folder for the next `stemcell dev`.
    await stack.settle({ timers: false });
    const release = (await stack.releases.list(stream)).find((r) => r.revision === revision);
    const summary = release && rolloutSummary(await stack.rollouts.get(release.releaseId));
    if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else
      process.stdout.write(
        `${stream} ${revision}: ${summary?.state}; waves ${summary?.waves.map((w) => `${w.name}=${w.state}`).join(', ')}\n`,
      );
  } catch (err) {
    if (isInputError(err)) throw new CliError(`release ${action}: ${err.message}`, 2, { cause: err });
    throw err;
  } finally {
    await stack.stop();
  }
}
