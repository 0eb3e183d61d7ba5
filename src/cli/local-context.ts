// Options shared by the commands that work on a local data folder: where it is, and which configuration.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';
import { demoConfig } from '#demo/config.ts';
import { CliError } from './errors.ts';

export interface LocalOptions {
  data: string;
  config: string;
}

export function localOptions(command: Command): Command {
  return command
    .option('--data <dir>', 'local data folder', '.stemcell')
    .option('--config <file>', 'stream configuration', 'stemcell.config.yml');
}

/** The configuration file, or the demo's configuration when there is none yet (said once on stderr). */
export async function resolveConfig(options: LocalOptions): Promise<StemcellConfig> {
  const file = resolve(options.config);
  if (!existsSync(file)) {
    process.stderr.write(
      `stemcell: no ${options.config}; using the demo configuration (2 streams, 2 regions, 6 accounts)\n`,
    );
    return demoConfig();
  }
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2);
    throw err;
  }
}
