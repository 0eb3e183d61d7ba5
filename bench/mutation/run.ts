// `npm run mutation [group…]`: StrykerJS mutates the modules whose bugs users would feel (core, the local
// queue and buses, the build worker, the unpacker's safety and incremental paths) and runs, per mutant, only
// the test files of that group that cover it (Node's test runner, TAP over the tap runner; Node runs the .ts
// directly). Mutants that do not type-check are dropped by the TypeScript checker, which sees a narrow
// tsconfig per group so each check covers the group's files and their imports, not the whole repository.
// Reports: bench/results/mutation/<group>.{html,json}, and summary.{json,md} with the score per module.
// Not part of `npm test`: a full run takes tens of minutes on a loaded 2-core machine.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Stryker } from '@stryker-mutator/core';
import { GOAL, GROUPS, type Group } from './groups.ts';

const RESULTS = 'bench/results/mutation';
const TSCONFIG_DIR = 'bench/mutation/.tsconfig';

type StrykerOptions = NonNullable<ConstructorParameters<typeof Stryker>[0]>;
type MutantResult = Awaited<ReturnType<Stryker['runMutationTest']>>[number];
type Status =
  | 'Killed'
  | 'Timeout'
  | 'Survived'
  | 'NoCoverage'
  | 'CompileError'
  | 'RuntimeError'
  | 'Ignored'
  | 'Pending';
interface ModuleScore {
  group: string;
  module: string;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  compileErrors: number;
  runtimeErrors: number;
  /** (killed + timeout) / (killed + timeout + survived + noCoverage), in percent */
  score: number | null;
}

function tsconfigFor(group: Group): string {
  mkdirSync(TSCONFIG_DIR, { recursive: true });
  const path = join(TSCONFIG_DIR, `${group.name}.json`);
  const up = (file: string) => relative(TSCONFIG_DIR, file);
  const files = [...group.mutate.map((m) => m.replace(/:\d+-\d+$/, '')), ...group.tests];
  writeFileSync(
    path,
    `${JSON.stringify({ extends: up('tsconfig.json'), include: [], files: [...new Set(files)].map(up) }, null, 2)}\n`,
  );
  return path;
}

/**
 * Runs `work` with `env` set in this process's environment, which the test runs (its children) inherit, and puts
 * the environment back after it, so one group's settings do not reach the groups run after it.
 */
