// What the applier must remember while it applies, so that revision 2 over revision 1 ends as GNU tar's fresh
// extract of revision 2 and an unchanged entry is left untouched: which directories had a child added (their
// mtime is set again at the end), which manifest records a replaced directory made void, which queued
// attributes belong to which entry, and which attributes a chown or chmod dropped in the kernel. Each case was
// found by planting the bug it names (see bench/mutation/equivalent.md).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
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
import { RejectedArchiveError } from '#unpack/errors.ts';
import { dumpXattrs } from '#unpack/xattrs.ts';

const T0 = 1_700_000_000;
const tar = () => new TarBuilder();
/** security.capability v2: cap_net_raw permitted and effective (what ping carries). */
const CAP_NET_RAW = Buffer.from('0100000200200000000000000000000000000000', 'hex');
/** user::rw- user:1000:rwx group::r-- mask::rwx other::---, on a file of mode 0640 (the mask is not the mode's). */
const ACL_TEXT = 'user::rw-,user:1000:rwx,group::r--,mask::rwx,other::---';

const cases: Record<string, RevisionCase> = {
  'a directory listed twice keeps what lies between its two entries and takes the later one’s mode and attributes':
    {
      rev1: tar().file('keep', 'k'),
      rev2: tar()
        .dir('d')
        .file('d/f', 'between the two entries')
        .dir('d', { mode: 0o700, xattrs: { 'user.tag': 'later' } }),
    },
  'a directory listed twice in revision 1 is recorded by its later entry': {
    // The manifest must say d has no user.tag (its later entry), or revision 2's user.tag is taken as there.
    rev1: tar()
      .dir('d', { xattrs: { 'user.tag': 'first' } })
      .dir('d')
      .file('d/f', 'f'),
    rev2: tar()
      .dir('d', { xattrs: { 'user.tag': 'first' } })
      .file('d/f', 'f'),
  },
  'a listed directory whose entry did not change keeps its mtime when a child is added to it': {
    // One parent per kind of child: each addition alone must mark its parent for the final mtime pass. Each
    // parent's children follow it, as tar writes them (GNU tar sets a directory's times once the archive
    // leaves it, so a child listed later would move GNU's mtime, not the archive's).
    rev1: tar().dir('p1').dir('p2').dir('p3').dir('p4').file('p4/t', 't'),
    rev2: tar()
      .dir('p1')
      .dir('p1/new')
      .dir('p2')
      .file('p2/implied/y', 'y')
      .dir('p3')
      .symlink('p3/s', 't')
      .dir('p4')
      .file('p4/t', 't')
      .hardlink('p4/h', 'p4/t'),
    ignoreMtime: ['p2/implied'],
  },
  'an implied parent that revision 1 listed with its own mode, owner and attribute ends as a fresh extract makes it':
    {
      rev1: tar()
        .dir('usr', { mode: 0o700, uid: 5, gid: 5, xattrs: { 'user.x': 'listed' } })
        .file('usr/x', 'x'),
      rev2: tar().file('usr/x', 'x'),
      ignoreMtime: ['usr'],
    },
  'a changed, a dropped and an added attribute and a new nanosecond mtime are each one metadata update': {
    rev1: tar()
      .file('f1', '1', { xattrs: { 'user.a': 'one' } })
      .file('f2', '2', { xattrs: { 'user.a': 'one', 'user.b': 'two' } })
      .file('f3', '3')
      .file('f4', '4'),
    rev2: tar()
      .file('f1', '1', { xattrs: { 'user.a': 'changed' } })
      .file('f2', '2', { xattrs: { 'user.a': 'one' } })
      .file('f3', '3', { pax: [['mtime', `${T0 + 7}.123456789`]] })
      .file('f4', '4', { xattrs: { 'user.new': 'added' } }),
    check: (_ws, stats) => {
      assert.equal(stats.metadataUpdates, 4);
      assert.equal(stats.filesWritten, 0);
    },
  },
  'a new owner sets security.capability again (chown(2) drops it)': {
    rev1: tar().file('ping', 'cap', { mode: 0o755, xattrs: { 'security.capability': CAP_NET_RAW } }),
    rev2: tar().file('ping', 'cap', {
      mode: 0o755,
      uid: 1000,
      gid: 1000,
      xattrs: { 'security.capability': CAP_NET_RAW },
    }),
  },
  'a directory, a symlink and a FIFO whose owner alone changes (the user or the group) take the new owner': {
    rev1: tar()
      .dir('d', { uid: 1000, gid: 1000 })
      .symlink('l', 'd', { uid: 1000, gid: 1000 })
      .fifo('p', { uid: 1000, gid: 1000 }),
    rev2: tar()
      .dir('d', { uid: 2000, gid: 1000 })
      .symlink('l', 'd', { uid: 1000, gid: 2000 })
      .fifo('p', { uid: 2000, gid: 1000 }),
    check: (_ws, stats) => assert.equal(stats.metadataUpdates, 3),
  },
  'a chmod of a file with an access ACL whose mask is not the mode’s sets the ACL again (chmod(2) rewrites the mask)':
    {
      rev1: tar().file('f', 'x', { mode: 0o640, pax: [['SCHILY.acl.access', ACL_TEXT]] }),
      rev2: tar().file('f', 'x', { mode: 0o2640, pax: [['SCHILY.acl.access', ACL_TEXT]] }),
      gnuArgs: ['--acls'],
    },
  'a hardlink to a FIFO of the same archive links the FIFO': {
    rev1: tar().file('keep', 'k'),
    rev2: tar().file('keep', 'k').fifo('run/pipe').hardlink('run/pipe-link', 'run/pipe'),
    ignoreMtime: ['run'],
    check: (ws) =>
      assert.equal(lstatSync(join(ws.root, 'run/pipe-link')).ino, lstatSync(join(ws.root, 'run/pipe')).ino),
  },
  'a hardlink that becomes a symlink to the same name, and a symlink that becomes a hardlink, are re-made': {
    rev1: tar().file('a', 'a').hardlink('h', 'a').symlink('s', 'a'),
    rev2: tar().file('a', 'a').symlink('h', 'a').hardlink('s', 'a'),
    check: (ws) => {
      assert.ok(lstatSync(join(ws.root, 'h')).isSymbolicLink());
      assert.equal(lstatSync(join(ws.root, 's')).ino, lstatSync(join(ws.root, 'a')).ino);
    },
  },
  'a directory replaced by a file voids the records below it, and only those': {
    rev1: tar().dir('x').file('x/a', 'a').dir('d').file('d/f', 'f').dir('d/e').file('d/e/g', 'g'),
    rev2: tar().file('x', 'now a file').dir('d').file('d/f', 'f').dir('d/e').file('d/e/g', 'g'),
    check: (_ws, stats) => {
      assert.equal(stats.filesWritten, 1, 'x');
      assert.equal(stats.unchanged, 4, 'd, d/f, d/e, d/e/g');
    },
  },
  'a file the manifest knows, found a directory, and a symlink it knows, found gone, are replaced': {
    rev1: tar().file('f', 'f').symlink('s', 'f'),
    rev2: tar().symlink('f', 'elsewhere').file('s', 'own content'),
    between: (ws) => {
      rmSync(join(ws.root, 'f'));
      mkdirSync(join(ws.root, 'f/sub'), { recursive: true });
      writeFileSync(join(ws.root, 'f/sub/planted'), 'planted');
      rmSync(join(ws.root, 's'));
    },
  },
};

