// npm run bench:fanout — how long the last member account waits after "Image Ready", locally and as a model of
// AWS. The local flow (2 regions, the fan-out buses, every member account's bus, FIFO queue and subscriber) runs
// at 100, 500 and 1,000 accounts in 20 OUs, one after the other in this run; per release and region it prints
// the seconds from "Image Ready" to the last account's launch templates updated, and the seconds per 100
// accounts. A least-squares line through the three sizes gives the local cost per account (its slope).
//
// The model of 10,000 accounts on AWS (per region's "Image Ready"):
//   deliveries  10,000 rule-target invocations leave the fan-out buses at the home Region's invocation quota
//               (src/core/members/quotas.ts: 750/s in the slowest commercial Regions; "Amazon EventBridge quotas",
//               Invocations throttle limit) — throttled invocations are delayed, not dropped;
//   two hops    fan-out bus → member bus, member bus → FIFO queue: EventBridge's typical latency is about half a
//               second per hop ("Amazon EventBridge event bus" / "performance" in the EventBridge User Guide);
//   queue       Lambda's SQS event source polls FIFO queues continuously; we take 1 s for the poll and 1 s for a
//               cold start of the subscriber;
//   the account itself: its subscriber runs in its own account, in parallel with every other account's, so it
//               adds one account's work: the local cost per account (the slope), an upper bound (locally all
//               accounts share this machine's 2 cores).
// Last line: `fanout: 1000 accounts, last account N s after Image Ready; model 10000 accounts on AWS M s`.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '#config/load.ts';
import { invocationsPerSecond } from '#core/members/quotas.ts';
import { objectKey } from '#core/model/naming.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import { LocalStack } from '#local/stack.ts';

const REGIONS = ['eu-west-1', 'us-east-1'];
const OUS = 20;
const SIZES = (process.env.FANOUT_SIZES ?? '100,500,1000').split(',').map(Number);
const MODEL_ACCOUNTS = 10_000;
const HOP_SECONDS = 0.5;
const QUEUE_POLL_SECONDS = 1;
const COLD_START_SECONDS = 1;

interface Row {
  accounts: number;
  region: string;
  updated: number;
  seconds: number;
  per100: number;
}

async function runAt(size: number, dir: string, tarball: Buffer): Promise<Row[]> {
  const ous = Array.from({ length: OUS }, (_, i) => ({
    id: `ou-fan0-${String(i).padStart(8, '0')}`,
    name: `ou${i}`,
  }));
  const accounts = Array.from({ length: size }, (_, i) => ({
    id: String(400_000_000_001 + i),
    name: `m${i}`,
    ou: ous[i % OUS]?.id as string,
  }));
  const config = parseConfig({
    homeRegion: REGIONS[0],
    bucket: 'stemcell-bench',
    streams: {
      web: {
        regions: REGIONS,
        bootMode: 'legacy-bios',
        volumeSizeGiB: 1,
        subscribers: { scope: 'organization', instanceRefresh: false },
        bootCheck: { mode: 'none', allowUnverified: true },
      },
    },
    local: {
      organizationId: 'o-fanout0001',
      managementAccountId: '400000000000',
      ous,
      accounts,
      launchTemplates: accounts.flatMap((a) =>
        REGIONS.map((region) => ({ account: a.id, region, stream: 'web', name: 'web-lt' })),
      ),
    },
  });
  const stack = new LocalStack({ dataDir: join(dir, `data-${size}`), config, log: () => {} });
  const imageReadyAt = new Map<string, number>();
  const rows: Row[] = [];
  try {
    const t0 = Date.now();
    await stack.start();
    process.stderr.write(`fanout: ${size} accounts: stack started in ${(Date.now() - t0) / 1000} s\n`);
    stack.centralBus.addRule(
      'bench-image-ready',
      { source: ['stemcell'], 'detail-type': ['Image Ready'] },
      (e) => {
        const region = (e.detail as { region?: string }).region ?? '';
        if (!imageReadyAt.has(region)) imageReadyAt.set(region, Date.now());
      },
    );
    await stack.publish(objectKey('web', 'r1'), tarball);
    await stack.settle();
    process.stderr.write(`fanout: ${size} accounts: settled after ${(Date.now() - t0) / 1000} s\n`);
    const release = (await stack.releases.list('web')).find((r) => r.revision === 'r1');
    if (!release) throw new Error('release r1 missing');
    for (const region of REGIONS) {
      const done = Object.values(release.accounts).filter((a) => a.region === region);
      const last = Math.max(...done.map((a) => Date.parse(a.updatedAt)));
      const ready = imageReadyAt.get(region);
      if (ready === undefined) throw new Error(`no Image Ready seen for ${region}`);
      const seconds = (last - ready) / 1000;
      rows.push({ accounts: size, region, updated: done.length, seconds, per100: (seconds / size) * 100 });
    }
  } finally {
    await stack.stop();
  }
  return rows;
}

