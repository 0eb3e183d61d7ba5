// The opt-in quick check (trustMtime) skips a body unread only while the disk still holds the inode the last
// apply left (its stamp in the manifest: inode number, size, mtime, ctime). A file edited behind the
// manifest's back, its mtime set back, is no longer taken on the manifest's word: it is compared with the
// archive and rewritten.
import assert from 'node:assert/strict';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { applyBuffer, makeWorkspace } from '#test/support/unpack-harness.ts';

const T0 = 1_700_000_000;

describe('Function: applyTarball() with trustMtime', () => {
  it('skips an untouched file unread, and rewrites one edited behind the manifest with its mtime set back', async () => {
    const ws = makeWorkspace();
    try {
      // prepare: revision 1 applied with a manifest; then one file edited in place, same size, mtime restored
      const archive = new TarBuilder()
        .dir('etc', { mtime: T0 })
        .file('etc/app.conf', 'listen 80\n', { mtime: T0 })
        .file('etc/untouched', 'as archived\n', { mtime: T0 })
        .build();
      const opts = { manifestPath: ws.manifest, trustMtime: true };
      await applyBuffer(archive, ws.root, opts);
      const conf = join(ws.root, 'etc/app.conf');
      writeFileSync(conf, 'listen 81\n');
      utimesSync(conf, T0, T0);
      // act: the same archive again, with the quick check
      const stats = await applyBuffer(archive, ws.root, opts);
      // assess: the edit is undone (its ctime gave it away); the untouched file was skipped
      assert.equal(readFileSync(conf, 'utf8'), 'listen 80\n');
      assert.equal(readFileSync(join(ws.root, 'etc/untouched'), 'utf8'), 'as archived\n');
      assert.equal(stats.filesWritten, 1);
      assert.equal(stats.bytesWritten, 10);
      assert.equal(stats.unchanged, 2, 'etc/ and etc/untouched');
    } finally {
      ws.cleanup();
    }
  });
});
