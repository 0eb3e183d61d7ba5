// `node bench/cpu-profile.ts <dir> [--top 15]`: the top frames by self time of the V8 CPU profiles in <dir>
// (written by `--cpu-prof`, one file per thread: STEMCELL_BENCH_CPU_PROF=<dir> npm run bench:unpack), per
// thread, as a share of that thread's samples. Frames are grouped by function and source line; `(program)`,
// `(idle)` and `(garbage collector)` are V8's own.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const REPO = join(import.meta.dirname, '..');
const args = process.argv.slice(2);
const dir = args[0];
if (!dir) {
  process.stderr.write('usage: node bench/cpu-profile.ts <dir of .cpuprofile files> [--top N]\n');
  process.exit(2);
}
const top = args.includes('--top') ? Number(args[args.indexOf('--top') + 1]) || 15 : 15;

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName || '(anonymous)';
  if (!url) return name;
  const path = url.startsWith('file://') ? relative(REPO, new URL(url).pathname) : url;
  return `${name} ${path}:${lineNumber + 1}`;
}

/** Self time per frame, in microseconds, and the profile's total. */
export function selfTimes(profile: CpuProfile): { total: number; frames: Map<string, number> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const frames = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!node || us < 0) return;
    total += us;
    const name = frameName(node);
    frames.set(name, (frames.get(name) ?? 0) + us);
  });
  return { total, frames };
}

const files = readdirSync(dir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .sort();
if (files.length === 0) {
  process.stderr.write(`cpu-profile: no .cpuprofile file in ${dir}\n`);
  process.exit(1);
}
for (const file of files) {
  // CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread.
  const thread =
    basename(file).split('.')[4] === '0' ? 'main thread' : `worker thread ${basename(file).split('.')[4]}`;
  const { total, frames } = selfTimes(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile);
  process.stdout.write(`\n${thread} (${file}): ${(total / 1e6).toFixed(2)} s sampled\n\n`);
  process.stdout.write('| self % | self ms | frame |\n|---:|---:|---|\n');
  for (const [name, us] of [...frames].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(
      `| ${((100 * us) / total).toFixed(1)} | ${(us / 1000).toFixed(0)} | \`${name}\` |\n`,
    );
}
