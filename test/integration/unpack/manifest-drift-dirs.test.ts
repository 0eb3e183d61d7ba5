// With a manifest the applier trusts its record of what is inside a directory. When the directory itself is found
// gone or replaced behind the manifest's back (a symlink out of the tree, a file, nothing), the applier makes a new,
// empty directory there: every manifest-known entry below it must then be written again, or the tree ends without
// them while the new manifest says they are there. Each case ends with what a fresh extract of the archive gives,
// and nothing outside the target changes.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  canaries,
  makeWorkspace,
  snapshotTree,
  type Workspace,
} from '#test/support/unpack-harness.ts';

const planted: Record<string, (ws: Workspace, path: string) => void> = {
  'a symlink out of the tree': (ws, path) => symlinkSync(ws.canary, path),
  'a regular file': (_ws, path) => writeFileSync(path, 'planted\n'),
  'nothing (removed)': () => {},
};

function revision(listed: boolean): Buffer {
  const b = new TarBuilder();
  if (listed) b.dir('etc', { mode: 0o750 });
  return b
    .file('etc/hosts', '127.0.0.1 localhost\n')
    .dir('etc/ssh')
    .file('etc/ssh/sshd_config', 'PermitRootLogin no\n', { mode: 0o600 })
    .symlink('etc/localtime', '/usr/share/zoneinfo/UTC')
    .hardlink('etc/hosts.bak', 'etc/hosts')
    .build();
}

describe('Function: applyTarball() with a manifest, a directory changed behind its back', () => {
  for (const listed of [true, false]) {
    for (const [what, plant] of Object.entries(planted)) {
      it(`restores everything below ${listed ? 'a listed' : 'an implied'} directory that became ${what}`, async () => {
        // prepare: revision 1 applied with a manifest, then etc replaced behind the manifest's back
        const ws = makeWorkspace();
        try {
          const archive = revision(listed);
          await applyBuffer(archive, ws.root, { manifestPath: ws.manifest });
          rmSync(join(ws.root, 'etc'), { recursive: true });
          plant(ws, join(ws.root, 'etc'));
          const before = await canaries(ws);
          const fresh = join(ws.dir, 'fresh');
          mkdirSync(fresh);
          await applyBuffer(archive, fresh);
          // act: the same revision again, with the manifest
          await applyBuffer(archive, ws.root, { manifestPath: ws.manifest });
          // assess
          assert.deepEqual(await canaries(ws), before);
          const opts = { ignoreMtime: ['', ...(listed ? [] : ['etc'])] };
          assert.deepEqual(await snapshotTree(ws.root, opts), await snapshotTree(fresh, opts));
          // and the manifest written now vouches for a tree that is there: a third apply changes nothing
          const again = await applyBuffer(archive, ws.root, { manifestPath: ws.manifest });
          assert.equal(again.filesWritten, 0);
          assert.deepEqual(await snapshotTree(ws.root, opts), await snapshotTree(fresh, opts));
        } finally {
          ws.cleanup();
        }
      });
    }
  }
});
