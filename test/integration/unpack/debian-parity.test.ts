// The real stream: a Debian root filesystem, revision 1 then revision 2 applied incrementally, must equal
// GNU tar's fresh extract of revision 2. Uses the cached tarballs of test/support/debian.ts; building them
// needs the network (mmdebstrap), so this test runs only where they were built (`npm run bench:unpack`,
// or the Debian tests of the builder).
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { debianCacheDir } from '#test/support/debian.ts';
import { gnuTarExtract, isRoot, makeWorkspace, snapshotTree } from '#test/support/unpack-harness.ts';
import { applyTarball } from '#unpack/index.ts';

describe('Function: applyTarball() on the real Debian stream', () => {
  const ws = makeWorkspace();
  after(() => ws.cleanup());

  it('applies revision 2 over revision 1 exactly as GNU tar extracts revision 2', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown, mknod, security.* xattrs');
    const rev1 = join(debianCacheDir(), 'rev1.tar.zst');
    const rev2 = join(debianCacheDir(), 'rev2.tar.zst');
    if (!existsSync(join(debianCacheDir(), 'complete'))) {
      return t.skip(`Debian tarballs not built (${debianCacheDir()}); building them needs the network`);
    }
    // prepare
    const reference = join(ws.dir, 'gnu');
    mkdirSync(reference);
    gnuTarExtract(rev2, reference);
    await applyTarball(createReadStream(rev1), ws.root, { manifestPath: ws.manifest });
    // act
    const stats = await applyTarball(createReadStream(rev2), ws.root, { manifestPath: ws.manifest });
    // assess
    assert.equal(stats.verified, false);
    assert.ok(stats.unchanged > stats.entries * 0.9, `unchanged ${stats.unchanged} of ${stats.entries}`);
    assert.deepEqual(await snapshotTree(ws.root), await snapshotTree(reference));
  });
});
