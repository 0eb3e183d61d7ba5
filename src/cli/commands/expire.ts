// `stemcell expire`: the expire λ over a local data folder. Keeps the newest images per stream and region and
// never one anything can still launch from; deprecates first, deregisters after the grace period, deletes the
// snapshot with the deregistration. --dry-run prints what it would do.
import type { Command } from 'commander';
import { DEFAULT_EXPIRE_GRACE_MS, type ExpireResult } from '#core/images/expire.ts';
import { CliError } from '../errors.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';

interface ExpireCliOptions extends LocalOptions {
  dryRun?: boolean;
  graceDays: string;
  json?: boolean;
}

export function register(program: Command): void {
  localOptions(
    program
      .command('expire')
      .description(
        'retire old images of the local data folder (deprecate, then deregister after a grace period)',
      )
      .option('--dry-run', 'print what would be done, change nothing')
      .option(
        '--grace-days <days>',
        'days between deprecation and deregistration',
        String(DEFAULT_EXPIRE_GRACE_MS / 86_400_000),
      )
      .option('--json', 'print the result as JSON'),
  ).action(async (options: ExpireCliOptions) => {
    const graceDays = Number(options.graceDays);
    if (!Number.isFinite(graceDays) || graceDays < 0)
      throw new CliError(`--grace-days ${options.graceDays}: not a number of days ≥ 0`, 2);
    const config = await resolveConfig(options);
    const { LocalStack } = await import('#local/stack.ts');
    const stack = new LocalStack({
      dataDir: options.data,
      config,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    const result = await stack.expire({ graceMs: graceDays * 86_400_000, dryRun: options.dryRun ?? false });
    process.stdout.write(
      options.json ? `${JSON.stringify(result, null, 2)}\n` : `${expireLines(result).join('\n')}\n`,
    );
  });
}

export function expireLines(result: ExpireResult): string[] {
  const would = result.dryRun ? 'would be ' : '';
  const lines = result.expired.map((e) =>
    e.action === 'deprecated'
      ? `${would}deprecated  ${e.stream} ${e.region} ${e.imageId} (sequence ${e.sequence}); deregistered after ${e.deregisterAfter}`
      : `${would}deregistered ${e.stream} ${e.region} ${e.imageId} (sequence ${e.sequence}); snapshot ${e.snapshotDeleted} ${would}deleted`,
  );
  for (const w of result.waiting)
    lines.push(
      `deprecated, waiting ${w.stream} ${w.region} ${w.imageId}: deregistered after ${w.deregisterAfter}`,
    );
  for (const k of result.keptInUse)
    lines.push(`kept in use  ${k.stream} ${k.region} ${k.imageId}: ${k.uses.join('; ')}`);
  if (lines.length === 0) lines.push('nothing to expire');
  return lines;
}
