// `stemcell rollback <stream> --to <revision>`, `stemcell pin <stream> <revision>`, `stemcell unpin <stream>`, on the
// local data folder, running the local stack until their effects settle (stop `stemcell dev` first). A rollback is
// a new release (higher sequence) pointing at the earlier revision's images; regions whose image is gone are
// rebuilt from the earlier revision's tarball.

import type { Command } from 'commander';
import { pin, type RollbackDeps, rollback, unpin } from '#core/rollout/rollback.ts';
import { isInputError } from '#errors';
import type { LocalStack } from '#local/stack.ts';
import { CliError } from '../errors.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';

type Json = { json?: boolean };

export function register(program: Command): void {
  localOptions(
    program
      .command('rollback <stream>')
      .description("a new release, with a higher sequence, pointing at an earlier revision's images")
      .requiredOption('--to <revision>', 'the earlier revision')
      .option('--json', 'print the result as JSON'),
  ).action(async (stream: string, options: LocalOptions & Json & { to: string }) => {
    await withStack(options, stream, 'rollback', async (stack, deps) => {
      const result = await rollback(deps, stream, options.to);
      await stack.registry.drain();
      const summary = {
        releaseId: result.release.releaseId,
        revision: result.release.revision,
        sequence: result.release.sequence,
        rollbackOf: result.rollbackOf,
        reused: result.reused,
        rebuilt: result.rebuilt,
      };
      if (options.json) return summary;
      const lines = [
        `${stream}: ${result.release.revision} (sequence ${result.release.sequence}) points at ${options.to}'s images`,
        ...result.reused.map((r) => `  ${r.region}: ${r.imageId} announced`),
        ...result.rebuilt.map((r) => `  ${r.region}: rebuilt from ${options.to}'s tarball (${r.reason})`),
      ];
      return lines.join('\n');
    });
  });
  localOptions(
    program
      .command('pin <stream> <revision>')
      .description('hold new revisions of the stream back: they build and boot-check, but are not announced'),
  ).action(async (stream: string, revision: string, options: LocalOptions) => {
    await withStack(options, stream, 'pin', async (_stack, deps) => {
      const value = await pin(deps, stream, revision);
      return `${stream} pinned to ${value.revision}`;
    });
  });
  localOptions(
    program
      .command('unpin <stream>')
      .description('remove the pin; the newest held-back release is announced now'),
  ).action(async (stream: string, options: LocalOptions) => {
    await withStack(options, stream, 'unpin', async (stack, deps) => {
      const result = await unpin(deps, stream);
      await stack.registry.drain();
      return result.announced
        ? `${stream} unpinned; announced ${result.announced.releaseId} in ${result.announced.regions.join(', ')}`
        : `${stream} unpinned; nothing was held back`;
    });
  });
}

async function withStack(
  options: LocalOptions & Json,
  stream: string,
  what: string,
  body: (stack: LocalStack, deps: RollbackDeps) => Promise<unknown>,
): Promise<void> {
  const config = await resolveConfig(options);
  if (!config.streams[stream]) throw new CliError(`${what}: unknown stream ${stream}`, 2);
  const { LocalStack } = await import('#local/stack.ts');
  const stack = new LocalStack({ dataDir: options.data, config, log: () => {} });
  try {
    await stack.start();
    const deps: RollbackDeps = {
      ...stack.announceDeps(),
      rollouts: stack.rollouts,
      buildQueue: (region) => stack.region(region).buildQueue,
    };
    const out = await body(stack, deps);
    await stack.settle({ timers: false });
    process.stdout.write(typeof out === 'string' ? `${out}\n` : `${JSON.stringify(out, null, 2)}\n`);
  } catch (err) {
    if (isInputError(err)) throw new CliError(`${what}: ${err.message}`, 2, { cause: err });
    throw err;
  } finally {
    await stack.stop();
  }
}
