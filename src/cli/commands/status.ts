// `stemcell status`: releases with their per-region and per-account state, from the release store.
import { join } from 'node:path';
import type { Command } from 'commander';
import { type RolloutSummary, rolloutSummary } from '#core/rollout.ts';
import { formatBytes } from '#demo/report.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import { LocalRolloutStore } from '#local/rollout-store.ts';
import type { Release, ReleaseStore, RolloutStore } from '#ports';
import { CliError } from '../errors.ts';
import type { LocalOptions } from '../local-context.ts';

interface StatusOptions extends Pick<LocalOptions, 'data'> {
  json?: boolean;
  limit: string;
  table?: string;
  region?: string;
}

/** The local data folder's release and rollout stores, or with --table the deployment's DynamoDB table. */
export async function releaseStores(
  options: StatusOptions,
): Promise<{ releases: ReleaseStore; rollouts: RolloutStore }> {
  if (!options.table)
    return {
      releases: new LocalReleaseStore(join(options.data, 'releases')),
      rollouts: new LocalRolloutStore(options.data),
    };
  const { DynamoReleaseStore } = await import('#aws/release-store.ts');
  const { DynamoRolloutStore } = await import('#aws/rollout-store.ts');
  const { AwsClients } = await import('#aws/clients.ts');
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new CliError('status --table: pass --region (or set AWS_REGION) for the home region', 2);
  const client = new AwsClients().dynamodb(region);
  return {
    releases: new DynamoReleaseStore({ tableName: options.table, client }),
    rollouts: new DynamoRolloutStore({ tableName: options.table, client }),
  };
}

/** A release with its rollout: `waves` (empty without rollout waves) and `halted` (null unless halted). */
export type ReleaseStatus = Release &
  Pick<RolloutSummary, 'waves' | 'halted'> & { rollout?: RolloutSummary['state'] };

export async function withRollouts(rollouts: RolloutStore, releases: Release[]): Promise<ReleaseStatus[]> {
  return Promise.all(
    releases.map(async (release) => {
      const summary = rolloutSummary(await rollouts.get(release.releaseId));
      return {
        ...release,
        ...(summary ? { rollout: summary.state } : {}),
        waves: summary?.waves ?? [],
        halted: summary?.halted ?? null,
      };
    }),
  );
}

export function register(program: Command): void {
  program
    .command('status [stream]')
    .description('show releases: state per region (image, snapshot delta) and per member account')
    .option('--data <dir>', 'local data folder', '.stemcell')
    .option('--limit <n>', 'newest releases per stream', '5')
    .option('--table <name>', "read the deployment's release table on AWS (output ReleaseTableName)")
    .option('--region <region>', 'home region of the deployment (with --table)')
    .option('--json', 'print JSON')
    .action(async (stream: string | undefined, options: StatusOptions) => {
      const stores = await releaseStores(options);
      const releases = await withRollouts(
        stores.rollouts,
        await newestReleases(stores.releases, stream, Number(options.limit)),
      );
      if (options.json) {
        process.stdout.write(`${JSON.stringify(releases, null, 2)}\n`);
        return;
      }
      if (releases.length === 0) {
        process.stdout.write(
          `no releases${stream ? ` of stream ${stream}` : ''} in ${options.table ?? options.data}\n`,
        );
        return;
      }
      process.stdout.write(`${releases.map(formatRelease).join('\n\n')}\n`);
    });
}

export async function newestReleases(
  store: ReleaseStore,
  stream: string | undefined,
  limit: number,
): Promise<Release[]> {
  const all = await store.list(stream);
  const byStream = new Map<string, Release[]>();
  for (const r of all) byStream.set(r.stream, [...(byStream.get(r.stream) ?? []), r]);
  return [...byStream.values()].flatMap((rs) => rs.sort((a, b) => b.sequence - a.sequence).slice(0, limit));
}

export function formatRelease(release: Release & Partial<ReleaseStatus>): string {
  const lines = [
    `${release.stream} ${release.revision} (sequence ${release.sequence}, ${release.releaseId})` +
      `${release.completedAt ? ` complete ${release.completedAt}` : ''}`,
  ];
  if (release.waves && release.waves.length > 0) {
    lines.push(
      `  rollout ${release.rollout}: ${release.waves.map((w) => `${w.name} ${w.state} (${w.accounts.length})`).join(' → ')}`,
    );
  }
  if (release.halted) lines.push(`  HALTED at wave ${release.halted.wave}: ${release.halted.reason}`);
  for (const [region, r] of Object.entries(release.regions).sort()) {
    const accounts = Object.values(release.accounts).filter((a) => a.region === region);
    const outcomes = accounts.reduce<Record<string, number>>((acc, a) => {
      acc[a.outcome] = (acc[a.outcome] ?? 0) + 1;
      return acc;
    }, {});
    lines.push(
      `  ${region.padEnd(14)} ${r.state.padEnd(12)} ${r.imageId ?? '-'}  delta ${formatBytes(r.deltaBytes)}` +
        `  accounts ${
          Object.entries(outcomes)
            .map(([k, v]) => `${v} ${k}`)
            .join(', ') || 'none yet'
        }` +
        `${r.reason ? `\n    reason: ${r.reason}` : ''}`,
    );
    for (const a of accounts.sort((x, y) => x.accountId.localeCompare(y.accountId))) {
      lines.push(
        `    ${a.accountId}  ${a.outcome.padEnd(16)} ${a.launchTemplates} launch template(s)  ${a.updatedAt}`,
      );
    }
  }
  return lines.join('\n');
}
