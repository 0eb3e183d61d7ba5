// Tarballs as real distributions and their tools make them: pre-1970 mtimes, unlisted parents, pzstd
// output, PAX global headers (git archive), SELinux labels and POSIX ACLs (GNU tar --selinux / --acls),
// sizes on bodiless entries. Each archive is extracted by the applier and by GNU tar (see GNU_TAR_EXTRACT),
// and the two trees are compared field by field.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { base256, header, TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  type SnapshotOptions,
  snapshotTree,
  type TreeSnapshot,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { type ApplyOptions, applyTarball, RejectedArchiveError } from '#unpack/index.ts';

const T0 = 1_700_000_000;
const tar = () => new TarBuilder();

interface Parity {
  ours: TreeSnapshot;
  gnu: TreeSnapshot;
  ws: Workspace;
  /** Wall-clock window of the applier's last run, in ns since the epoch. */
  window: [bigint, bigint];
}

/**
 * Applies `archive` (after `prior`, when given, with or without a manifest) with the applier and extracts
 * it with GNU tar into a fresh directory; snapshots both. The workspace is the caller's to clean up.
 */
async function parity(
  archive: Buffer | string,
  o: {
    prior?: Buffer;
    manifest?: boolean;
    snapshot?: SnapshotOptions;
    gnuArgs?: string[];
    apply?: ApplyOptions;
  } = {},
): Promise<Parity> {
  const ws = makeWorkspace();
  let path = archive as string;
  if (Buffer.isBuffer(archive)) {
    path = join(ws.dir, 'archive.tar');
    writeFileSync(path, archive);
  }
  const opts: ApplyOptions = { ...(o.manifest === false ? {} : { manifestPath: ws.manifest }), ...o.apply };
  if (o.prior) await applyBuffer(o.prior, ws.root, opts);
  // A second of slack each side: file times come from the kernel's coarse clock.
  const wallStart = BigInt(Date.now()) * 1_000_000n - 1_000_000_000n;
  await applyTarball(createReadStream(path), ws.root, opts);
  const wallEnd = BigInt(Date.now()) * 1_000_000n + 1_000_000_000n;
  const gnu = join(ws.dir, 'gnu');
  mkdirSync(gnu);
  gnuTarExtract(path, gnu, o.gnuArgs);
  // The target root is listed by none of these archives: both leave it the time of the extraction.
  const snapshot = o.snapshot ?? { ignoreMtime: [''] };
  return {
    ours: await snapshotTree(ws.root, snapshot),
    gnu: await snapshotTree(gnu, snapshot),
    ws,
    window: [wallStart, wallEnd],
  };
}

async function expectParity(archive: Buffer | string, o: Parameters<typeof parity>[1] = {}) {
  const p = await parity(archive, o);
  try {
    assert.deepEqual(p.ours, p.gnu);
    return p.ours;
  } finally {
    p.ws.cleanup();
  }
}

