// The opt-in quick check (trustMtime) skips a body unread only while the disk still holds the inode the last
// apply left (its stamp in the manifest: inode number, size, mtime, ctime). A file edited behind the
// manifest's back, its mtime set back, is no longer taken on the manifest's word: it is compared with the
// archive and rewritten.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { applyBuffer, canaries, makeWorkspace } from '#test/support/unpack-harness.ts';
import { WINDOW } from '#unpack/apply.ts';
import { loadManifest, type ManifestRecord, targetIdentity } from '#unpack/manifest.ts';

const T0 = 1_700_000_000;
const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

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

/** The manifest as an older stemcell wrote it: the same records without inode stamps. */
function dropStamps(manifest: string): void {
  const lines = readFileSync(manifest, 'utf8').split('\n');
  const out = lines.map((line, i) => {
    if (i === 0 || line === '') return line;
    const tab = line.indexOf('\t');
    const rec = JSON.parse(line.slice(tab + 1)) as Record<string, unknown>;
    delete rec.n;
    return `${line.slice(0, tab)}\t${JSON.stringify(rec)}`;
  });
  writeFileSync(manifest, out.join('\n'));
}

/** The manifest's record of one path, read as the next apply reads it. */
function recordOf(manifest: string, root: string, rel: string): ManifestRecord | undefined {
  const loaded = loadManifest(manifest, targetIdentity(root));
  assert.ok(loaded.valid, 'the manifest is valid');
  assert.ok(loaded.records.has(rel), `${rel} is in the manifest`);
  return loaded.records.get(rel);
}

/** Rewrites a file in place, same size, and sets its mtime back: only its ctime tells. */
function editBehindTheBack(path: string, body: string): void {
  writeFileSync(path, body);
  utimesSync(path, T0, T0);
}

describe('Function: applyTarball() with trustMtime, a manifest without inode stamps', () => {
  it("takes the old manifest's word (bodies unread, owner and mode applied, window digests kept) and stamps each file", async () => {
    const ws = makeWorkspace();
    try {
      // prepare: revision 1 applied, then its manifest as an older stemcell wrote it (no stamps)
      const big = randomBytes(2 * MiB);
      const rev = (confMode: number, bigBody: Buffer) =>
        new TarBuilder()
          .file('big', bigBody, { mtime: T0 })
          .file('conf', 'listen 80\n', { mtime: T0, mode: confMode })
          .file('kept', 'as archived\n', { mtime: T0 })
          .build();
      await applyBuffer(rev(0o644, big), ws.root, { manifestPath: ws.manifest });
      dropStamps(ws.manifest);
      const windows = recordOf(ws.manifest, ws.root, 'big')?.b;
      assert.ok(Array.isArray(windows) && windows.length === 32, 'revision 1 recorded 32 window digests');
      // act: revision 2 changes conf's mode only
      const stats = await applyBuffer(rev(0o600, big), ws.root, {
        manifestPath: ws.manifest,
        trustMtime: true,
      });
      // assess: nothing written, conf's mode applied, the other two untouched
      assert.deepEqual(
        [stats.filesWritten, stats.bytesWritten, stats.metadataUpdates, stats.unchanged],
        [0, 0, 1, 2],
      );
      assert.equal(lstatSync(join(ws.root, 'conf')).mode & 0o7777, 0o600);
      assert.deepEqual(
        recordOf(ws.manifest, ws.root, 'big')?.b,
        windows,
        'the window digests are carried over',
      );
      for (const rel of ['big', 'conf', 'kept']) {
        const st = lstatSync(join(ws.root, rel));
        assert.deepEqual(
          recordOf(ws.manifest, ws.root, rel)?.n,
          [st.ino, st.mtimeMs, st.ctimeMs],
          `${rel} is stamped`,
        );
      }

      // act: revision 3 changes one window of big, applied by content (no quick check)
      const big3 = Buffer.from(big);
      big3.fill(0x41, 5 * WINDOW + 3, 5 * WINDOW + 99);
      const stats3 = await applyBuffer(rev(0o600, big3), ws.root, { manifestPath: ws.manifest });
      // assess: the carried-over digests named the one window that changed
      assert.equal(stats3.bytesWritten, WINDOW);
      assert.equal(sha(readFileSync(join(ws.root, 'big'))), sha(big3));

      // act: kept and conf edited behind the manifest's back, their mtimes set back; the quick check again
      editBehindTheBack(join(ws.root, 'kept'), 'as EDITED!!\n');
      editBehindTheBack(join(ws.root, 'conf'), 'listen 81\n');
      const again = await applyBuffer(rev(0o600, big3), ws.root, {
        manifestPath: ws.manifest,
        trustMtime: true,
      });
      // assess: the stamps taken from the old manifest give both edits away
      assert.equal(readFileSync(join(ws.root, 'kept'), 'utf8'), 'as archived\n');
      assert.equal(readFileSync(join(ws.root, 'conf'), 'utf8'), 'listen 80\n');
      assert.equal(again.filesWritten, 2);
    } finally {
      ws.cleanup();
    }
  });
});

describe('Function: applyTarball() with trustMtime, the disk changed behind the manifest', () => {
  const archive = () =>
    new TarBuilder()
      .dir('etc', { mtime: T0 })
      .file('etc/gone', 'deleted behind its back\n', { mtime: T0 })
      .file('etc/touched', 'only its ctime changed\n', { mtime: T0 })
      .file('etc/now-a-dir', 'a directory took its name\n', { mtime: T0 })
      .file('etc/now-a-link', 'a symlink took its name\n', { mtime: T0 })
      .build();

  it('restores a deleted file, keeps one whose bytes still match, and replaces a directory or symlink without following it', async () => {
    const ws = makeWorkspace();
    try {
      // prepare
      const opts = { manifestPath: ws.manifest, trustMtime: true };
      await applyBuffer(archive(), ws.root, opts);
      const at = (rel: string) => join(ws.root, rel);
      rmSync(at('etc/gone'));
      const touchedIno = lstatSync(at('etc/touched')).ino;
      chmodSync(at('etc/touched'), 0o600);
      chmodSync(at('etc/touched'), 0o644);
      rmSync(at('etc/now-a-dir'));
      mkdirSync(at('etc/now-a-dir'));
      writeFileSync(at('etc/now-a-dir/inside'), 'x');
      rmSync(at('etc/now-a-link'));
      symlinkSync(join(ws.canary, 'secret'), at('etc/now-a-link'));
      const before = await canaries(ws);
      // act
      const stats = await applyBuffer(archive(), ws.root, opts);
      // assess: each as the archive has it, a regular file; nothing outside the target written
      for (const rel of ['etc/gone', 'etc/touched', 'etc/now-a-dir', 'etc/now-a-link']) {
        assert.ok(lstatSync(at(rel)).isFile(), `${rel} is a regular file`);
      }
      assert.equal(readFileSync(at('etc/gone'), 'utf8'), 'deleted behind its back\n');
      assert.equal(readFileSync(at('etc/now-a-dir'), 'utf8'), 'a directory took its name\n');
      assert.equal(readFileSync(at('etc/now-a-link'), 'utf8'), 'a symlink took its name\n');
      assert.deepEqual(await canaries(ws), before);
      // the touched file was compared with the disk and kept: same inode, not written
      assert.equal(lstatSync(at('etc/touched')).ino, touchedIno);
      assert.equal(stats.filesWritten, 3);
      assert.equal(
        stats.bytesWritten,
        ['deleted behind its back\n', 'a directory took its name\n', 'a symlink took its name\n'].join('')
          .length,
      );
    } finally {
      ws.cleanup();
    }
  });
});
