// The bounds and references of the incremental file path, each at its edge: a changed file of exactly 1 MiB is
// still read whole and written as a new inode, a hardlinked file of exactly 16 MiB is still buffered (so an
// unchanged one keeps its inode) while one a byte longer is streamed and rewritten, a body whose bytes hash like
// the old file's window digests is still written when its size differs, and with a manifest the windows of a
// large file are compared with the manifest's digests, not read back from disk. Written from the mutants
// StrykerJS left alive in applyFile() and sameContent() of src/unpack/apply.ts after incremental-content.test.ts
// and incremental-links.test.ts (bench/mutation/groups.ts, group unpack-incremental).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { twoRevisions, type Workspace } from '#test/support/unpack-harness.ts';
import { WINDOW } from '#unpack/apply.ts';

const T0 = 1_700_000_000;
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Random bytes: no two windows alike, so a window compare cannot pass by accident. */
const pattern = (length: number) => randomBytes(length);

for (const withManifest of [true, false]) {
  const how = withManifest ? 'with a manifest' : 'without a manifest';
  describe(`Function: applyTarball() file bounds, ${how}`, () => {
    it('writes a changed file of exactly 1 MiB whole, and patches one a byte longer window by window', async () => {
      // prepare: both files change in one window
      const exact1 = pattern(MiB);
      const over1 = pattern(MiB + 1);
      const edit = (b: Buffer) => {
        const out = Buffer.from(b);
        out.fill(0x41, 3 * WINDOW + 7, 3 * WINDOW + 70);
        return out;
      };
      const exact2 = edit(exact1);
      const over2 = edit(over1);
      const rev = (exact: Buffer, over: Buffer) =>
        new TarBuilder().file('exact', exact, { mtime: T0 }).file('over', over, { mtime: T0 });
      // act
      const { ws, stats } = await twoRevisions(withManifest, rev(exact1, over1), rev(exact2, over2));
      try {
        // assess
        assert.equal(sha(readFileSync(join(ws.root, 'exact'))), sha(exact2));
        assert.equal(sha(readFileSync(join(ws.root, 'over'))), sha(over2));
        assert.equal(stats.filesWritten, 2);
        // 1 MiB is still read whole and written as a new file; past it only the changed window is written
        assert.equal(stats.bytesWritten, MiB + WINDOW);
      } finally {
        ws.cleanup();
      }
    });

    // 16 MiB is the last size a hardlinked file is buffered at; one byte more and it is streamed, and a shared
    // file cannot be patched in place, so it is written again as a new inode even when nothing changed.
    for (const [size, buffered] of [
      [16 * MiB, true],
      [16 * MiB + 1, false],
    ] as const) {
      it(`${buffered ? 'keeps' : 'rewrites'} an unchanged hardlinked file of ${size} bytes${buffered ? ', its inode kept' : ' as a new inode'}`, async () => {
        // prepare: a second name outside the target keeps the first inode alive (its number is not reused)
        const body = pattern(size);
        const rev = () => new TarBuilder().file('a', body, { mtime: T0 }).hardlink('b', 'a');
        const witness = (w: Workspace) => join(w.dir, 'witness');
        // act
        const { ws, stats } = await twoRevisions(withManifest, rev(), rev(), (w) =>
          linkSync(join(w.root, 'a'), witness(w)),
        );
        try {
          // assess
          const a = lstatSync(join(ws.root, 'a'));
          assert.equal(lstatSync(join(ws.root, 'b')).ino, a.ino, 'still one inode');
          assert.equal(sha(readFileSync(join(ws.root, 'a'))), sha(body));
          if (buffered) {
            assert.equal(a.ino, lstatSync(witness(ws)).ino, 'not rewritten');
            assert.equal(stats.bytesWritten, 0);
            assert.equal(stats.filesWritten, 0);
          } else {
            assert.notEqual(a.ino, lstatSync(witness(ws)).ino, 'written as a new inode');
            assert.equal(stats.bytesWritten, size);
            assert.equal(stats.filesWritten, 2, '`a`, and `b` linked again to its new inode');
          }
        } finally {
          ws.cleanup();
        }
      });
    }

    it("writes a short body whose bytes are the old file's window digests: its size differs", async () => {
      // prepare: revision 1's file has two windows, so its content hash is the sha256 of its two 16-byte window
      // digests; revision 2's file is those 32 bytes, whose own content hash is the same sha256
      const v1 = pattern(2 * WINDOW);
      const digest = (b: Buffer) => createHash('sha256').update(b).digest().subarray(0, 16);
      const v2 = Buffer.concat([digest(v1.subarray(0, WINDOW)), digest(v1.subarray(WINDOW))]);
      const rev = (body: Buffer) => new TarBuilder().file('f', body, { mtime: T0 });
      // act
      const { ws, stats } = await twoRevisions(withManifest, rev(v1), rev(v2));
      try {
        // assess
        assert.equal(sha(readFileSync(join(ws.root, 'f'))), sha(v2));
        assert.equal(stats.bytesWritten, v2.length);
        assert.equal(stats.filesWritten, 1);
      } finally {
        ws.cleanup();
      }
    });

    it(`compares a large file's windows with ${withManifest ? "the manifest's digests, not the disk" : 'the bytes on disk'}`, async () => {
      // prepare: revision 2 changes one window, and someone wrote that same change into the file beforehand
      const v1 = pattern(18 * WINDOW + 1000);
      const v2 = Buffer.from(v1);
      v2.fill(0x41, 9 * WINDOW + 10, 9 * WINDOW + 110);
      const rev = (body: Buffer) => new TarBuilder().file('big', body, { mtime: T0 });
      // act
      const { ws, stats } = await twoRevisions(withManifest, rev(v1), rev(v2), (w) => {
        const fd = openSync(join(w.root, 'big'), 'r+');
        try {
          writeSync(fd, v2, 9 * WINDOW, WINDOW, 9 * WINDOW);
        } finally {
          closeSync(fd);
        }
      });
      try {
        // assess: the manifest still says the old window, so it is written; the disk already holds the new one
        assert.equal(sha(readFileSync(join(ws.root, 'big'))), sha(v2));
        assert.equal(stats.bytesWritten, withManifest ? WINDOW : 0);
        assert.equal(stats.filesWritten, withManifest ? 1 : 0);
      } finally {
        ws.cleanup();
      }
    });
  });
}

describe('Function: applyTarball() with a manifest, a changed file whose old copy went behind its back', () => {
  it('writes it where a directory now stands (removed with what it holds) or where nothing is left', async () => {
    // prepare: revision 2 changes both files; between the applies one became a directory, one was deleted
    const rev = (v: string) =>
      new TarBuilder()
        .file('now-a-dir', `revision ${v}\n`, { mtime: T0 })
        .file('gone', `revision ${v}\n`, { mtime: T0 });
    // act
    const { ws, stats } = await twoRevisions(true, rev('1'), rev('2'), (w) => {
      rmSync(join(w.root, 'now-a-dir'));
      mkdirSync(join(w.root, 'now-a-dir'));
      writeFileSync(join(w.root, 'now-a-dir/inside'), 'x');
      rmSync(join(w.root, 'gone'));
    });
    try {
      // assess
      for (const rel of ['now-a-dir', 'gone']) {
        assert.ok(lstatSync(join(ws.root, rel)).isFile(), `${rel} is a regular file`);
        assert.equal(readFileSync(join(ws.root, rel), 'utf8'), 'revision 2\n');
      }
      assert.equal(stats.filesWritten, 2);
    } finally {
      ws.cleanup();
    }
  });
});
