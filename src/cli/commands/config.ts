// `stemcell config check [--config FILE]`: validates a configuration without running anything. Exit 0 when it
// is valid; exit 2 with one line per problem, each naming the stream and the field (for example a subscriber
// scope wider than the stream's sharing: accounts would be told about images they cannot launch).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '#config/load.ts';
import { CliError } from '../errors.ts';

export function register(program: Command): void {
  const config = program.command('config').description('work with the stream configuration');
  config
    .command('check')
    .description('validate the configuration: exit 0 when valid, 2 with one line per problem')
    .option('--config <file>', 'stream configuration', 'stemcell.config.yml')
    .action(async (options: { config: string }) => {
      try {
        const loaded = await loadConfig(resolve(options.config));
        const streams = Object.entries(loaded.streams).map(([name, s]) => {
          const sharing = s.sharing.organization ? ['organization'] : s.sharing.ous;
          return `  ${name}: regions ${s.regions.join(', ')}; shared with ${sharing.join(', ')}`;
        });
        process.stdout.write(`${options.config}: valid\n${streams.join('\n')}\n`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        throw new CliError(err.problems.map((p) => `${options.config}: ${p}`).join('\n'), 2, { cause: err });
      }
    });
}
