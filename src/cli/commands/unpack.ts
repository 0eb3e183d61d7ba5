// `stemcell unpack <tarball|-> <target-dir>`: the builder's applier, from the command line.
import { open } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { applyTarball, DEFAULT_LIMITS, RejectedArchiveError, type UnpackLimits } from '#unpack/index.ts';
import { CliError } from '../errors.ts';

function positiveInt(value: string): number {
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

const LIMIT_FLAGS: Array<[flag: string, key: keyof UnpackLimits, what: string]> = [
  ['--max-total-bytes <n>', 'maxTotalBytes', 'uncompressed bytes of the whole archive'],
  ['--max-entries <n>', 'maxEntries', 'entries in the archive'],
  ['--max-path-length <n>', 'maxPathLength', 'bytes of one entry path'],
  ['--max-path-depth <n>', 'maxPathDepth', 'components of one entry path'],
  ['--max-pax-header-bytes <n>', 'maxPaxHeaderBytes', 'bytes of one PAX / GNU long-name header'],
  ['--max-compression-ratio <n>', 'maxCompressionRatio', 'uncompressed ÷ compressed bytes'],
];

export function register(program: Command): void {
  const command = program
    .command('unpack')
    .description(
      'Apply a root-filesystem tarball (plain, gzip, zstd or xz) to a directory: afterwards it holds exactly ' +
        'the archive, and only what changed since the last apply is written.',
    )
    .argument('<tarball>', "tarball path, or '-' for standard input")
    .argument('<target-dir>', 'directory to apply it to (usually the root of a mounted filesystem)')
    .option('--manifest <file>', 'manifest of the last apply, kept outside the target (read, then rewritten)')
    .option('--json', 'print the apply statistics as one JSON object on stdout')
    .option(
      '--trust-mtime',
      'with a manifest, take files of unchanged size and mtime as unchanged without reading them (fast; wrong ' +
        'for archives with clamped mtimes)',
    );
  for (const [flag, key, what] of LIMIT_FLAGS) {
    command.option(flag, `limit: ${what} (default ${DEFAULT_LIMITS[key]})`, positiveInt);
  }
  command.action(async (tarball: string, targetDir: string, opts: Record<string, unknown>) => {
    const limits: Partial<UnpackLimits> = {};
    for (const [, key] of LIMIT_FLAGS) if (typeof opts[key] === 'number') limits[key] = opts[key] as number;
    try {
      const input =
        tarball === '-'
          ? process.stdin
          : (await open(tarball)).createReadStream({ highWaterMark: 1024 * 1024 });
      const stats = await applyTarball(input, targetDir, {
        manifestPath: typeof opts.manifest === 'string' ? opts.manifest : undefined,
        trustMtime: opts.trustMtime === true,
        limits,
      });
      if (opts.json) {
        // ApplyStats is the documented --json object: the eight counters, inputSha256 and verified.
        process.stdout.write(`${JSON.stringify(stats)}\n`);
      } else {
        process.stdout.write(
          `applied ${stats.entries} entries to ${targetDir} in ${stats.durationMs} ms: ${stats.filesWritten} written, ` +
            `${stats.metadataUpdates} metadata-only, ${stats.unchanged} unchanged, ${stats.removed} removed` +
            `${stats.verified ? ' (verified against the disk: no valid manifest)' : ''}\n`,
        );
      }
    } catch (err) {
      if (err instanceof RejectedArchiveError) throw new CliError(err.message, 2, { cause: err });
      throw new CliError(`stemcell unpack: ${err instanceof Error ? err.message : String(err)}`, 1, {
        cause: err,
      });
    }
  });
}
