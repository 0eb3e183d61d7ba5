// The dependency rule of docs/architecture.md, enforced: the import graph of src, functions and events has no
// cycle, each layer imports only the layers below it, only the AWS adapters and the Lambda wiring import an SDK,
// and no source file grows past 600 lines. Each check is also run on a planted breach, so it cannot pass by
// finding nothing.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '../../..');
const aliases = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).imports as Record<
  string,
  string
>;

/** Layer of a file: the folder under src/ (src/ports.ts is `ports`), or `functions` / `events`. */
export function layerOf(file: string): string {
  if (file === 'src/ports.ts') return 'ports';
  if (file === 'src/errors.ts') return 'errors';
  const [top, second] = file.split('/');
  return top === 'src' ? (second ?? 'src') : (top ?? '');
}

/** What each layer may import besides itself (docs/architecture.md, "The dependency rule"). */
export const MAY_IMPORT: Record<string, readonly string[]> = {
  errors: [],
  events: [],
  config: ['events'],
  ports: ['events', 'config', 'core'],
  core: ['events', 'config', 'ports'],
  unpack: [],
  aws: ['events', 'config', 'ports', 'core'],
  builder: ['events', 'config', 'ports', 'core', 'unpack', 'aws'],
  functions: ['events', 'config', 'ports', 'core', 'aws'],
  ui: ['events', 'config', 'ports', 'core'],
  local: ['events', 'config', 'ports', 'core', 'unpack', 'builder', 'functions'],
  demo: ['events', 'config', 'ports', 'core', 'unpack', 'builder', 'local'],
  cli: ['events', 'config', 'ports', 'core', 'unpack', 'builder', 'aws', 'local', 'functions', 'ui', 'demo'],
};
/** Within ports, only the core's plain types (src/core/model/) may be imported. */
const PORTS_MAY_IMPORT_FROM_CORE = /^src\/core\/model\//;
/** The only places an AWS SDK package may be imported. */
const SDK_ALLOWED = /^(?:src\/aws\/|functions\/commons\/)/;

function sourceFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    );
  return ['src', 'functions', 'events'].flatMap(walk);
}

function resolveSpecifier(from: string, spec: string): string | undefined {
  if (spec.startsWith('.')) return normalize(join(dirname(from), spec));
  for (const [alias, target] of Object.entries(aliases)) {
    if (alias === spec) return normalize(target);
    if (alias.endsWith('/*') && spec.startsWith(alias.slice(0, -1)))
      return normalize(target.slice(0, -1) + spec.slice(alias.length - 1));
  }
  return undefined;
}

export interface ImportEdge {
  from: string;
  to: string;
  line: number;
}

/** Static imports and re-exports, type-only ones included, and dynamic `import('…')`. */
export function importsOf(file: string, text: string): { internal: ImportEdge[]; packages: string[] } {
  const internal: ImportEdge[] = [];
  const packages: string[] = [];
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g;
  for (const match of text.matchAll(pattern)) {
    const spec = match[1] ?? match[2];
    if (!spec || spec.startsWith('node:')) continue;
    const line = text.slice(0, match.index + match[0].length).split('\n').length;
    const to = resolveSpecifier(file, spec);
    if (to) internal.push({ from: file, to: to.replace(/^\.\//, ''), line });
    else packages.push(spec);
  }
  return { internal, packages };
}

/** Each cycle once, as the files around it (Tarjan's strongly connected components of size > 1, or a self-import). */
export function cycles(edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (next.get(v) ?? []).includes(v)) found.push(component.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return found;
}

export function layerBreaches(edges: ImportEdge[]): string[] {
  return edges.flatMap(({ from, to, line }) => {
    const [a, b] = [layerOf(from), layerOf(to)];
    if (a === b) return [];
    if (a === 'ports' && b === 'core' && !PORTS_MAY_IMPORT_FROM_CORE.test(to))
      return [`${from}:${line} → ${to}`];
    if (b === 'errors') return [];
    return (MAY_IMPORT[a] ?? []).includes(b) ? [] : [`${from}:${line} (${a}) → ${to} (${b})`];
  });
}

/** Files over the limit whose split is under way (issue 22); this list only shrinks. */
const BEING_SPLIT = new Set<string>([]);

const files = sourceFiles();
const scanned = files.map((file) => ({ file, text: readFileSync(join(root, file), 'utf8') }));
const edges = scanned.flatMap(({ file, text }) => importsOf(file, text).internal);

describe('the dependency rule', () => {
  it('knows every layer it meets', () => {
    const unknown = [...new Set(files.map(layerOf))].filter((l) => !(l in MAY_IMPORT));
    assert.deepEqual(unknown, [], 'add the new layer to MAY_IMPORT and to docs/architecture.md');
  });

  it('no import cycle in src, functions or events', () => {
    assert.deepEqual(cycles(edges), []);
  });

  it('finds a planted cycle, and a planted layer breach', () => {
    const planted = [
      ...edges,
      { from: 'src/core/model/naming.ts', to: 'src/core/release/announce.ts', line: 1 },
      { from: 'src/core/release/announce.ts', to: 'src/core/model/naming.ts', line: 1 },
    ];
    assert.ok(cycles(planted).some((c) => c.includes('src/core/model/naming.ts')));
    assert.deepEqual(layerBreaches([{ from: 'src/core/deps.ts', to: 'src/aws/clients.ts', line: 3 }]), [
      'src/core/deps.ts:3 (core) → src/aws/clients.ts (aws)',
    ]);
    assert.deepEqual(
      importsOf('src/core/x.ts', "import type { A } from '#aws/clients.ts';\nconst m = import('../y.ts');\n")
        .internal,
      [
        { from: 'src/core/x.ts', to: 'src/aws/clients.ts', line: 1 },
        { from: 'src/core/x.ts', to: 'src/y.ts', line: 2 },
      ],
    );
  });

  it('each layer imports only the layers below it', () => {
    assert.deepEqual(layerBreaches(edges), []);
  });

  it('core/deps.ts imports no core module', () => {
    const core = edges.filter((e) => e.from === 'src/core/deps.ts' && layerOf(e.to) === 'core');
    assert.deepEqual(core, []);
  });

  it('only the AWS adapters and the Lambda wiring import an AWS SDK package', () => {
    const sdk = scanned.flatMap(({ file, text }) =>
      importsOf(file, text)
        .packages.filter((p) => p.startsWith('@aws-sdk/') && !SDK_ALLOWED.test(file))
        .map((p) => `${file} → ${p}`),
    );
    assert.deepEqual(sdk, []);
  });

  it('no source file is above 600 lines', () => {
    const long = scanned
      .filter(({ file }) => !BEING_SPLIT.has(file))
      .map(({ file, text }) => ({ file, lines: text.split('\n').length - 1 }))
      .filter(({ lines }) => lines > 600)
      .map(({ file, lines }) => `${relative(root, join(root, file))}: ${lines}`);
    assert.deepEqual(long, []);
  });
});
