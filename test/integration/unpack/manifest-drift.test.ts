// With a manifest the applier trusts its record of the tree instead of reading the disk. A path the manifest
// knows as a regular file that became a symlink behind its back must never be followed: chmod(2) follows
// symlinks, so a mode change would land on whatever the link points at, outside the target.
import assert from 'node:assert/strict';
import { lstatSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import { applyBuffer, canaries, makeWorkspace } from '#test/support/unpack-harness.ts';

const revision = (mode: number) =>
  new TarBuilder().dir('etc/').file('etc/app.conf', 'listen 80\n', { mode }).build();

describe('Function: applyTarball() with a manifest', () => {
  it('never follows a manifest-known file that became a symlink out of the tree', async () => {
    // prepare: revision 1 applied with a manifest, then etc/app.conf swapped for a link to the canary
    const ws = makeWorkspace();
    try {
      await applyBuffer(revision(0o644), ws.root, { manifestPath: ws.manifest });
      const conf = join(ws.root, 'etc/app.conf');
      rmSync(conf);
      symlinkSync(join(ws.canary, 'secret'), conf);
      const before = await canaries(ws);
      const canaryMode = statSync(join(ws.canary, 'secret')).mode;
      // act: revision 2 only changes the file's mode, so its content is not rewritten
      let outcome: 'applied' | Error = 'applied';
      try {
        await applyBuffer(revision(0o4755), ws.root, { manifestPath: ws.manifest });
      } catch (err) {
        outcome = err as Error;
      }
      // assess: nothing outside the target changed, and the link was refused or replaced, never kept
      assert.equal(statSync(join(ws.canary, 'secret')).mode, canaryMode, 'chmod did not follow the link');
      assert.deepEqual(await canaries(ws), before);
      if (outcome === 'applied') {
        const st = lstatSync(conf);
        assert.ok(st.isFile(), 'the link was replaced by the archive file');
        assert.equal(st.mode & 0o7777, 0o4755);
      } else {
        assert.match(outcome.message, /etc\/app\.conf/);
        assert.match(outcome.message, /symlink/);
      }
    } finally {
      ws.cleanup();
    }
  });
});