/** Every path under root with its inode's change time: a chmod, chown, utimes, link or xattr write moves it. */
function ctimes(root: string): Record<string, bigint> {
  const out: Record<string, bigint> = { '': lstatSync(root, { bigint: true }).ctimeNs };
  for (const rel of readdirSync(root, { recursive: true, encoding: 'utf8' }))
    out[rel] = lstatSync(join(root, rel), { bigint: true }).ctimeNs;
  return out;
}

for (const withManifest of [true, false]) {
  const mode = withManifest ? 'with' : 'without';
  describe(`Function: applyTarball() over an earlier revision, ${mode} a manifest: bookkeeping`, () => {
    for (const [name, c] of Object.entries(cases)) {
      it(name, async (t) => {
        if (!isRoot()) return t.skip('needs root: chown, security.* xattrs, tar -p');
        await overRevision(withManifest, c);
      });
    }

    it('applying the same revision again touches no inode: no chown, chmod, utimes, link or attribute write', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown, security.* xattrs');
      // prepare: every kind of entry the unchanged path could redo, all directories listed
      const archive = tar()
        .dir('etc', { xattrs: { 'user.dir': 'd' } })
        .file('etc/plain', 'p')
        .file('etc/tagged', 't', { xattrs: { 'user.a': 'a' } })
        .file('etc/su', 'su', { mode: 0o4755 })
        .file('etc/acl', 'acl', { mode: 0o640, pax: [['SCHILY.acl.access', ACL_TEXT]] })
        .file('etc/ping', 'cap', { mode: 0o755, xattrs: { 'security.capability': CAP_NET_RAW } })
        .file('etc/precise', 'ns', { pax: [['mtime', `${T0}.5`]] })
        .hardlink('etc/plain-link', 'etc/plain')
        .symlink('etc/link', 'plain')
        .fifo('etc/pipe')
        .dir('etc/sub', { mode: 0o750 })
        .file('etc/sub/x', 'x')
        .build();
      const ws = makeWorkspace();
      try {
        const opts = withManifest ? { manifestPath: ws.manifest } : {};
        await applyBuffer(archive, ws.root, opts);
        const before = ctimes(ws.root);
        // ctime has the kernel's clock granularity: let a touch, if there is one, land on a later tick
        await new Promise((resolve) => setTimeout(resolve, 20));
        // act
        const stats = await applyBuffer(archive, ws.root, opts);
        // assess
        assert.deepEqual(ctimes(ws.root), before);
        assert.equal(stats.filesWritten, 0);
        assert.equal(stats.metadataUpdates, 0);
        assert.equal(stats.unchanged, stats.entries);
      } finally {
        ws.cleanup();
      }
    });
  });
}

