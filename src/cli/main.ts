#!/usr/bin/env node
// The stemcell command line. Each command lives in its own module under ./commands and registers itself.
import { Command } from 'commander';
import { CliError } from './errors.ts';

const program = new Command('stemcell')
  .description('Root-filesystem tarballs in; encrypted, bootable images in every region out.')
  .showHelpAfterError();

// One line per command module; each exports register(program: Command).
const commands: Array<{ register(program: Command): void }> = [
  await import('./commands/unpack.ts'),
  await import('./commands/export.ts'),
  await import('./commands/demo.ts'),
  await import('./commands/dev.ts'),
  await import('./commands/publish.ts'),
  await import('./commands/sign.ts'),
  await import('./commands/status.ts'),
  await import('./commands/builder.ts'),
  await import('./commands/release.ts'),
  await import('./commands/rollback.ts'),
  await import('./commands/config.ts'),
  await import('./commands/expire.ts'),
];
for (const command of commands) command.register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CliError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`stemcell: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
