// Revision 2 applied over revision 1: the result equals GNU tar's fresh extract of revision 2, and only
// what changed is written (with a manifest), or the disk is verified (without a valid one).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  createReadStream,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { buildRichTree } from '#test/support/unpack-fixtures.ts';
import {
  applyBuffer,
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  snapshotTree,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { applyTarball, RejectedArchiveError } from '#unpack/index.ts';

const T0 = 1_700_000_000;
/** Files revision 2 leaves exactly as they are: made immutable, so any open for writing fails. */
const UNCHANGED = ['usr/bin/su', 'usr/bin/wall', 'opt/back\\slash', 'usr/bin/large-twin'];

function makeRevision2(rev1: string, rev2: string): void {
  execFileSync('cp', ['-a', rev1, rev2]);
  const p = (rel: string) => join(rev2, rel);
  writeFileSync(p('etc/hostname'), 'stemcell-2\n');
  // 100 bytes in the middle of a 3 MiB file: one or two 64 KiB windows differ.
  const fd = openSync(p('usr/bin/large'), 'r+');
  writeSync(fd, Buffer.alloc(100, 0x41), 0, 100, 1_500_000);
  closeSync(fd);
  chmodSync(p('etc/shadow'), 0o640);
  lchownSync(p('srv/shared/owned'), 4321, 8765);
  lchownSync(p('usr/bin/ping'), 0, 7); // the kernel would drop security.capability: it must come back
  execFileSync('setfattr', [
    '-n',
    'security.capability',
    '-v',
    '0x0100000200200000000000000000000000000000',
    p('usr/bin/ping'),
  ]);
  execFileSync('setfattr', ['-x', 'security.selinux', p('etc/empty')]);
  execFileSync('setfattr', ['-n', 'user.comment', '-v', 'changed', p('etc/hostname')]);
  unlinkSync(p('usr/bin/medium-2'));
  writeFileSync(p('usr/bin/medium-2'), 'split from its hardlink group\n');
  unlinkSync(p('opt/caf\u00e9'));
  mkdirSync(p('opt/caf\u00e9'));
  writeFileSync(p('opt/caf\u00e9/inside'), 'file became a directory\n');
  rmSync(p('opt/deep'), { recursive: true });
  symlinkSync('/srv', p('opt/deep'));
  unlinkSync(p('opt/dangling'));
  writeFileSync(p('opt/dangling'), 'symlink became a file\n');
  unlinkSync(p('etc/owned-link'));
  symlinkSync('empty', p('etc/owned-link'));
  unlinkSync(p('dev/loop0'));
  rmSync(p('usr/share/zoneinfo'), { recursive: true });
  unlinkSync(p('dev/null'));
  execFileSync('mknod', ['-m', '666', p('dev/null'), 'c', '1', '7']);
  chmodSync(p('tmp'), 0o1755);
  mkdirSync(p('new/dir'), { recursive: true });
  writeFileSync(p('new/dir/file'), randomBytes(5000));
  execFileSync('ln', [p('new/dir/file'), p('new/hard')]);
  execFileSync('find', [
    rev2,
    '-depth',
    '-newer',
    p('usr/bin/su'),
    '-exec',
    'touch',
    '-h',
    '-d',
    `@${T0 + 100}`,
    '{}',
    '+',
  ]);
  utimesSync(p('opt/with space'), T0 + 50, T0 + 50);
}

describe('Function: applyTarball() incremental', () => {
  let ws: Workspace;
  let rev1Tar: string;
  let rev2Tar: string;
  let expected: Awaited<ReturnType<typeof snapshotTree>>;
  const targets: string[] = [];

  before(async () => {
    ws = makeWorkspace();
    const rev1 = join(ws.dir, 'rev1');
    const rev2 = join(ws.dir, 'rev2');
    mkdirSync(rev1);
    buildRichTree(rev1);
    writeFileSync(join(rev1, 'usr/bin/large-twin'), randomBytes(2 * 1024 * 1024));
    utimesSync(join(rev1, 'usr/bin/large-twin'), T0, T0);
    utimesSync(join(rev1, 'usr/bin'), T0 - 86400, T0 - 86400);
    makeRevision2(rev1, rev2);
    const tarOpts = ['--xattrs', '--xattrs-include=*', '--format=pax', '--numeric-owner', '--zstd', '-cpf'];
    rev1Tar = join(ws.dir, 'rev1.tar.zst');
    rev2Tar = join(ws.dir, 'rev2.tar.zst');
    execFileSync('tar', [...tarOpts, rev1Tar, '-C', rev1, '.']);
    execFileSync('tar', [...tarOpts, rev2Tar, '-C', rev2, '.']);
    const reference = join(ws.dir, 'reference');
    mkdirSync(reference);
    gnuTarExtract(rev2Tar, reference);
    expected = await snapshotTree(reference);
  });
  after(() => {
    for (const target of targets) {
      for (const rel of UNCHANGED)
        execFileSync('chattr', ['-f', '-i', join(target, rel)], { stdio: 'ignore' });
    }
    ws.cleanup();
  });

  function freshTarget(name: string): string {
    const dir = join(ws.dir, name);
    mkdirSync(dir);
    targets.push(dir);
    return dir;
  }

  it('with a manifest, writes only what changed and never opens unchanged files', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod, chattr');
    // prepare
    const target = freshTarget('with-manifest');
    const manifest = join(ws.dir, 'with-manifest.manifest');
    await applyTarball(createReadStream(rev1Tar), target, { manifestPath: manifest });
    const inoBefore = lstatSync(join(target, 'etc/shadow')).ino;
    // Names added behind the manifest's back (the builder's own files, say) are removed all the same.
    writeFileSync(join(target, 'etc/stray'), 'not in any archive\n');
    mkdirSync(join(target, 'stray-dir/sub'), { recursive: true });
    for (const rel of UNCHANGED) execFileSync('chattr', ['+i', join(target, rel)]);
    // act
    const stats = await applyTarball(createReadStream(rev2Tar), target, { manifestPath: manifest });
    // assess
    for (const rel of UNCHANGED) execFileSync('chattr', ['-i', join(target, rel)]);
    assert.deepEqual(await snapshotTree(target), expected);
    assert.equal(stats.verified, false);
    assert.ok(stats.unchanged >= 10, `unchanged ${stats.unchanged}`);
    assert.ok(stats.metadataUpdates >= 5, `metadataUpdates ${stats.metadataUpdates}`);
    assert.ok(stats.removed >= 3, `removed ${stats.removed}`);
    // The 100-byte change in the 3 MiB file costs at most two windows; the rest is small files.
    assert.ok(stats.bytesWritten < 300 * 1024, `bytesWritten ${stats.bytesWritten}`);
    assert.equal(lstatSync(join(target, 'etc/shadow')).ino, inoBefore, 'a mode change keeps the inode');
    const header = JSON.parse(readFileSync(manifest, 'utf8').split('\n')[0]!);
    assert.equal(header.state, 'complete');
  });

  it('without a manifest, verifies the tree by stat and content and reaches the same result', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod, chattr');
    // prepare
    const target = freshTarget('verify');
    await applyTarball(createReadStream(rev1Tar), target);
    writeFileSync(join(target, 'stray-file'), 'not in any archive\n');
    for (const rel of UNCHANGED) execFileSync('chattr', ['+i', join(target, rel)]);
    // act
    const stats = await applyTarball(createReadStream(rev2Tar), target);
    // assess
    for (const rel of UNCHANGED) execFileSync('chattr', ['-i', join(target, rel)]);
    assert.equal(stats.verified, true);
    assert.deepEqual(await snapshotTree(target), expected);
    assert.ok(stats.unchanged >= 10, `unchanged ${stats.unchanged}`);
  });

  it('ignores a manifest that belongs to another target', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod');
    // prepare
    const first = freshTarget('other-a');
    const second = freshTarget('other-b');
    const manifest = join(ws.dir, 'other.manifest');
    await applyTarball(createReadStream(rev1Tar), first, { manifestPath: manifest });
    await applyTarball(createReadStream(rev1Tar), second);
    writeFileSync(join(second, 'etc/hostname'), 'tampered\n');
    // act
    const stats = await applyTarball(createReadStream(rev2Tar), second, { manifestPath: manifest });
    // assess
    assert.equal(stats.verified, true);
    assert.deepEqual(await snapshotTree(second), expected);
  });

  it('marks the manifest invalid when an apply fails, and the next apply repairs the tree', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod');
    // prepare
    const target = freshTarget('interrupted');
    const manifest = join(ws.dir, 'interrupted.manifest');
    await applyTarball(createReadStream(rev1Tar), target, { manifestPath: manifest });
    const rev2Plain = execFileSync('zstd', ['-dc', rev2Tar], { maxBuffer: 64 * 1024 * 1024 });
    const truncated = rev2Plain.subarray(0, Math.floor(rev2Plain.length / 2));
    // act
    await assert.rejects(
      applyTarball(Readable.from([truncated]), target, { manifestPath: manifest }),
      RejectedArchiveError,
    );
    const header = JSON.parse(readFileSync(manifest, 'utf8').split('\n')[0]!);
    writeFileSync(join(target, 'etc/hostname'), 'changed behind the manifest\n');
    const stats = await applyTarball(createReadStream(rev2Tar), target, { manifestPath: manifest });
    // assess
    assert.equal(header.state, 'in-progress');
    assert.equal(stats.verified, true);
    assert.deepEqual(await snapshotTree(target), expected);
  });

  it('stops at an abort signal and leaves the manifest invalid', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod');
    // prepare
    const target = freshTarget('aborted');
    const manifest = join(ws.dir, 'aborted.manifest');
    await applyTarball(createReadStream(rev1Tar), target, { manifestPath: manifest });
    const controller = new AbortController();
    // act
    const run = applyTarball(createReadStream(rev2Tar), target, {
      manifestPath: manifest,
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    controller.abort();
    // assess
    await assert.rejects(run, { name: 'AbortError' });
    assert.equal(JSON.parse(readFileSync(manifest, 'utf8').split('\n')[0]!).state, 'in-progress');
    const stats = await applyTarball(createReadStream(rev2Tar), target, { manifestPath: manifest });
    assert.equal(stats.verified, true);
    assert.deepEqual(await snapshotTree(target), expected);
  });

  it('applying the same revision again changes nothing', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod');
    // prepare
    const target = freshTarget('idempotent');
    const manifest = join(ws.dir, 'idempotent.manifest');
    await applyTarball(createReadStream(rev2Tar), target, { manifestPath: manifest });
    // act
    const withManifest = await applyTarball(createReadStream(rev2Tar), target, { manifestPath: manifest });
    const verified = await applyTarball(createReadStream(rev2Tar), target);
    // assess
    for (const stats of [withManifest, verified]) {
      assert.equal(stats.filesWritten, 0);
      assert.equal(stats.metadataUpdates, 0);
      assert.equal(stats.removed, 0);
      assert.equal(stats.bytesWritten, 0);
      assert.equal(stats.unchanged, stats.entries);
    }
    assert.deepEqual(await snapshotTree(target), expected);
  });

  it('with trustMtime, takes files of unchanged size and mtime as unchanged without reading them', async () => {
    // prepare
    const ws = makeWorkspace();
    try {
      const rev1 = new TarBuilder()
        .file('same', 'aaaa', { mtime: T0 })
        .file('grown', 'aaaa', { mtime: T0 })
        .file('touched', 'aaaa', { mtime: T0 })
        .build();
      const rev2 = new TarBuilder()
        .file('same', 'bbbb', { mtime: T0 })
        .file('grown', 'bbbbb', { mtime: T0 })
        .file('touched', 'bbbb', { mtime: T0 + 1 })
        .build();
      const checked = join(ws.dir, 'checked');
      mkdirSync(checked);
      for (const target of [ws.root, checked]) {
        await applyBuffer(rev1, target, { manifestPath: `${target}.manifest` });
      }
      // act
      const quick = await applyBuffer(rev2, ws.root, {
        manifestPath: `${ws.root}.manifest`,
        trustMtime: true,
      });
      await applyBuffer(rev2, checked, { manifestPath: `${checked}.manifest` });
      // assess: the quick check misses a same-size, same-mtime edit (its documented trade-off); the
      // default hashes every body and does not.
      assert.equal(quick.unchanged, 1);
      assert.equal(readFileSync(join(ws.root, 'same'), 'utf8'), 'aaaa');
      assert.equal(readFileSync(join(ws.root, 'grown'), 'utf8'), 'bbbbb');
      assert.equal(readFileSync(join(ws.root, 'touched'), 'utf8'), 'bbbb');
      assert.equal(readFileSync(join(checked, 'same'), 'utf8'), 'bbbb');
    } finally {
      ws.cleanup();
    }
  });
});