describe('Function: applyTarball() and the target root', () => {
  for (const withManifest of [true, false]) {
    it(`leaves the root's mode, owner and attributes alone when the archive does not list it (${withManifest ? 'with' : 'without'} a manifest)`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      // prepare: a root that is not what a fresh mkdir gives
      const ws = makeWorkspace();
      try {
        const opts = withManifest ? { manifestPath: ws.manifest } : {};
        chmodSync(ws.root, 0o750);
        chownSync(ws.root, 0, 42);
        execFileSync('setfattr', ['-n', 'user.root', '-v', 'kept', ws.root]);
        // act: twice, so the manifest's pass runs as well
        for (let i = 0; i < 2; i++)
          await applyBuffer(tar().file('top', 't').file('a/b', 'b').build(), ws.root, opts);
        // assess
        const st = lstatSync(ws.root);
        assert.equal(st.mode & 0o7777, 0o750);
        assert.equal(st.gid, 42);
        assert.equal((await dumpXattrs(ws.root)).get('')?.get('user.root')?.toString(), 'kept');
      } finally {
        ws.cleanup();
      }
    });
  }
});

describe('Function: applyTarball() with a symlink target the filesystem cannot hold', () => {
  it('rejects the archive, naming the entry and the reason (ext4 of 1 KiB blocks holds 1,024 bytes)', async (t) => {
    if (!isRoot()) return t.skip('needs root: mount');
    // prepare: a small ext4 of 1 KiB blocks, loop-mounted (umount detaches the loop device)
    const ws = makeWorkspace();
    const image = join(ws.dir, 'small.ext4');
    const mnt = join(ws.dir, 'mnt');
    let mounted = false;
    try {
      execFileSync('truncate', ['-s', '8M', image]);
      execFileSync('mkfs.ext4', ['-q', '-F', '-b', '1024', image]);
      mkdirSync(mnt);
      execFileSync('mount', ['-o', 'loop', image, mnt]);
      mounted = true;
      const archive = tar()
        .file('keep', 'k')
        .symlink('long', 'x', { pax: [['linkpath', 'a/'.repeat(1000)]] })
        .build();
      // act + assess
      await assert.rejects(applyBuffer(archive, mnt), (err: unknown) => {
        assert.ok(err instanceof RejectedArchiveError);
        assert.equal(err.entryPath, 'long');
        assert.equal(err.reason, 'symlink target too long for this filesystem');
        return true;
      });
    } finally {
      if (mounted) execFileSync('umount', [mnt]);
      ws.cleanup();
    }
  });
});
