// Revision 2 over revision 1, with and without a manifest, for what the unpacker's safety paths decide per entry
// type: a name planted in the tree where revision 2 puts a directory, symlink or hardlink is replaced, never
// followed; a symlink whose target changed is re-made, an unchanged one kept; a hardlink follows its target's
// new inode; an owner change of a setuid file keeps its setuid bit (chown(2) clears it); an implied parent is
// made 0755 over whatever was there. Each case ends as GNU tar's fresh extract of revision 2 (tar -xp as
// root), and nothing outside the target changes.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  isRoot,
  makeWorkspace,
  overRevision,
  type RevisionCase,
} from '#test/support/unpack-harness.ts';

const T0 = 1_700_000_000;
const tar = () => new TarBuilder();

const cases: Record<string, RevisionCase> = {
  'replaces a symlink planted where revision 2 adds a directory': {
    rev1: tar().file('keep', 'k'),
    rev2: tar().file('keep', 'k').dir('opt', { mode: 0o750 }).file('opt/tool', 'tool'),
    between: (ws) => symlinkSync(ws.canary, join(ws.root, 'opt')),
  },
  'replaces a file planted where revision 2 adds a symlink': {
    rev1: tar().file('keep', 'k'),
    rev2: tar().file('keep', 'k').symlink('link', 'keep'),
    between: (ws) => writeFileSync(join(ws.root, 'link'), 'planted'),
  },
  'replaces a symlink planted where revision 2 adds a hardlink, never linking its target': {
    rev1: tar().file('keep', 'k'),
    rev2: tar().file('keep', 'k').hardlink('again', 'keep'),
    between: (ws) => symlinkSync(join(ws.canary, 'secret'), join(ws.root, 'again')),
    check: (ws) => assert.equal(lstatSync(join(ws.root, 'again')).ino, lstatSync(join(ws.root, 'keep')).ino),
  },
  'replaces a directory planted where revision 2 adds a hardlink': {
    rev1: tar().file('keep', 'k'),
    rev2: tar().file('keep', 'k').hardlink('again', 'keep'),
    between: (ws) => {
      mkdirSync(join(ws.root, 'again/sub'), { recursive: true });
      writeFileSync(join(ws.root, 'again/sub/x'), 'x');
    },
  },
  're-makes a symlink whose target changed and keeps one that did not': {
    rev1: tar().symlink('moved', 'old-target').symlink('same', 'target'),
    rev2: tar().symlink('moved', 'new-target').symlink('same', 'target'),
    check: (ws, stats) => {
      assert.equal(readlinkSync(join(ws.root, 'moved')), 'new-target');
      assert.equal(stats.filesWritten, 1);
      assert.equal(stats.unchanged, 1);
    },
  },
  'changes the owner of a symlink itself, not of what it points at': {
    rev1: tar().file('target', 't').symlink('link', 'target'),
    rev2: tar().file('target', 't').symlink('link', 'target', { uid: 1234, gid: 5678 }),
    check: (ws, stats) => {
      assert.equal(lstatSync(join(ws.root, 'target')).uid, 0);
      assert.equal(stats.metadataUpdates, 1);
    },
  },
  'keeps the setuid and setgid bits of a file whose owner changed': {
    rev1: tar().file('su', 'binary', { mode: 0o4755 }).file('wall', 'binary', { mode: 0o2755, gid: 5 }),
    rev2: tar()
      .file('su', 'binary', { mode: 0o4755, uid: 1000 })
      .file('wall', 'binary', { mode: 0o2755, gid: 7 }),
    check: (ws) => {
      assert.equal(lstatSync(join(ws.root, 'su')).mode & 0o7777, 0o4755);
      assert.equal(lstatSync(join(ws.root, 'wall')).mode & 0o7777, 0o2755);
    },
  },
  'changes the mode and owner of a directory, keeping its content': {
    rev1: tar().dir('srv', { mode: 0o755 }).file('srv/x', 'x'),
    rev2: tar()
      .dir('srv', { mode: 0o1770, uid: 33, gid: 33, mtime: T0 + 5 })
      .file('srv/x', 'x'),
    check: (_ws, stats) => {
      assert.equal(stats.metadataUpdates, 1);
      assert.equal(stats.unchanged, 1);
    },
  },
  'keeps an unchanged hardlink, and re-links one whose target got a new inode': {
    rev1: tar().file('a', 'one').hardlink('a-link', 'a').file('b', 'two').hardlink('b-link', 'b'),
    rev2: tar().file('a', 'one').hardlink('a-link', 'a').file('b', 'changed').hardlink('b-link', 'b'),
    check: (ws, stats) => {
      assert.equal(lstatSync(join(ws.root, 'b-link')).ino, lstatSync(join(ws.root, 'b')).ino);
      assert.equal(lstatSync(join(ws.root, 'a')).nlink, 2);
      assert.equal(stats.filesWritten, 2, 'b and its link');
      assert.equal(stats.unchanged, 2, 'a and its link');
    },
  },
  'moves a hardlink to its new target': {
    rev1: tar().file('a', 'one').file('b', 'two').hardlink('link', 'a'),
    rev2: tar().file('a', 'one').file('b', 'two').hardlink('link', 'b'),
    check: (ws) => assert.equal(lstatSync(join(ws.root, 'link')).ino, lstatSync(join(ws.root, 'b')).ino),
  },
  'makes an implied parent 0755 over a file that was there, and over a symlink planted there': {
    rev1: tar().file('usr', 'a file named usr').file('var', 'v'),
    rev2: tar().file('usr/lib/x', 'x').file('var', 'v').file('opt/y', 'y'),
    between: (ws) => symlinkSync(ws.canary, join(ws.root, 'opt')),
    ignoreMtime: ['usr', 'usr/lib', 'opt'],
    check: (ws) => {
      for (const dir of ['usr', 'usr/lib', 'opt']) {
        const st = lstatSync(join(ws.root, dir));
        assert.ok(st.isDirectory(), dir);
        assert.equal(st.mode & 0o7777, 0o755, dir);
      }
    },
  },
  'removes what revision 2 no longer holds, subtrees included': {
    rev1: tar()
      .file('keep', 'k')
      .file('gone', 'g')
      .dir('old')
      .file('old/a', 'a')
      .dir('old/b')
      .file('old/b/c', 'c'),
    rev2: tar().file('keep', 'k'),
    check: (_ws, stats) => assert.equal(stats.removed, 5),
  },
  'replaces a hardlink of revision 1 by a file of its own': {
    rev1: tar().file('a', 'one').hardlink('h', 'a'),
    rev2: tar().file('a', 'one').file('h', 'own content'),
    check: (ws) => assert.equal(lstatSync(join(ws.root, 'a')).nlink, 1),
  },
};

for (const withManifest of [true, false]) {
  describe(`Function: applyTarball() over an earlier revision, ${withManifest ? 'with' : 'without'} a manifest`, () => {
    for (const [name, c] of Object.entries(cases)) {
      it(name, async (t) => {
        if (!isRoot()) return t.skip('needs root: chown, tar -p');
        await overRevision(withManifest, c);
      });
    }
  });
}

describe('Function: applyTarball() counters', () => {
  it('counts every entry of a fresh apply, each written once', async () => {
    const ws = makeWorkspace();
    try {
      const stats = await applyBuffer(
        tar().dir('d').file('d/f', 'abc').symlink('d/l', 'f').hardlink('d/h', 'd/f').file('top', '').build(),
        ws.root,
      );
      assert.equal(stats.entries, 5);
      assert.equal(stats.filesWritten, 5);
      assert.equal(stats.bytesWritten, 3);
      assert.equal(stats.unchanged, 0);
      assert.equal(stats.removed, 0);
      assert.equal(lstatSync(join(ws.root, 'd/h')).ino, lstatSync(join(ws.root, 'd/f')).ino);
    } finally {
      ws.cleanup();
    }
  });
});
