// The applier's tree must equal what GNU tar extracts from the same archive, for every fixture.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { buildRichTree } from '#test/support/unpack-fixtures.ts';
import {
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  snapshotTree,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { applyTarball } from '#unpack/index.ts';

const T0 = 1_700_000_000;

describe('Function: applyTarball() against GNU tar', () => {
  let ws: Workspace;
  let src: string;
  const archives: Record<string, string> = {};

  before(() => {
    ws = makeWorkspace();
    src = join(ws.dir, 'src');
    mkdirSync(src);
    buildRichTree(src);
    const create = (name: string, extra: string[]) => {
      const out = join(ws.dir, name);
      execFileSync('tar', [...extra, '--numeric-owner', '-cpf', out, '-C', src, '.']);
      archives[name] = out;
    };
    create('pax.tar', ['--xattrs', '--xattrs-include=*', '--format=pax']);
    create('pax.tar.gz', ['--xattrs', '--xattrs-include=*', '--format=pax', '--gzip']);
    create('pax.tar.zst', ['--xattrs', '--xattrs-include=*', '--format=pax', '--zstd']);
    create('pax.tar.xz', ['--xattrs', '--xattrs-include=*', '--format=pax', '--xz']);
    create('gnu.tar', ['--format=gnu']);
    create('gnu-no-dot.tar.gz', ['--format=gnu', '--gzip', '--exclude=./usr/bin/large']);
    const built = new TarBuilder()
      .dir('./', { mode: 0o755, mtime: T0 })
      .dir('a', { mode: 0o750, uid: 7, gid: 8, mtime: T0 + 1 })
      .file('a/fractional', 'pax mtime\n', { pax: [['mtime', `${T0 + 2}.5`]] })
      .file('a/nanoseconds', 'exact\n', { pax: [['mtime', '1795296351.108852812']] })
      .dir('a/nano-dir', { pax: [['mtime', '1795296351.000000001']] })
      .fifo('a/nano-dir/fifo', { pax: [['mtime', '1795296351.999999999']] })
      .symlink('a/nano-link', 'x', { pax: [['mtime', '1700000000.000000123']] })
      .header(
        {
          name: 'a/base256',
          typeflag: '0',
          rawSize: (() => {
            const b = Buffer.alloc(12);
            b[0] = 0x80;
            b[11] = 6;
            return b;
          })(),
          mtime: T0,
        },
        Buffer.from('sized\n'),
      )
      .file('a/pax-path-ignored-name', 'pax path wins\n', {
        pax: [
          ['path', 'a/pax named'],
          ['uid', '4000000'],
          ['gid', '4000001'],
        ],
      })
      .gnuLongName(`a/${'g'.repeat(120)}`)
      .header(
        { name: 'truncated-name', typeflag: '0', size: 5, format: 'gnu', mtime: T0 },
        Buffer.from('long\n'),
      )
      .symlink('a/abs', '/etc/passwd', { mtime: T0 + 3 })
      .hardlink('a/hard', '/a/fractional')
      .file('./a/./dotted//path', 'normalised\n')
      .build();
    archives['built.tar'] = join(ws.dir, 'built.tar');
    writeFileSync(archives['built.tar'], built);
  });
  after(() => ws.cleanup());

  for (const name of [
    'pax.tar',
    'pax.tar.gz',
    'pax.tar.zst',
    'pax.tar.xz',
    'gnu.tar',
    'gnu-no-dot.tar.gz',
    'built.tar',
  ]) {
    it(`extracts ${name} exactly as GNU tar does`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown, mknod and trusted.* xattrs');
      // prepare
      const ours = join(ws.dir, `ours-${name}`);
      const theirs = join(ws.dir, `gnu-${name}`);
      mkdirSync(ours);
      mkdirSync(theirs);
      // act
      const stats = await applyTarball(createReadStream(archives[name]!), ours);
      gnuTarExtract(archives[name]!, theirs);
      // assess
      assert.ok(stats.entries > 5);
      // An implied parent (listed by no entry) gets the time of extraction from both.
      const opts = { ignoreMtime: ['a/dotted'] };
      assert.deepEqual(await snapshotTree(ours, opts), await snapshotTree(theirs, opts));
    });
  }

  it('keeps setuid bits, devices and security.capability inside the root', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod and security.* xattrs');
    // prepare
    const ours = join(ws.dir, 'ours-preserved');
    mkdirSync(ours);
    // act
    await applyTarball(createReadStream(archives['pax.tar.zst']!), ours);
    const snap = await snapshotTree(ours);
    // assess
    assert.equal(snap['usr/bin/su']?.mode, '4755');
    assert.equal(snap['usr/bin/wall']?.mode, '2755');
    assert.equal(snap.tmp?.mode, '1777');
    assert.deepEqual(snap['dev/null']?.rdev, [1, 3]);
    assert.equal(snap['dev/loop0']?.type, 'block');
    assert.equal(snap['dev/initctl']?.type, 'fifo');
    assert.equal(snap['usr/bin/ping']?.xattrs?.['security.capability'], 'AQAAAgAgAAAAAAAAAAAAAAAAAAA=');
    assert.equal(snap['etc/localtime']?.link, '/usr/share/zoneinfo/UTC');
    assert.equal(snap['usr/bin/medium-2']?.hardlinkGroup, 'opt/medium-3');
  });
});