describe('Function: applyTarball() on the tarballs real distributions make', () => {
  describe('mtimes before 1970', () => {
    const archive = () =>
      tar()
        .dir('old', { pax: [['mtime', '-86400']] })
        .file('old/minus-one', 'a\n', { pax: [['mtime', '-1']] })
        .file('old/minus-one-and-a-half', 'b\n', { pax: [['mtime', '-1.5']] })
        .header({ name: 'old/1901', size: 5, rawMtime: base256(-2_146_000_000n) }, Buffer.from('1901\n'))
        .symlink('old/link', 'minus-one', { pax: [['mtime', '-2']] })
        .fifo('old/fifo', { pax: [['mtime', '-3']] })
        .build();

    it('sets them exactly, as GNU tar does (never the time of the apply)', async (t) => {
      if (!isRoot()) return t.skip('needs root: mknod');
      // act
      const ours = await expectParity(archive());
      // assess: the exact values, so a "now" on both sides could not pass either
      assert.equal(ours['old/minus-one']?.mtimeNs, '-1000000000');
      assert.equal(ours['old/minus-one-and-a-half']?.mtimeNs, '-1500000000');
      assert.equal(ours['old/1901']?.mtimeNs, '-2146000000000000000');
      assert.equal(ours['old/link']?.mtimeNs, '-2000000000');
      assert.equal(ours['old/fifo']?.mtimeNs, '-3000000000');
      assert.equal(ours.old?.mtimeNs, '-86400000000000');
    });

    it('sets them on an incremental apply too, and keeps them when nothing changed', async (t) => {
      if (!isRoot()) return t.skip('needs root: mknod');
      // prepare: revision 1 had ordinary times
      const prior = tar()
        .dir('old', { mtime: T0 })
        .file('old/minus-one', 'a\n', { mtime: T0 })
        .file('old/1901', '1901\n', { mtime: T0 })
        .build();
      // act
      const ours = await expectParity(archive(), { prior });
      // assess
      assert.equal(ours['old/minus-one']?.mtimeNs, '-1000000000');
      assert.equal(ours['old/1901']?.mtimeNs, '-2146000000000000000');
      // and the same archive again changes nothing
      const ws = makeWorkspace();
      try {
        await applyBuffer(archive(), ws.root, { manifestPath: ws.manifest });
        const again = await applyBuffer(archive(), ws.root, { manifestPath: ws.manifest });
        assert.equal(again.filesWritten + again.metadataUpdates, 0);
        assert.equal(lstatSync(join(ws.root, 'old/minus-one'), { bigint: true }).mtimeNs, -1_000_000_000n);
      } finally {
        ws.cleanup();
      }
    });
  });

  it('sets a directory mtime (pre-1970 too) after entries that come back into it, as GNU tar --delay-directory-restore', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown');
    // GNU tar without --delay-directory-restore sets a's time when it leaves a/, and a/late then moves it.
    const archive = tar()
      .dir('a', { pax: [['mtime', '-100']] })
      .file('a/first', '1\n', { mtime: T0 })
      .dir('b', { mtime: T0 })
      .file('b/x', 'x\n', { mtime: T0 })
      .file('a/late', 'late\n', { mtime: T0 })
      .build();
    const ours = await expectParity(archive, { gnuArgs: ['--delay-directory-restore'] });
    assert.equal(ours.a?.mtimeNs, '-100000000000');
  });

  describe('an unlisted (implied) parent', () => {
    // tmp/ and tmp/foo/ are implied: only an entry below them is listed.
    const implied = () => tar().file('tmp/foo/bar', 'bar\n', { mtime: T0 }).build();
    const listed = () =>
      tar()
        .dir('tmp', { mode: 0o1777, mtime: T0 })
        .dir('tmp/foo', { mode: 0o700, uid: 1000, gid: 1000, mtime: T0, xattrs: { 'user.k': 'v' } })
        .file('tmp/foo/old', 'old\n', { mtime: T0 })
        .build();
    const snapshot = { ignoreMtime: ['', 'tmp', 'tmp/foo'] };

    for (const [name, o] of [
      ['on a fresh tree', {}],
      ['after a revision that listed it, with the manifest', { prior: listed() }],
      ['after a revision that listed it, without a manifest', { prior: listed(), manifest: false }],
    ] as const) {
      it(`ends as a fresh GNU tar extract makes it (owner, mode, xattrs, mtime) ${name}`, async (t) => {
        if (!isRoot()) return t.skip('needs root: chown');
        // act
        const p = await parity(implied(), { ...o, snapshot });
        try {
          // assess
          assert.deepEqual(p.ours, p.gnu);
          assert.equal(p.ours['tmp/foo']?.uid, 0);
          assert.equal(p.ours['tmp/foo']?.mode, '755');
          assert.equal(p.ours.tmp?.mode, '755');
          // mtime: the time of the apply, as for a directory GNU tar creates, not the listed T0
          for (const dir of ['tmp', 'tmp/foo']) {
            const ns = lstatSync(join(p.ws.root, dir), { bigint: true }).mtimeNs;
            assert.ok(ns >= p.window[0] && ns <= p.window[1], `${dir} mtime ${ns} outside the apply`);
          }
        } finally {
          p.ws.cleanup();
        }
      });
    }
  });

  describe('pzstd output (a zstd skippable frame first)', () => {
    it('is recognised as zstd and extracted as GNU tar --zstd does', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      // prepare
      const ws = makeWorkspace();
      try {
        const plain = join(ws.dir, 'plain.tar');
        writeFileSync(
          plain,
          tar()
            .dir('etc', { mtime: T0 })
            .file('etc/os-release', 'ID=stemcell\n'.repeat(100), { mtime: T0 })
            .build(),
        );
        const zst = join(ws.dir, 'p.tar.zst');
        execFileSync('pzstd', ['-q', '-f', '-p', '2', plain, '-o', zst]);
        const magic = readFileSync(zst).readUInt32LE(0);
        assert.equal(magic & 0xfffffff0, 0x184d2a50, 'pzstd wrote no skippable frame first');
        // act + assess (GNU tar does not recognise it by itself: --zstd says what it is)
        await expectParity(zst, { gnuArgs: ['--zstd'] });
      } finally {
        ws.cleanup();
      }
    });
  });

  describe('PAX global headers', () => {
    it('accepts git archive output (a global comment record)', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      // prepare
      const ws = makeWorkspace();
      try {
        const repo = join(ws.dir, 'repo');
        mkdirSync(join(repo, 'etc'), { recursive: true });
        writeFileSync(join(repo, 'etc/motd'), 'from git\n');
        writeFileSync(join(repo, 'README'), 'readme\n');
        const env = { ...process.env, HOME: ws.dir, GIT_CONFIG_NOSYSTEM: '1' };
        const git = (...a: string[]) =>
          execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...a], {
            cwd: repo,
            env,
          });
        git('init', '-q');
        git('add', '.');
        git('commit', '-q', '-m', 'one');
        const out = join(ws.dir, 'git.tar');
        writeFileSync(out, git('archive', '--format=tar', 'HEAD'));
        assert.equal(String.fromCharCode(readFileSync(out)[156]!), 'g', 'git archive wrote no global header');
        // act + assess
        const ours = await expectParity(out);
        assert.equal(readFileSync(join(repo, 'etc/motd'), 'utf8'), 'from git\n');
        assert.ok(ours['etc/motd']);
      } finally {
        ws.cleanup();
      }
    });

    it('applies a global mtime to every later entry that sets none, as GNU tar does', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      // prepare
      const archive = tar()
        .paxHeader(
          [
            ['comment', 'built by a tool'],
            ['mtime', '1234567890.5'],
            ['atime', '1'],
            ['ctime', '2'],
          ],
          'g',
          'pax_global_header',
        )
        .dir('d', { mtime: T0 })
        .file('d/global', 'g\n', { mtime: T0 })
        .file('d/own', 'o\n', { mtime: T0, pax: [['mtime', '1600000000']] })
        .build();
      // act
      const ours = await expectParity(archive);
      // assess
      assert.equal(ours['d/global']?.mtimeNs, '1234567890500000000');
      assert.equal(ours['d/own']?.mtimeNs, '1600000000000000000');
      assert.equal(ours.d?.mtimeNs, '1234567890500000000');
    });

    for (const [key, value] of [
      ['path', 'elsewhere'],
      ['linkpath', '/etc/shadow'],
      ['size', '1024'],
      ['uid', '0'],
    ]) {
      it(`still refuses a global ${key} record, naming where it is`, async () => {
        // prepare
        const ws = makeWorkspace();
        try {
          const archive = tar()
            .file('first', 'x')
            .paxHeader([[key!, value!]], 'g')
            .file('y', 'y')
            .build();
          // act + assess
          await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
            assert.ok(err instanceof RejectedArchiveError);
            assert.match(err.reason, /global/);
            assert.equal(err.entryPath, '<entry at byte 1024>');
            return true;
          });
        } finally {
          ws.cleanup();
        }
      });
    }
  });

  describe('SELinux labels and POSIX ACLs', () => {
    it('applies RHT.security.selinux as GNU tar --selinux does', async (t) => {
      if (!isRoot()) return t.skip('needs root: security.* xattrs');
      // prepare
      const label = (l: string) => ({ pax: [['RHT.security.selinux', l]] as Array<[string, string]> });
      const archive = tar()
        .dir('etc', { mtime: T0, ...label('system_u:object_r:etc_t:s0') })
        .file('etc/passwd', 'root:x:0:0::/root:/bin/sh\n', {
          mtime: T0,
          ...label('system_u:object_r:passwd_file_t:s0'),
        })
        .symlink('etc/mtab', '../proc/self/mounts', { mtime: T0, ...label('system_u:object_r:etc_t:s0') })
        .build();
      // act
      const ours = await expectParity(archive, { gnuArgs: ['--selinux'] });
      // assess
      assert.equal(
        Buffer.from(ours['etc/passwd']?.xattrs?.['security.selinux'] ?? '', 'base64').toString('latin1'),
        'system_u:object_r:passwd_file_t:s0\0',
      );
    });

    const acls = (mode = 0o640) =>
      tar()
        .dir('srv', {
          mtime: T0,
          pax: [['SCHILY.acl.default', 'user::rwx\nuser:daemon:r-x\ngroup::r-x\nmask::r-x\nother::r-x\n']],
        })
        .file('srv/shared', 'x\n', {
          mode,
          mtime: T0,
          pax: [
            ['SCHILY.acl.access', 'user::rw-,user:1000:rwx,group::r--,group:33:r--,mask::rwx,other::---'],
          ],
        })
        .build();

    it('applies SCHILY.acl.access and SCHILY.acl.default as GNU tar --acls does', async (t) => {
      if (!isRoot()) return t.skip('needs root: ACLs on foreign ids');
      // act
      const ours = await expectParity(acls(), { gnuArgs: ['--acls'] });
      // assess: the mask widened the group bits, as the kernel does for GNU tar
      assert.equal(ours['srv/shared']?.mode, '670');
      assert.ok(ours['srv/shared']?.xattrs?.['system.posix_acl_access']);
      assert.ok(ours.srv?.xattrs?.['system.posix_acl_default']);
    });

    it('takes the ACLs of an archive GNU tar --acls wrote, and removes them when a revision drops them', async (t) => {
      if (!isRoot()) return t.skip('needs root: ACLs on foreign ids');
      // prepare: GNU tar's own archive of a tree with ACLs
      const ws = makeWorkspace();
      try {
        const src = join(ws.dir, 'src');
        mkdirSync(src);
        const made = join(src, 'x');
        mkdirSync(made);
        execFileSync('tar', [...['--acls', '--numeric-owner', '-xpf'], '-', '-C', made], { input: acls() });
        const gnuMade = join(ws.dir, 'gnu-made.tar');
        execFileSync('tar', ['--acls', '--numeric-owner', '--format=pax', '-cf', gnuMade, '-C', made, '.']);
        assert.match(readFileSync(gnuMade, 'latin1'), /SCHILY\.acl\.access=/);
        // act + assess
        await expectParity(gnuMade, { gnuArgs: ['--acls'] });
        // a revision without them, applied over it with the manifest and without
        const without = tar()
          .dir('srv', { mtime: T0 })
          .file('srv/shared', 'x\n', { mode: 0o640, mtime: T0 })
          .build();
        for (const manifest of [true, false]) {
          const ours = await expectParity(without, { prior: acls(), manifest, gnuArgs: ['--acls'] });
          assert.equal(ours['srv/shared']?.xattrs, undefined);
          assert.equal(ours['srv/shared']?.mode, '640');
        }
      } finally {
        ws.cleanup();
      }
    });

    it('keeps the ACL when only the mode changes (chmod rewrites its mask)', async (t) => {
      if (!isRoot()) return t.skip('needs root: ACLs on foreign ids');
      const rev2 = acls(0o600);
      for (const manifest of [true, false]) {
        await expectParity(rev2, { prior: acls(), manifest, gnuArgs: ['--acls'] });
      }
    });

    it('applies an ACL carried as SCHILY.xattr.system.posix_acl_access as GNU tar --xattrs does (the mode rewrites its mask)', async (t) => {
      if (!isRoot()) return t.skip('needs root: ACLs on foreign ids');
      // user::rw- user:1000:rwx group::r-- mask::rwx other::---, on a file of mode 0640
      const acl = Buffer.from(
        '0200000001000600ffffffff02000700e803000004000400ffffffff10000700ffffffff20000000ffffffff',
        'hex',
      );
      const archive = tar()
        .file('f', 'x\n', { mode: 0o640, mtime: T0, xattrs: { 'system.posix_acl_access': acl } })
        .build();
      const ours = await expectParity(archive);
      assert.equal(ours.f?.mode, '640');
      assert.ok(ours.f?.xattrs?.['system.posix_acl_access']);
    });

    it('refuses an ACL it cannot apply, with the reason', async () => {
      for (const [acl, reason] of [
        [
          'user::rw-,user:no-such-user-here:r--,group::r--,mask::r--,other::---',
          /no user "no-such-user-here"/,
        ],
        ['user::rw-,user:1000:r--,group::r--,other::---', /needs a mask/],
        ['user::rw-,group::r--', /needs user::, group:: and other::/],
        ['user::rwz,group::r--,other::---', /malformed ACL permissions/],
      ] as const) {
        const ws = makeWorkspace();
        try {
          const archive = tar()
            .file('f', 'x', { pax: [['SCHILY.acl.access', acl]] })
            .build();
          await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
            assert.ok(err instanceof RejectedArchiveError);
            assert.equal(err.entryPath, 'f');
            assert.match(err.reason, reason);
            return true;
          });
        } finally {
          ws.cleanup();
        }
      }
    });
  });

  describe('size fields on bodiless entries (old ustar writers)', () => {
    const cases: Array<[string, Buffer]> = [
      ['directory', header({ name: 'x', typeflag: '5', size: 1024, mtime: T0 })],
      [
        'old-style directory (regular type, trailing slash)',
        header({ name: 'x/', typeflag: '0', size: 1024, mtime: T0 }),
      ],
      ['hardlink', header({ name: 'x', typeflag: '1', linkname: 'a', size: 1024, mtime: T0 })],
      ['symlink', header({ name: 'x', typeflag: '2', linkname: 'a', size: 1024, mtime: T0 })],
      [
        'character device',
        header({ name: 'x', typeflag: '3', devmajor: 1, devminor: 3, size: 1024, mtime: T0 }),
      ],
      ['block device', header({ name: 'x', typeflag: '4', devmajor: 7, devminor: 0, size: 1024, mtime: T0 })],
      ['FIFO', header({ name: 'x', typeflag: '6', size: 1024, mtime: T0 })],
    ];
    for (const [name, block] of cases) {
      it(`ignores the size of a ${name}, as GNU tar does (no body follows)`, async (t) => {
        if (!isRoot()) return t.skip('needs root: mknod');
        const archive = tar()
          .file('a', 'hello', { mtime: T0 })
          .raw(block)
          .file('after', 'after', { mtime: T0 })
          .build();
        const ours = await expectParity(archive);
        assert.equal(ours.after?.type, 'file');
      });
    }
    it('ignores a PAX size on a directory as well', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const archive = tar()
        .paxHeader([['size', '1024']])
        .raw(header({ name: 'x/', typeflag: '5', mtime: T0 }))
        .file('after', 'after', { mtime: T0 })
        .build();
      await expectParity(archive);
    });
  });

  describe('rejections name the entry at fault', () => {
    const expectNamed = async (archive: Buffer, entry: string, reason: RegExp) => {
      const ws = makeWorkspace();
      try {
        await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
          assert.ok(err instanceof RejectedArchiveError, String(err));
          assert.equal(err.entryPath, entry);
          assert.match(err.reason, reason);
          return true;
        });
      } finally {
        ws.cleanup();
      }
    };
    // 'good' takes a header and one body block: the next header starts at byte 1024.
    const good = () => tar().file('good', 'fine\n');

    it('names a bad size field by its offset, not by the entry before it', () => {
      // the size is read before the name: a fault there belongs to the entry whose header starts at 1024
      const block = header({ name: 'sized' });
      block.write('9', 124, 'latin1');
      block.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of block) sum += b;
      block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return expectNamed(good().raw(block).build(), '<entry at byte 1024>', /invalid size/);
    });
    it('names a bad checksum by its offset', () =>
      expectNamed(
        good().header({ name: 'bad', checksumDelta: 1 }).build(),
        '<entry at byte 1024>',
        /checksum/,
      ));
    it('names a malformed PAX header by the offset of the entry it belongs to', () =>
      expectNamed(
        good()
          .header({ name: 'p', typeflag: 'x', size: 12 }, Buffer.from('99 path=abc\n'))
          .file('x', 'x')
          .build(),
        '<entry at byte 1024>',
        /malformed PAX/,
      ));
    it('names a bad field by the entry once its name is known', () => {
      const block = header({ name: 'named' });
      block.write('9', 100, 'latin1');
      // recompute the checksum over the changed mode field
      block.fill(0x20, 148, 156);
      let sum = 0;
      for (const b of block) sum += b;
      block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return expectNamed(good().raw(block).build(), 'named', /invalid mode/);
    });
  });
});