/** Least squares y = a + b·x. */
function fit(points: Array<[number, number]>): { a: number; b: number; r2: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sxx = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  const b = sxx === 0 ? 0 : sxy / sxx;
  const a = my - b * mx;
  const ssr = points.reduce((s, [x, y]) => s + (y - (a + b * x)) ** 2, 0);
  const sst = points.reduce((s, [, y]) => s + (y - my) ** 2, 0);
  return { a, b, r2: sst === 0 ? 1 : 1 - ssr / sst };
}

// The data folder on tmpfs by default: on this machine's disk, fsync of the local services' state (every
// queue message, delivery and record is written durably) costs about 5x the fan-out's own work, and that is
// not a cost AWS has. FANOUT_DIR=/some/disk/folder measures on a disk instead.
const base = process.env.FANOUT_DIR ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
const dir = await mkdtemp(join(base, 'stemcell-bench-fanout-'));
const rows: Row[] = [];
try {
  const tarball = await readFile(
    await buildSampleTarball(join(dir, 'work'), join(dir, 'web-1.tar.zst'), {
      stream: 'web',
      revision: 1,
      withKernel: true,
      files: 200,
    }),
  );
  for (const size of SIZES) {
    process.stderr.write(`fanout: ${size} accounts…\n`);
    rows.push(...(await runAt(size, dir, tarball)));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

const worstAt = (size: number) => Math.max(...rows.filter((r) => r.accounts === size).map((r) => r.seconds));
const line = fit(SIZES.map((size) => [size, worstAt(size)]));
const largest = Math.max(...SIZES);
const n = worstAt(largest);
const slowest = Math.min(invocationsPerSecond('af-south-1'), invocationsPerSecond('eu-south-1'));
const model = {
  deliveries: MODEL_ACCOUNTS / slowest,
  hops: 2 * HOP_SECONDS,
  queue: QUEUE_POLL_SECONDS + COLD_START_SECONDS,
  account: line.b,
};
const m = model.deliveries + model.hops + model.queue + model.account;
const r = (x: number) => x.toFixed(2);
const table = [
  `# Fan-out benchmark: ${REGIONS.length} regions, ${SIZES.join(' / ')} accounts in ${OUS} OUs, data folder under ${base} (${new Date().toISOString()})`,
  '',
  '| accounts | region | accounts updated | Image Ready → last account s | s per 100 accounts |',
  '|---|---|---|---|---|',
  ...rows.map((x) => `| ${x.accounts} | ${x.region} | ${x.updated} | ${r(x.seconds)} | ${r(x.per100)} |`),
  '',
  `Fitted (worst region per size): ${r(line.a)} s + ${(line.b * 1000).toFixed(2)} ms per account (R² ${line.r2.toFixed(3)}).`,
  `Model, ${MODEL_ACCOUNTS} accounts on AWS, one region's Image Ready: ${r(model.deliveries)} s of invocations at ${slowest}/s + ${r(model.hops)} s for two bus hops + ${r(model.queue)} s queue poll and cold start + ${r(model.account)} s one account's own work = ${r(m)} s.`,
  `Goals: N ≤ 60 s ${n <= 60 ? '✓' : '✗'}, M ≤ 120 s ${m <= 120 ? '✓' : '✗'}.`,
].join('\n');
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/fanout.json', `${JSON.stringify({ rows, fit: line, model, m }, null, 2)}\n`);
await writeFile('bench/results/fanout.md', `${table}\n`);
process.stdout.write(`${table}\n`);
process.stdout.write(
  `fanout: ${largest} accounts, last account ${Math.round(n)} s after Image Ready; model ${MODEL_ACCOUNTS} accounts on AWS ${Math.round(m)} s\n`,
);
