// `stemcell builder --aws`: the EC2 builder agent (see infra/builder/ for its unit and bootstrap).
import { join } from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors.ts';

export function register(program: Command): void {
  program
    .command('builder')
    .description(
      'run the builder agent on an EC2 builder instance (environment from /etc/stemcell/builder.env)',
    )
    .option(
      '--aws',
      'poll the region build queue on AWS (the only mode; local mode builds inside `stemcell dev`)',
    )
    .option(
      '--recover',
      'only thaw and unmount what a dead agent left behind, then exit (the unit’s ExecStopPost)',
    )
    .option(
      '--check',
      'verify every tool and GRUB directory the builder uses (infra/builder/packages.list), then exit',
    )
    .action(async (options: { aws?: boolean; recover?: boolean; check?: boolean }) => {
      if (options.check) {
        const { checkRequirements } = await import('#builder/requirements.ts');
        const results = checkRequirements();
        const missing = results.filter((r) => !r.found);
        for (const r of results) {
          const where = r.found ?? 'MISSING';
          process.stdout.write(
            `${r.found ? 'ok     ' : 'missing'} ${r.requirement.need} (${r.requirement.package}): ${where}\n`,
          );
        }
        if (missing.length > 0) {
          const packages = [...new Set(missing.map((r) => r.requirement.package))].join(' ');
          throw new CliError(`builder --check: ${missing.length} missing; install: ${packages}`, 1);
        }
        process.stdout.write(`builder --check: all ${results.length} tools and directories present\n`);
        return;
      }
      // Loaded here, not at start-up: the agent pulls in the AWS SDK, which no other command needs.
      const { agentConfigFromEnv, recoverMounts, runAgent } = await import('#builder/agent.ts');
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      let config: ReturnType<typeof agentConfigFromEnv>;
      try {
        config = agentConfigFromEnv();
      } catch (err) {
        throw new CliError((err as Error).message, 2, { cause: err });
      }
      if (options.recover) {
        await recoverMounts(join(config.stateDir, 'mnt'), log);
        return;
      }
      if (!options.aws) throw new CliError('builder: pass --aws (local builds run inside `stemcell dev`)', 2);
      await runAgent(config, log);
    });
}
