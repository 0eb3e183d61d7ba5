// What the incremental path decides about a regular file's content, with and without a manifest: a same-size
// edit is written (as a new inode when small), an unchanged body is not (the inode stays), a large file that
// shrinks, grows or changes one window ends byte for byte as the archive has it with only the changed windows
// written, and a name put in the tree behind the manifest's back (a symlink out of the tree, a directory) is
// replaced, never opened or followed. Written from the mutants StrykerJS left alive in applyFile(),
// sameContent() and createFile() of src/unpack/apply.ts (bench/mutation/groups.ts, group unpack-incremental).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { linkSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { twoRevisions, type Workspace } from '#test/support/unpack-harness.ts';
import { WINDOW } from '#unpack/apply.ts';

const T0 = 1_700_000_000;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Random bytes: no two windows alike, so a window compare cannot pass by accident. */
const pattern = (length: number) => randomBytes(length);

for (const withManifest of [true, false]) {
  const how = withManifest ? 'with a manifest' : 'without a manifest';
  describe(`Function: applyTarball() file content, ${how}`, () => {
    it('writes a same-size edit of a small file, as a new inode, and keeps an unchanged one in place', async () => {
      // prepare
      const rev = (motd: string, mtime: number) =>
        new TarBuilder()
          .dir('etc')
          .file('etc/motd', motd, { mtime })
          .file('etc/same', 'unchanged\n', { mtime })
          .file('etc/empty', '', { mtime });
      // a second name outside the target for each file keeps its inode alive (so its number is not reused)
      const witness = (w: Workspace, name: string) => join(w.dir, `witness-${name}`);
      const { ws, stats } = await twoRevisions(
        withManifest,
        rev('aaaa\n', T0),
        rev('bbbb\n', T0 + 1),
        (w) => {
          for (const name of ['motd', 'same', 'empty']) linkSync(join(w.root, 'etc', name), witness(w, name));
        },
      );
      try {
        // assess
        assert.equal(readFileSync(join(ws.root, 'etc/motd'), 'utf8'), 'bbbb\n');
        assert.equal(readFileSync(witness(ws, 'motd'), 'utf8'), 'aaaa\n', 'written as a new inode');
        const ino = (path: string) => lstatSync(path).ino;
        assert.notEqual(ino(join(ws.root, 'etc/motd')), ino(witness(ws, 'motd')));
        assert.equal(ino(join(ws.root, 'etc/same')), ino(witness(ws, 'same')), 'not rewritten');
        assert.equal(ino(join(ws.root, 'etc/empty')), ino(witness(ws, 'empty')), 'not rewritten');
        assert.equal(readFileSync(join(ws.root, 'etc/same'), 'utf8'), 'unchanged\n');
        assert.equal(lstatSync(join(ws.root, 'etc/same')).mtimeMs, (T0 + 1) * 1000);
        assert.equal(stats.filesWritten, 1);
        assert.equal(stats.bytesWritten, 5);
        assert.equal(stats.metadataUpdates, 2, 'the two new mtimes');
        assert.equal(stats.unchanged, 1, 'etc/');
      } finally {
        ws.cleanup();
      }
    });

    it('patches one changed window of a large file, writing only that window', async () => {
      // prepare
      const v1 = pattern(18 * WINDOW + 1000);
      const v2 = Buffer.from(v1);
      v2.fill(0x41, 9 * WINDOW + 10, 9 * WINDOW + 110);
      const rev = (body: Buffer) => new TarBuilder().file('big', body, { mtime: T0 });
      let ino = 0;
      const { ws, stats } = await twoRevisions(withManifest, rev(v1), rev(v2), (w) => {
        ino = lstatSync(join(w.root, 'big')).ino;
      });
      try {
        // assess
        assert.equal(sha(readFileSync(join(ws.root, 'big'))), sha(v2));
        assert.equal(lstatSync(join(ws.root, 'big')).ino, ino, 'patched in place');
        assert.equal(stats.bytesWritten, WINDOW);
        assert.equal(stats.filesWritten, 1);
      } finally {
        ws.cleanup();
      }
    });

    it('leaves an unchanged large file unwritten, and writes the last partial window when only it changes', async () => {
      const v1 = pattern(17 * WINDOW + 333);
      const v2 = Buffer.from(v1);
      v2[v2.length - 1] = (v2[v2.length - 1]! + 1) & 0xff;
      const rev = (body: Buffer) =>
        new TarBuilder().file('big', body, { mtime: T0 }).file('same', v1, { mtime: T0 });
      const { ws, stats } = await twoRevisions(withManifest, rev(v1), rev(v2));
      try {
        assert.equal(sha(readFileSync(join(ws.root, 'big'))), sha(v2));
        assert.equal(sha(readFileSync(join(ws.root, 'same'))), sha(v1));
        assert.equal(stats.bytesWritten, 333);
        assert.equal(stats.filesWritten, 1);
        assert.equal(stats.unchanged, 1, 'the unchanged file');
      } finally {
        ws.cleanup();
      }
    });

    it('truncates a large file that shrinks and extends one that grows, byte for byte', async () => {
      // prepare
      const v1 = pattern(20 * WINDOW + 1000);
      const shorter = v1.subarray(0, 17 * WINDOW);
      const longer = Buffer.concat([v1, pattern(3 * WINDOW + 7)]);
      const rev = (a: Buffer, b: Buffer) =>
        new TarBuilder().file('shrinks', a, { mtime: T0 }).file('grows', b, { mtime: T0 });
      // act
      const { ws, stats } = await twoRevisions(withManifest, rev(v1, v1), rev(shorter, longer));
      try {
        // assess
        assert.equal(lstatSync(join(ws.root, 'shrinks')).size, shorter.length);
        assert.equal(sha(readFileSync(join(ws.root, 'shrinks'))), sha(shorter));
        assert.equal(sha(readFileSync(join(ws.root, 'grows'))), sha(longer));
        // the old partial window is rewritten whole, then the new windows; nothing of the shrunk file
        assert.equal(stats.bytesWritten, longer.length - 20 * WINDOW);
        assert.equal(stats.filesWritten, 2);
      } finally {
        ws.cleanup();
      }
    });

    it('replaces a symlink or a directory put where a new file goes, never following it', async () => {
      // prepare: revision 2 adds etc/new (small) and etc/large (streamed); someone planted both names
      const rev1 = new TarBuilder().dir('etc').file('etc/kept', 'kept\n');
      const large = pattern(17 * WINDOW);
      const rev2 = new TarBuilder()
        .dir('etc')
        .file('etc/kept', 'kept\n')
        .file('etc/new', 'hello\n', { mode: 0o600 })
        .file('etc/large', large)
        .file('etc/dir-was-here', 'file\n');
      // act
      const { ws } = await twoRevisions(withManifest, rev1, rev2, (w) => {
        symlinkSync(join(w.canary, 'secret'), join(w.root, 'etc/new'));
        symlinkSync(join(w.canary, 'secret'), join(w.root, 'etc/large'));
        mkdirSync(join(w.root, 'etc/dir-was-here/sub'), { recursive: true });
        writeFileSync(join(w.root, 'etc/dir-was-here/sub/x'), 'x');
      });
      try {
        // assess
        const st = lstatSync(join(ws.root, 'etc/new'));
        assert.ok(st.isFile());
        assert.equal(st.mode & 0o7777, 0o600);
        assert.equal(readFileSync(join(ws.root, 'etc/new'), 'utf8'), 'hello\n');
        assert.ok(lstatSync(join(ws.root, 'etc/large')).isFile());
        assert.equal(sha(readFileSync(join(ws.root, 'etc/large'))), sha(large));
        assert.equal(readFileSync(join(ws.root, 'etc/dir-was-here'), 'utf8'), 'file\n');
        assert.equal(readFileSync(join(ws.canary, 'secret'), 'utf8'), 'canary secret\n');
      } finally {
        ws.cleanup();
      }
    });
  });
}
