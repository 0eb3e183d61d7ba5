// `stemcell status`: releases with their per-region and per-account state, from the release store.
import { join } from 'node:path';
import type { Command } from 'commander';
import { type RolloutSummary, rolloutSummary } from '#core/rollout/rollout.ts';
import { formatBytes } from '#demo/report.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import { LocalRolloutStore } from '#local/rollout-store.ts';
import type { BootCheckRecord, Release, ReleaseStore, RolloutStore } from '#ports';
import { CliError } from '../errors.ts';
import { type LocalOptions, resolveConfig } from '../local-context.ts';

interface StatusOptions extends LocalOptions {
  json?: boolean;
  limit: string;
  table?: string;
  region?: string;
  adoption?: boolean;
  serve?: string;
  memberRole: string;
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
  const { clientSettingsFromEnv } = await import('#aws/client-env.ts');
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) throw new CliError('status --table: pass --region (or set AWS_REGION) for the home region', 2);
  const client = new AwsClients({ client: clientSettingsFromEnv() }).dynamodb(region);
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
    .option('--config <file>', 'stream configuration (for --adoption and --serve)', 'stemcell.config.yml')
    .option('--limit <n>', 'newest releases per stream', '5')
    .option(
      '--adoption',
      'who runs what: per stream, region and account, the images in use and their release',
    )
    .option('--serve <[host:]port>', 'serve the live status page (read-only, loopback) until interrupted')
    .option(
      '--member-role <name>',
      'read-only role in member accounts (with --table)',
      'stemcell-member-reader',
    )
    .option('--table <name>', "read the deployment's release table on AWS (output ReleaseTableName)")
    .option('--region <region>', 'home region of the deployment (with --table)')
    .option('--json', 'print JSON')
    .action(async (stream: string | undefined, options: StatusOptions) => {
      if (options.serve) return serve(options);
      if (options.adoption) return printAdoption(stream, options);
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
        `${r.reason ? `\n    reason: ${r.reason}` : ''}` +
        `${r.bootCheck ? `\n    ${bootCheckLine(r.bootCheck)}` : ''}`,
    );
    for (const a of accounts.sort((x, y) => x.accountId.localeCompare(y.accountId))) {
      lines.push(
        `    ${a.accountId}  ${a.outcome.padEnd(16)} ${a.launchTemplates} launch template(s)  ${a.updatedAt}`,
      );
    }
  }
  for (const rejection of release.rejections ?? []) {
    lines.push(
      `  rejected upload ${rejection.source.key} (etag ${rejection.source.etag}${rejection.source.sha256 ? `, sha256 ${rejection.source.sha256}` : ''}) at ${rejection.rejectedAt}` +
        `\n    reason: ${rejection.reason}`,
    );
  }
  return lines.join('\n');
}

/** The boot gate's verdict and where the console log is kept. */
function bootCheckLine(b: BootCheckRecord): string {
  const verdict = b.passed === undefined ? 'running' : b.passed ? 'passed' : 'FAILED';
  const took = b.seconds === undefined ? '' : ` after ${b.seconds.toFixed(1)} s`;
  return `boot check (${b.mode}, "${b.marker}"): ${verdict}${took}; console log: ${b.consoleLog ?? 'not yet'}`;
}

/** Everything the adoption view and the status page read: stores, organization and member accounts. */
export async function pageDeps(options: StatusOptions): Promise<import('#ui/state.ts').PageDeps> {
  const config = await resolveConfig(options);
  const stores = await releaseStores(options);
  if (!options.table) {
    if (!config.local)
      throw new CliError('status: the configuration has no local: section (accounts, OUs)', 2);
    const { LocalOrganizationDirectory } = await import('#local/organization.ts');
    const { LocalMemberAccounts } = await import('#local/member-accounts.ts');
    return {
      config,
      ...stores,
      organization: new LocalOrganizationDirectory(join(options.data, 'organizations'), config.local),
      members: new LocalMemberAccounts(join(options.data, 'accounts')),
    };
  }
  const { AwsClients } = await import('#aws/clients.ts');
  const { clientSettingsFromEnv } = await import('#aws/client-env.ts');
  const { AwsOrganizationDirectory } = await import('#aws/organization.ts');
  const { AwsMemberAccounts } = await import('#aws/member-accounts.ts');
  const clients = new AwsClients({
    memberRoleName: options.memberRole,
    roleSessionName: 'stemcell-status',
    client: clientSettingsFromEnv(),
  });
  return {
    config,
    ...stores,
    organization: new AwsOrganizationDirectory({ client: clients.organizations() }),
    members: new AwsMemberAccounts({ clients }),
  };
}

async function printAdoption(stream: string | undefined, options: StatusOptions): Promise<void> {
  const { adoptionView } = await import('#core/members/adoption.ts');
  const rows = await adoptionView(await pageDeps(options), stream);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ adoption: rows }, null, 2)}\n`);
    return;
  }
  const ref = (r: { imageId: string; revision?: string }) =>
    `${r.imageId}${r.revision ? ` (${r.revision})` : ''}`;
  const lines = rows.map(
    (r) =>
      `${r.stream.padEnd(12)} ${r.region.padEnd(12)} ${r.accountId}  ` +
      `${r.launchTemplates.map((t) => `${t.name} v${t.defaultVersion} → ${ref(t)}`).join('; ') || 'no launch template'}` +
      `${r.autoScalingGroups.length ? `  | ASG ${r.autoScalingGroups.map((g) => `${g.name}: ${g.images.map(ref).join(', ') || '-'}`).join('; ')}` : ''}` +
      `${r.current ? (r.current.adopted ? '  current' : `  BEHIND (current ${r.current.imageId})`) : ''}`,
  );
  process.stdout.write(`${lines.join('\n') || 'no launch templates follow a stream'}\n`);
}

/** `status --serve`: the live page over the release table (local data folder or --table). */
async function serve(options: StatusOptions): Promise<void> {
  const { serveStatusPage } = await import('#ui/serve.ts');
  await serveStatusPage(await pageDeps(options), options.serve ?? '');
}
