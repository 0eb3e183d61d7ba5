// npm run bench:flow — what the local flow adds around the builder's own work, for 2 regions × 20 accounts.
// For each release and region: seconds from upload to the last account's launch templates updated, split into
// the builder's steps (apply, boot, quiesce, snapshot) and everything else (ingest, queues, register,
// announce, fan-out to 20 member buses, subscribers, reports back): the overhead the design wants < 2 s.
// Ratios, not absolute times, are what to compare across runs: the machine is shared.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildStep } from '#builder/worker.ts';
import { parseConfig } from '#config/load.ts';
import { objectKey } from '#core/model/naming.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import { LocalStack } from '#local/stack.ts';

const ACCOUNTS = 20;
const REGIONS = ['eu-west-1', 'us-east-1'];
const OU = 'ou-bench-11111111';
const accounts = Array.from({ length: ACCOUNTS }, (_, i) => ({
  id: String(300000000001 + i),
  name: `m${i}`,
  ou: OU,
}));
const config = parseConfig({
  homeRegion: REGIONS[0],
  bucket: 'stemcell-bench',
  streams: {
    web: {
      regions: REGIONS,
      bootMode: 'legacy-bios',
      volumeSizeGiB: 1,
      subscribers: { scope: 'organization' },
      // The control plane's own overhead is measured: the sample's stand-in kernel does not boot.
      bootCheck: { mode: 'none', allowUnverified: true },
    },
  },
  local: {
    organizationId: 'o-bench00001',
    managementAccountId: '300000000000',
    ous: [{ id: OU, name: 'bench' }],
    accounts,
    launchTemplates: accounts.flatMap((a) =>
      REGIONS.map((region) => ({
        account: a.id,
        region,
        stream: 'web',
        name: 'web-lt',
        autoScalingGroup: 'web-asg',
      })),
    ),
  },
});

const dir = await mkdtemp(join(tmpdir(), 'stemcell-bench-flow-'));
const steps = new Map<string, Record<BuildStep, number>>();
const stack = new LocalStack({
  dataDir: join(dir, 'data'),
  config,
  log: (line) => process.stderr.write(`${line}\n`),
  onProgress: (e) => {
    if (e.kind === 'build-failed') process.stderr.write(`build failed: ${e.reason}\n`);
    if (e.kind === 'built' && e.outcome.kind === 'built')
      steps.set(`${e.revision}/${e.region}`, e.outcome.stepMs);
  },
});
const rows: Array<Record<string, string | number>> = [];
try {
  await stack.start();
  for (const revision of [1, 2]) {
    const tarball = await buildSampleTarball(join(dir, 'work'), join(dir, `web-${revision}.tar.zst`), {
      stream: 'web',
      revision,
      withKernel: true,
      files: 2000,
    });
    const body = await readFile(tarball);
    const name = `r${revision}`;
    await stack.publish(objectKey('web', name), body, {
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    await stack.settle();
    const release = (await stack.releases.list('web')).find((r) => r.revision === name);
    if (!release) throw new Error(`release ${name} missing`);
    for (const region of REGIONS) {
      const accountsDone = Object.values(release.accounts).filter((a) => a.region === region);
      const last = Math.max(...accountsDone.map((a) => Date.parse(a.updatedAt)));
      const endToEnd = (last - Date.parse(release.uploadedAt)) / 1000;
      const s = steps.get(`${name}/${region}`);
      if (!s) throw new Error(`no build steps for ${name} ${region}`);
      const builder = Object.values(s).reduce((a, b) => a + b, 0) / 1000;
      rows.push({
        revision: name,
        region,
        accountsUpdated: accountsDone.length,
        endToEndS: round(endToEnd),
        applyS: round(s['download+apply'] / 1000),
        attachS: round(s.attach / 1000),
        snapshotS: round(s.snapshot / 1000),
        builderS: round(builder),
        beyondApplyS: round(endToEnd - s['download+apply'] / 1000),
        controlPlaneS: round(endToEnd - builder),
        deltaBytes: release.regions[region]?.deltaBytes ?? 0,
      });
    }
  }
} finally {
  await stack.stop();
  await rm(dir, { recursive: true, force: true });
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

const worst = Math.max(...rows.map((r) => Number(r.controlPlaneS)));
const table = [
  `# Local flow benchmark: ${REGIONS.length} regions × ${ACCOUNTS} accounts (${new Date().toISOString()})`,
  '',
  '| revision | region | accounts | upload→last account s | attach+mkfs s | apply s | snapshot s | builder total s | beyond apply s | control plane s | snapshot delta MiB |',
  '|---|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.revision} | ${r.region} | ${r.accountsUpdated} | ${r.endToEndS} | ${r.attachS} | ${r.applyS} | ${r.snapshotS} | ${r.builderS} | ${r.beyondApplyS} | ${r.controlPlaneS} | ${(Number(r.deltaBytes) / 2 ** 20).toFixed(1)} |`,
  ),
  '',
  `Control plane (everything but the builder's steps), worst row: ${worst.toFixed(3)} s — goal < 2 s ${worst < 2 ? '✓' : '✗'}.`,
].join('\n');
await mkdir('bench/results', { recursive: true });
await writeFile(
  'bench/results/flow.json',
  `${JSON.stringify({ regions: REGIONS.length, accounts: ACCOUNTS, rows }, null, 2)}\n`,
);
await writeFile('bench/results/flow.md', `${table}\n`);
process.stdout.write(`${table}\n`);
