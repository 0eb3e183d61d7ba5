// A small local stack for the flow semantics tests: directory volumes (fast, no root needed), bootMode none,
// sample trees of a few dozen files. The handlers, queues and buses are the real ones.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';
import { objectKey } from '#core/model/naming.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import type { BuildJob } from '#events/aws.ts';
import type { ServiceEventEnvelope } from '#local/service-events.ts';
import { LocalStack } from '#local/stack.ts';

export const HOME = 'eu-west-1';
export const OTHER = 'us-east-1';
export const OU_A = 'ou-aaaa-11111111';
export const OU_B = 'ou-bbbb-22222222';

export function accountId(n: number): string {
  return String(200000000000 + n);
}

export interface FlowOptions {
  accounts?: number;
  keep?: number;
  streams?: string[];
  ssmParameter?: string;
  maxReceiveCount?: number;
  /** `rollout:` of every stream (waves). */
  rollout?: { waves: Array<Record<string, unknown>> };
  beforeBuild?: (job: BuildJob) => void | Promise<void>;
  beforeSubscriber?: (accountId: string) => Promise<void>;
  /** Changes the parsed configuration before the stack starts (e.g. one the schema would refuse). */
  configure?: (config: StemcellConfig) => void;
  /** How long member accounts' instance refreshes run (default 0: they end as they start). */
  instanceRefreshSeconds?: number;
}

export function flowConfig(options: FlowOptions = {}): StemcellConfig {
  const count = options.accounts ?? 4;
  const accounts = Array.from({ length: count }, (_, i) => ({
    id: accountId(i + 1),
    name: `member-${i + 1}`,
    ou: i % 2 === 0 ? OU_A : OU_B,
  }));
  const streams = options.streams ?? ['web', 'batch'];
  return parseConfig({
    homeRegion: HOME,
    bucket: 'stemcell-test-tarballs',
    streams: Object.fromEntries(
      streams.map((s) => [
        s,
        {
          regions: [HOME, OTHER],
          bootMode: 'none',
          volumeSizeGiB: 1,
          keep: options.keep ?? 3,
          sharing: { organization: true },
          subscribers: {
            scope: 'organization',
            instanceRefresh: true,
            ...(options.ssmParameter ? { ssmParameter: options.ssmParameter } : {}),
          },
          ...(options.rollout ? { rollout: options.rollout } : {}),
        },
      ]),
    ),
    local: {
      organizationId: 'o-test000001',
      managementAccountId: '200000000000',
      ous: [
        { id: OU_A, name: 'a' },
        { id: OU_B, name: 'b' },
      ],
      accounts,
      launchTemplates: accounts.flatMap((a) =>
        [HOME, OTHER].flatMap((region) =>
          streams.map((stream) => ({
            account: a.id,
            region,
            stream,
            name: `${stream}-lt`,
            autoScalingGroup: `${stream}-asg`,
            refresh: true,
          })),
        ),
      ),
    },
  });
}

export interface Flow {
  stack: LocalStack;
  dir: string;
  /** Every stemcell event that reached the central bus, in order. */
  events: Array<{ detailType: string; detail: Record<string, unknown> }>;
  /** Every AWS-service event that reached the home region's default bus. */
  serviceEvents: ServiceEventEnvelope[];
  /** Publishes and settles; `{ timers: false }` does not wait for pending bake timers. */
  publish(stream: string, revision: number, settle?: { timers?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function startFlow(options: FlowOptions = {}): Promise<Flow> {
  const dir = await mkdtemp(join(tmpdir(), 'stemcell-flow-'));
  const config = flowConfig(options);
  options.configure?.(config);
  const stack = new LocalStack({
    dataDir: join(dir, 'data'),
    config,
    volumeBackend: 'directory',
    log: () => {},
    ...(options.maxReceiveCount ? { maxReceiveCount: options.maxReceiveCount } : {}),
    ...(options.beforeBuild ? { beforeBuild: options.beforeBuild } : {}),
    ...(options.beforeSubscriber ? { beforeSubscriber: options.beforeSubscriber } : {}),
    ...(options.instanceRefreshSeconds ? { instanceRefreshSeconds: options.instanceRefreshSeconds } : {}),
  });
  const events: Flow['events'] = [];
  const serviceEvents: ServiceEventEnvelope[] = [];
  stack.centralBus.addRule('test-capture', { source: ['stemcell'] }, async (e) => {
    events.push({ detailType: e['detail-type'], detail: e.detail as Record<string, unknown> });
  });
  stack.region(HOME).bus.addRule('test-capture', { source: [{ prefix: 'aws.' }] }, async (e) => {
    serviceEvents.push(e as ServiceEventEnvelope);
  });
  await stack.start();
  return {
    stack,
    dir,
    events,
    serviceEvents,
    async publish(stream, revision, settle = {}) {
      const tarball = await buildSampleTarball(
        join(dir, 'work'),
        join(dir, 'tarballs', `${stream}-${revision}.tar.zst`),
        {
          stream,
          revision,
          withKernel: false,
          files: 40,
        },
      );
      const body = await readFile(tarball);
      const sha256 = createHash('sha256').update(body).digest('hex');
      await stack.publish(objectKey(stream, `r${revision}`), body, { sha256 });
      await stack.settle(settle);
    },
    async close() {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function releaseOf(flow: Flow, stream: string, revision: number) {
  const release = (await flow.stack.releases.list(stream)).find((r) => r.revision === `r${revision}`);
  if (!release) throw new Error(`no release ${stream} r${revision}`);
  return release;
}

/** The image id a member account's tagged launch template defaults to. */
export function defaultImage(
  flow: Flow,
  account: string,
  region: string,
  stream: string,
): string | undefined {
  const member = flow.stack.members.forAccount(account, region);
  const template = member.launchTemplateByName(`${stream}-lt`);
  return template && member.defaultImageId(template.launchTemplateId);
}

export function versionCount(flow: Flow, account: string, region: string, stream: string): number {
  const member = flow.stack.members.forAccount(account, region);
  const template = member.launchTemplateByName(`${stream}-lt`);
  if (!template) throw new Error(`no launch template ${stream}-lt in ${account} ${region}`);
  return member.launchTemplateVersions(template.launchTemplateId).length;
}

/** A stack over `dataDir` with directory volumes and a fast reconciler: a "restart" is a new one over the same folder. */
export function stackOver(
  dataDir: string,
  config: StemcellConfig,
  options: Partial<ConstructorParameters<typeof LocalStack>[0]> = {},
): LocalStack {
  return new LocalStack({
    dataDir,
    config,
    volumeBackend: 'directory',
    log: () => {},
    maxReceiveCount: 3,
    reconcileIntervalMs: 200,
    ...options,
  });
}

/** A sample tarball of `stream` revision `revision`, and its SHA-256, as publish sends them. */
export async function sampleBody(dir: string, stream: string, revision: number) {
  const tarball = await buildSampleTarball(
    join(dir, 'work'),
    join(dir, 'tarballs', `${stream}-${revision}.tar.zst`),
    { stream, revision, withKernel: false, files: 20 },
  );
  const body = await readFile(tarball);
  return { body, sha256: createHash('sha256').update(body).digest('hex'), tarball };
}

/** Runs `body` on a fresh flow and closes it, pass or fail. */
export async function withFlow(options: FlowOptions, body: (flow: Flow) => Promise<void>): Promise<void> {
  const flow = await startFlow(options);
  try {
    await body(flow);
  } finally {
    await flow.close();
  }
}
