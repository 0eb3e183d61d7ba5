// The incremental path for files that share an inode, for a directory a new file goes into, and for the file
// descriptors it opens: a large hardlinked file is never patched in place (its other name would change too),
// an unchanged one keeps its inode, a directory whose entry did not change still ends with the archive's
// mtime after a file was added to it, and no descriptor is left open. Written from the mutants StrykerJS left
// alive in applyFile(), sameContent() and createFile() of src/unpack/apply.ts (group unpack-incremental).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { linkSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { applyBuffer, makeWorkspace } from '#test/support/unpack-harness.ts';
import { WINDOW } from '#unpack/apply.ts';

const T0 = 1_700_000_000;
const MiB = 1024 * 1024;

for (const withManifest of [true, false]) {
  const how = withManifest ? 'with a manifest' : 'without a manifest';
  describe(`Function: applyTarball() shared inodes and descriptors, ${how}`, () => {
    // 1.5 MiB is buffered as a shared file; 17 MiB is past the buffer and streamed.
    for (const size of [1.5 * MiB, 17 * MiB]) {
      it(`splits a ${size / MiB} MiB hardlink pair the archive no longer links, even when both names end alike`, async () => {
        // prepare: revision 2 edits `a` and makes `b` a file of its own with a's new content
        const ws = makeWorkspace();
        try {
          const opts = withManifest ? { manifestPath: ws.manifest } : {};
          const v1 = randomBytes(size);
          const v2 = Buffer.from(v1);
          v2.fill(0x41, WINDOW + 5, WINDOW + 50);
          await applyBuffer(new TarBuilder().file('a', v1).hardlink('b', 'a').build(), ws.root, opts);
          // act
          await applyBuffer(new TarBuilder().file('a', v2).file('b', v2).build(), ws.root, opts);
          // assess: two inodes, as GNU tar extracts two regular files
          const a = lstatSync(join(ws.root, 'a'));
          const b = lstatSync(join(ws.root, 'b'));
          assert.notEqual(a.ino, b.ino);
          assert.equal(a.nlink, 1);
          assert.ok(readFileSync(join(ws.root, 'a')).equals(v2));
          assert.ok(readFileSync(join(ws.root, 'b')).equals(v2));
        } finally {
          ws.cleanup();
        }
      });
    }

    for (const size of [1.5 * MiB, 17 * MiB]) {
      it(`keeps a ${size / MiB} MiB hardlink pair linked when revision 2 changes its content`, async () => {
        const ws = makeWorkspace();
        try {
          const opts = withManifest ? { manifestPath: ws.manifest } : {};
          const v1 = randomBytes(size);
          const v2 = Buffer.from(v1);
          v2.fill(0x42, 3 * WINDOW, 3 * WINDOW + 9);
          await applyBuffer(new TarBuilder().file('a', v1).hardlink('b', 'a').build(), ws.root, opts);
          await applyBuffer(new TarBuilder().file('a', v2).hardlink('b', 'a').build(), ws.root, opts);
          assert.equal(lstatSync(join(ws.root, 'b')).ino, lstatSync(join(ws.root, 'a')).ino);
          assert.ok(readFileSync(join(ws.root, 'b')).equals(v2));
        } finally {
          ws.cleanup();
        }
      });
    }

    it('leaves an unchanged hardlinked large file unwritten, its inode kept', async () => {
      const ws = makeWorkspace();
      try {
        const opts = withManifest ? { manifestPath: ws.manifest } : {};
        const archive = new TarBuilder()
          .file('a', randomBytes(1.5 * MiB), { mtime: T0 })
          .hardlink('b', 'a')
          .build();
        await applyBuffer(archive, ws.root, opts);
        const witness = join(ws.dir, 'witness');
        linkSync(join(ws.root, 'a'), witness);
        const stats = await applyBuffer(archive, ws.root, opts);
        assert.equal(stats.bytesWritten, 0);
        assert.equal(stats.filesWritten, 0);
        assert.equal(lstatSync(join(ws.root, 'a')).ino, lstatSync(witness).ino);
        assert.equal(lstatSync(join(ws.root, 'b')).ino, lstatSync(witness).ino);
      } finally {
        ws.cleanup();
      }
    });

    it('gives an unchanged directory its archive mtime back after a new file went into it', async () => {
      const ws = makeWorkspace();
      try {
        const opts = withManifest ? { manifestPath: ws.manifest } : {};
        const rev = (extra: boolean) => {
          const b = new TarBuilder().dir('etc', { mtime: T0 }).file('etc/a', 'a');
          if (extra) b.file('etc/new', 'new').file('etc/large', randomBytes(MiB + WINDOW));
          return b.build();
        };
        await applyBuffer(rev(false), ws.root, opts);
        await applyBuffer(rev(true), ws.root, opts);
        assert.equal(lstatSync(join(ws.root, 'etc')).mtimeMs, T0 * 1000);
      } finally {
        ws.cleanup();
      }
    });

    it('closes every file it opened', async () => {
      // prepare: large files compared and patched, small ones compared, over an earlier revision
      const ws = makeWorkspace();
      try {
        const opts = withManifest ? { manifestPath: ws.manifest } : {};
        const large = randomBytes(MiB + 3 * WINDOW);
        const changed = Buffer.from(large);
        changed[10] = (changed[10]! + 1) & 0xff;
        const rev = (body: Buffer) => {
          const b = new TarBuilder();
          for (let i = 0; i < 5; i++) b.file(`large-${i}`, body).file(`small-${i}`, `small ${i}`);
          return b.build();
        };
        await applyBuffer(rev(large), ws.root, opts);
        const before = readdirSync('/proc/self/fd').length;
        // act
        await applyBuffer(rev(changed), ws.root, opts);
        await applyBuffer(rev(changed), ws.root, opts);
        // assess
        assert.equal(readdirSync('/proc/self/fd').length, before);
      } finally {
        ws.cleanup();
      }
    });
  });
}
