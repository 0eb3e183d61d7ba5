// The stack the gauntlet kills: `stemcell dev` reduced to what the gauntlet watches. It runs the local stack
// over a data folder and prints one JSON line per step it takes (build steps, accounts updated, operator
// lines), so the gauntlet can SIGKILL it at a chosen moment. Usage: node bench/gauntlet-stack.ts <data> <config.json>
import { readFileSync } from 'node:fs';
import { releaseEndReporter } from '#cli/release-ends.ts';
import { parseConfig } from '#config/load.ts';
import { LocalStack } from '#local/stack.ts';

const [dataDir, configFile] = process.argv.slice(2);
if (!dataDir || !configFile) throw new Error('usage: gauntlet-stack.ts <data> <config.json>');
// Buffers (a direct snapshot's digest table rides on the build outcome) as their size: a line is a line, not 400 KB.
const bytesAsSize = (_key: string, value: unknown) =>
  value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer'
    ? `<${((value as { data?: unknown[] }).data ?? []).length} bytes>`
    : value;
const say = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line, bytesAsSize)}\n`);
const stack = new LocalStack({
  dataDir,
  config: parseConfig(JSON.parse(readFileSync(configFile, 'utf8'))),
  log: (line) => say({ kind: 'log', line }),
  onProgress: (event) => say(event as unknown as Record<string, unknown>),
  reconcileIntervalMs: 2_000,
  reconcile: { reportTimeoutMs: 5_000 },
  dataFolderNeededBytes: 32 * 2 ** 20,
});
// What `stemcell dev` prints at the end of each release, as events the gauntlet checks (those in flight at
// start included).
const config = parseConfig(JSON.parse(readFileSync(configFile, 'utf8')));
const reportEnds = await releaseEndReporter(stack.releases, config, (end) =>
  say({ kind: 'ended', releaseId: end.release.releaseId, outcome: end.outcome }),
);
const ender = setInterval(() => void reportEnds().catch(() => {}), 250);
await stack.start();
stack.watchBucket(200);
say({ kind: 'started' });
await new Promise<void>((resolve) => {
  process.once('SIGINT', resolve);
  process.once('SIGTERM', resolve);
});
clearInterval(ender);
await reportEnds();
await stack.stop();
say({ kind: 'stopped' });