async function withEnv<T>(env: Record<string, string> | undefined, work: () => Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(env ?? {}).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env ?? {});
  try {
    return await work();
  } finally {
    for (const [name, value] of Object.entries(before)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

async function runGroup(group: Group, concurrency: number, only: string[]): Promise<ModuleScore[]> {
  const started = Date.now();
  // --only=file,… keeps a group's run to some of its modules (the rest of its scores stay from the last run).
  const mutate =
    only.length === 0 ? group.mutate : group.mutate.filter((m) => only.includes(m.replace(/:\d+-\d+$/, '')));
  if (mutate.length === 0) throw new Error(`mutation: --only names no module of ${group.name}`);
  const results = await new Stryker({
    testRunner: 'tap',
    tap: { testFiles: group.tests, forceBail: true },
    mutate,
    checkers: ['typescript'],
    tsconfigFile: tsconfigFor(group),
    typescriptChecker: { prioritizePerformanceOverAccuracy: true },
    coverageAnalysis: 'perTest',
    // Static mutants (module-level code) run every test file for each mutant: too slow for what they find here.
    ignoreStatic: true,
    concurrency,
    timeoutMS: 10_000,
    incremental: true,
    incrementalFile: join(RESULTS, `${group.name}.incremental.json`),
    // docs/architecture.md stays: the region state machine's test checks the table drawn there.
    ignorePatterns: [
      'bench/results',
      'dist',
      '.stemcell',
      '.serverless',
      '.esbuild',
      'docs/*.png',
      'docs/reference',
      'docs/design',
      'docs/guides',
      'docs/testing',
    ],
    tempDirName: '.stryker-tmp',
    cleanTempDir: true,
    reporters: ['json', 'html', 'progress-append-only'],
    jsonReporter: { fileName: join(RESULTS, `${group.name}.json`) },
    htmlReporter: { fileName: join(RESULTS, `${group.name}.html`) },
    logLevel: 'warn' as StrykerOptions['logLevel'],
  }).runMutationTest();
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  console.log(`mutation: ${group.name}: ${results.length} mutants in ${minutes} min`);

  writeSurvivors(group, results);
  const byModule = new Map<string, ModuleScore>();
  for (const r of results) {
    const module = relative(process.cwd(), r.fileName);
    const s = byModule.get(module) ?? {
      group: group.name,
      module,
      killed: 0,
      timeout: 0,
      survived: 0,
      noCoverage: 0,
      compileErrors: 0,
      runtimeErrors: 0,
      score: null,
    };
    const status = r.status as Status;
    if (status === 'Killed') s.killed++;
    else if (status === 'Timeout') s.timeout++;
    else if (status === 'Survived') s.survived++;
    else if (status === 'NoCoverage') s.noCoverage++;
    else if (status === 'CompileError') s.compileErrors++;
    else if (status === 'RuntimeError') s.runtimeErrors++;
    byModule.set(module, s);
  }
  for (const s of byModule.values()) {
    const valid = s.killed + s.timeout + s.survived + s.noCoverage;
    s.score = valid === 0 ? null : Math.round((1000 * (s.killed + s.timeout)) / valid) / 10;
  }
  return [...byModule.values()].sort((a, b) => a.module.localeCompare(b.module));
}

/**
 * One line per mutant left alive: where, which mutator, the code it replaced, what that became, and the line it
 * sits in. Triage starts here. The replaced span is shown on its own: a line holds several mutants (the error
 * code and the message of one `throw`), and a whole line next to a replacement reads as if all of it changed.
 */
function writeSurvivors(group: Group, results: MutantResult[]): void {
  const alive = results
    .filter((r) => r.status === 'Survived' || r.status === 'NoCoverage')
    .sort(
      (a, b) =>
        a.fileName.localeCompare(b.fileName) ||
        a.location.start.line - b.location.start.line ||
        a.location.start.column - b.location.start.column,
    );
  const sources = new Map<string, string[]>();
  const flat = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, 120);
  const lines = alive.map((r) => {
    const file = relative(process.cwd(), r.fileName);
    if (!sources.has(file)) sources.set(file, readFileSync(file, 'utf8').split('\n'));
    const source = sources.get(file) ?? [];
    // Lines and columns of the report's locations are 1-based; the end column is exclusive.
    const { start, end } = r.location;
    const spanLines = source.slice(start.line - 1, end.line);
    const original =
      start.line === end.line
        ? (spanLines[0] ?? '').slice(start.column - 1, end.column - 1)
        : [
            (spanLines[0] ?? '').slice(start.column - 1),
            ...spanLines.slice(1, -1),
            (spanLines.at(-1) ?? '').slice(0, end.column - 1),
          ].join('\n');
    const code = flat(source[start.line - 1] ?? '');
    return `- ${file}:${start.line}:${start.column} ${r.status} ${r.mutatorName}${end.line !== start.line ? ` (to line ${end.line})` : ''}: \`${flat(original)}\` → \`${flat(r.replacement ?? '')}\` in \`${code}\``;
  });
  writeFileSync(
    join(RESULTS, `${group.name}.survivors.md`),
    `# Mutants left alive in ${group.name} (${alive.length})\n\n${lines.join('\n')}\n`,
  );
}

function readSummary(): ModuleScore[] {
  try {
    return JSON.parse(readFileSync(join(RESULTS, 'summary.json'), 'utf8')).modules as ModuleScore[];
  } catch {
    return [];
  }
}

function writeSummary(modules: ModuleScore[]): void {
  const at = new Date().toISOString();
  writeFileSync(join(RESULTS, 'summary.json'), `${JSON.stringify({ at, goal: GOAL, modules }, null, 2)}\n`);
  const lines = [
    `# Mutation score per module (goal ≥ ${GOAL} %), ${at}`,
    '',
    '| group | module | score | goal | killed | timeout | survived | no coverage | compile errors |',
    '|---|---|---|---|---|---|---|---|---|',
    ...modules.map(
      (m) =>
        `| ${m.group} | ${m.module} | ${m.score === null ? '–' : `${m.score} %`} | ${GOAL} % | ${m.killed} | ${m.timeout} | ${m.survived} | ${m.noCoverage} | ${m.compileErrors} |`,
    ),
  ];
  writeFileSync(join(RESULTS, 'summary.md'), `${lines.join('\n')}\n`);
  console.log(lines.slice(2).join('\n'));
}

const args = process.argv.slice(2);
const concurrencyArg = args.find((a) => a.startsWith('--concurrency='));
const concurrency = concurrencyArg ? Number(concurrencyArg.split('=')[1]) : 2;
const onlyArg = args.find((a) => a.startsWith('--only='));
const only = onlyArg ? (onlyArg.split('=')[1] ?? '').split(',').filter(Boolean) : [];
const names = args.filter((a) => !a.startsWith('--'));
const unknown = names.filter((n) => !GROUPS.some((g) => g.name === n));
if (unknown.length > 0) {
  console.error(
    `mutation: unknown group(s) ${unknown.join(', ')}; groups: ${GROUPS.map((g) => g.name).join(', ')}`,
  );
  process.exit(2);
}
const selected = names.length > 0 ? GROUPS.filter((g) => names.includes(g.name)) : GROUPS;
mkdirSync(RESULTS, { recursive: true });
// Scores of groups not run this time are kept from the last run.
let summary = readSummary();
try {
  for (const group of selected) {
    const scores = await withEnv(group.env, () => runGroup(group, concurrency, only));
    const ran = new Set(scores.map((s) => s.module));
    summary = [
      ...summary.filter((s) => s.group !== group.name || (only.length > 0 && !ran.has(s.module))),
      ...scores,
    ];
    writeSummary(summary.sort((a, b) => a.group.localeCompare(b.group) || a.module.localeCompare(b.module)));
  }
} finally {
  rmSync(TSCONFIG_DIR, { recursive: true, force: true });
}
