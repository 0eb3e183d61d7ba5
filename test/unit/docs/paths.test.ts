// The docs name files: links between pages, and code paths in backticks (`src/core/release/announce.ts`). A move
// that forgets a page leaves a reader at a path that is not there; this fails on every such path.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '../../..');
const CODE_PATH = /^(?:src|functions|events|infra|test|bench|docs|scripts|bin)\/[\w./-]*$/;

function markdownFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  return ['README.md', 'CONTRIBUTING.md', ...walk('docs')].filter((f) => existsSync(join(root, f)));
}

/** Every file path a page names, with the line it is on. */
export function namedPaths(file: string, text: string): Array<{ path: string; line: number }> {
  const found: Array<{ path: string; line: number }> = [];
  text.split('\n').forEach((lineText, i) => {
    for (const [, target] of lineText.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!target || /^(?:[a-z]+:|#)/.test(target)) continue;
      const path = relative(root, resolve(root, dirname(file), target.replace(/#.*$/, '')));
      found.push({ path, line: i + 1 });
    }
    for (const [, code] of lineText.matchAll(/`([^`\s]+)`/g)) {
      if (!code || !CODE_PATH.test(code)) continue;
      found.push({ path: code.replace(/\/$/, '').replace(/[.,:;]$/, ''), line: i + 1 });
    }
  });
  return found;
}

describe('paths named in the docs', () => {
  it('finds links and code paths, and would fail on a missing one', () => {
    const named = namedPaths('docs/x.md', 'see [a](../README.md#x), `src/nowhere.ts` and `npm test`\n');
    assert.deepEqual(named, [
      { path: 'README.md', line: 1 },
      { path: 'src/nowhere.ts', line: 1 },
    ]);
    assert.equal(existsSync(join(root, 'src/nowhere.ts')), false);
  });

  for (const file of markdownFiles()) {
    it(`${file}: every path it names exists`, () => {
      const text = readFileSync(join(root, file), 'utf8');
      const missing = namedPaths(file, text)
        .filter(({ path }) => !existsSync(join(root, path)))
        .map(({ path, line }) => `${file}:${line}: ${path}`);
      assert.deepEqual(missing, [], `paths that do not exist:\n${missing.join('\n')}`);
      assert.doesNotMatch(text, /\.\.\/shared|\/work\/shared/, `${file} points outside the repository`);
    });
  }
});
