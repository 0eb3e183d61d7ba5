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
  /** Absent: ./stemcell.config.yml, or the demo's configuration when there is none. */
  config?: string;
}

const DEFAULT_CONFIG = 'stemcell.config.yml';

export function localOptions(command: Command): Command {
  return command
    .option('--data <dir>', 'local data folder', '.stemcell')
    .option('--config <file>', `stream configuration (default: ./${DEFAULT_CONFIG}, else the demo's)`);
}

/**
 * The configuration given with --config (an error when that file does not exist), else ./stemcell.config.yml,
 * else the demo's configuration (said once on stderr).
 */
export async function resolveConfig(options: LocalOptions): Promise<StemcellConfig> {
  if (options.config !== undefined && !existsSync(resolve(options.config)))
    throw new CliError(`--config ${options.config}: no such file`, 2);
  const file = resolve(options.config ?? DEFAULT_CONFIG);
  if (!existsSync(file)) {
    process.stderr.write(`stemcell: no ${DEFAULT_CONFIG}; using the demo configuration\n`);
    return demoConfig();
  }
  try {
    return await loadConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(err.message, 2, { cause: err });
    throw err;
  }
}
