// infra/builder/packages.list against the code the builder carries (src/builder, src/unpack): every command
// the code runs and every GRUB path it reads is listed with its package, and the list names nothing the
// code does not use. Parsing and checking are covered on made-up lists.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { builderRequirements, checkRequirements, parsePackagesList } from '#builder/requirements.ts';

const SRC = new URL('../../../src/', import.meta.url).pathname;

async function builderSources(): Promise<string> {
  const texts: string[] = [];
  for (const dir of ['builder', 'unpack']) {
    for (const entry of await readdir(join(SRC, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && entry.name.endsWith('.ts'))
        texts.push(await readFile(join(entry.parentPath, entry.name), 'utf8'));
    }
  }
  // Comments name tools too ("sgdisk, mkfs.ext4, losetup, …"): only code counts.
  return texts
    .join('\n')
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/\/\*[\s\S]*?\*\//g, '');
}

/** Commands the code starts: run('x', …), runEnv('x', …), spawn('x', …), spawnSync('x', …), execFile('x', …). */
function commandsRun(code: string): Set<string> {
  const found = new Set<string>();
  for (const m of code.matchAll(/\b(?:run|runEnv|spawn|spawnSync|execFile)\(\s*'([^'/][^']*)'/g))
    found.add(m[1] as string);
  // A tool chosen at run time: `const tool = kind === 'xz' ? 'xz' : … 'zstd' …`, and argv-style calls.
  for (const m of code.matchAll(/const tool = ([^;]+);/g))
    for (const t of (m[1] as string).matchAll(/\? '([a-z0-9.-]+)'/g)) found.add(t[1] as string);
  for (const m of code.matchAll(/\[\s*'(tar|getfattr|setfattr)',/g)) found.add(m[1] as string);
  return found;
}

/** GRUB paths the code reads: join(GRUB_DIR, '<platform>'[, '<file>']). */
function grubPaths(code: string): Set<string> {
  const dir = /const GRUB_DIR = '([^']+)'/.exec(code)?.[1];
  assert.ok(dir, 'boot code names its GRUB directory');
  const found = new Set<string>();
  for (const m of code.matchAll(/join\(GRUB_DIR, '([^']+)'(?:, '([^']+)')?\)/g))
    found.add(m[2] ? `${dir}/${m[1]}/${m[2]}` : `${dir}/${m[1]}`);
  return found;
}

describe('Module: builder requirements (infra/builder/packages.list)', () => {
  it('lists every command the builder code runs, and every GRUB path it reads, with its package', async () => {
    // prepare
    const code = await builderSources();
    const listed = new Set(builderRequirements().map((r) => r.need));
    // act
    const needed = [...commandsRun(code), ...grubPaths(code)];
    // assess
    assert.ok(needed.length > 20, `found ${needed.length} tools: the scan still sees the code`);
    assert.deepEqual(needed.filter((n) => !listed.has(n)).sort(), []);
  });

  it('names nothing the builder code does not use', async () => {
    const code = await builderSources();
    const needed = new Set([...commandsRun(code), ...grubPaths(code)]);
    const unused = builderRequirements()
      .filter((r) => !needed.has(r.need))
      .map((r) => `${r.package}: ${r.need}`);
    assert.deepEqual(unused, []);
  });

  it('parses package lines and refuses a line without what the code uses from the package', () => {
    assert.deepEqual(
      parsePackagesList('# c\nzstd zstd\ngrub-efi-arm64-bin:arm64 /usr/lib/grub/arm64-efi # x\n'),
      [
        { package: 'zstd', need: 'zstd' },
        { package: 'grub-efi-arm64-bin:arm64', need: '/usr/lib/grub/arm64-efi' },
      ],
    );
    assert.throws(
      () => parsePackagesList('zstd\n', 'list'),
      /list:1: expected "<package> <command or \/path> …"/,
    );
  });

  it('reports what is missing: a command not on PATH, a directory that does not exist', async () => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-req-'));
    try {
      const list = join(dir, 'packages.list');
      await writeFile(list, `coreutils sync\nnothing-bin no-such-tool-stemcell ${dir}/absent\nhere ${dir}\n`);
      // act
      const results = checkRequirements(builderRequirements(list));
      // assess
      assert.deepEqual(
        results.filter((r) => !r.found).map((r) => r.requirement.need),
        ['no-such-tool-stemcell', `${dir}/absent`],
      );
      assert.equal(results.find((r) => r.requirement.need === dir)?.found, dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
