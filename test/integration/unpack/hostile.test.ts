// Hostile archives: each is rejected whole (`rejected: <entry>: <reason>`) or contained inside the target,
// and the canary directories beside the target (one of them a sibling-prefix `root-evil`) never change.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { base256, header, TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  canaries,
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  snapshotTree,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { RejectedArchiveError } from '#unpack/index.ts';

type Build = (ws: Workspace) => Buffer;

async function expectRejected(build: Build, reason: RegExp, entry?: string, prior?: Build): Promise<void> {
  // prepare
  const ws = makeWorkspace();
  try {
    if (prior) await applyBuffer(prior(ws), ws.root, { manifestPath: ws.manifest });
    const before = await canaries(ws);
    // act
    const run = applyBuffer(build(ws), ws.root, { manifestPath: ws.manifest });
    // assess
    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof RejectedArchiveError, `expected a rejection, got ${String(err)}`);
      assert.match(err.reason, reason);
      assert.equal(err.message, `rejected: ${err.entryPath}: ${err.reason}`);
      if (entry !== undefined) assert.equal(err.entryPath, entry);
      return true;
    });
    assert.deepEqual(await canaries(ws), before);
    assert.equal(JSON.parse(readFileSync(ws.manifest, 'utf8').split('\n')[0]!).state, 'in-progress');
  } finally {
    ws.cleanup();
  }
}

async function expectContained(
  build: Build,
  check: (ws: Workspace) => void,
  prior?: Build,
  withManifest = true,
) {
  // prepare
  const ws = makeWorkspace();
  try {
    const opts = withManifest ? { manifestPath: ws.manifest } : {};
    if (prior) await applyBuffer(prior(ws), ws.root, opts);
    const before = await canaries(ws);
    // act
    await applyBuffer(build(ws), ws.root, opts);
    // assess
    assert.deepEqual(await canaries(ws), before);
    check(ws);
  } finally {
    ws.cleanup();
  }
}

const tar = () => new TarBuilder();

describe('Function: applyTarball() with hostile archives', () => {
  describe('traversal', () => {
    it('rejects ../x', () =>
      expectRejected(() => tar().file('../x', 'pwned').build(), /'\.\.' component/, '../x'));
    it('rejects a/../../x', () =>
      expectRejected(() => tar().file('a/../../x', 'pwned').build(), /'\.\.' component/, 'a/../../x'));
    it('rejects ../root-evil/secret (sibling prefix)', () =>
      expectRejected(() => tar().file('../root-evil/secret', 'pwned').build(), /'\.\.' component/));
    it('contains /abs and ////abs inside the root', () =>
      expectContained(
        (ws) =>
          tar().file('/abs', 'one').file('////abs2', 'two').file(`${ws.canary}/secret`, 'three').build(),
        (ws) => {
          assert.equal(readFileSync(join(ws.root, 'abs'), 'utf8'), 'one');
          assert.equal(readFileSync(join(ws.root, 'abs2'), 'utf8'), 'two');
          assert.equal(readFileSync(join(ws.root, ws.canary, 'secret'), 'utf8'), 'three');
        },
      ));
  });

  describe('writing through symlinks', () => {
    it('rejects a directory, then a symlink of the same name, then a file through it', () =>
      expectRejected(
        (ws) => tar().dir('a').symlink('a', ws.canary).file('a/secret', 'pwned').build(),
        /parent "a" is a symlink/,
        'a/secret',
      ));
    it('rejects the same trick with a relative link to the sibling-prefix directory', () =>
      expectRejected(
        () => tar().dir('s').symlink('s', '../root-evil').file('s/secret', 'pwned').build(),
        /parent "s" is a symlink/,
      ));
    it('rejects the case variant (dir a, symlink A, file A/x)', () =>
      expectRejected(
        (ws) => tar().dir('a').symlink('A', ws.canary).file('A/secret', 'x').build(),
        /parent "A"/,
      ));
    it('rejects the NFC / NFD variant', () =>
      expectRejected(
        (ws) =>
          tar().dir('caf\u00e9').symlink('cafe\u0301', ws.canary).file('cafe\u0301/secret', 'x').build(),
        /is a symlink/,
      ));
    it('contains the backslash variant as a plain file name', () =>
      expectContained(
        (ws) => tar().symlink('b', ws.canary).file('b\\secret', 'pwned').build(),
        (ws) => assert.equal(readFileSync(join(ws.root, 'b\\secret'), 'utf8'), 'pwned'),
      ));
    it('rejects a file whose parent is a regular file of the archive', () =>
      expectRejected(() => tar().file('f', 'x').file('f/y', 'y').build(), /parent "f" is a file/));
  });

  describe('hardlinks', () => {
    it('rejects a hardlink to ../..', () =>
      expectRejected(() => tar().hardlink('h', '../..').build(), /hardlink target contains a '\.\.'/));
    it('rejects a hardlink to an absolute path outside', () =>
      expectRejected((ws) => tar().hardlink('h', `${ws.canary}/secret`).build(), /not an earlier entry/));
    it('rejects a hardlink through a symlink chain', () =>
      expectRejected(
        (ws) => tar().symlink('s1', 's2').symlink('s2', ws.canary).hardlink('h', 's1/secret').build(),
        /not an earlier entry/,
      ));
    // The entry replaces the earlier `f` before its target is looked up, so the target is gone by then.
    it('rejects a hardlink to itself, which would unlink the only copy of its content', () =>
      expectRejected(
        () => tar().file('f', 'x').hardlink('f', 'f').build(),
        /"f" is not an earlier entry/,
        'f',
      ));
    it('rejects a hardlink to a directory', () =>
      expectRejected(() => tar().dir('d').hardlink('h', 'd').build(), /hardlink to directory/));
    it('contains a hardlink to a symlink (a second name for the link itself), then a file over it', () =>
      expectContained(
        (ws) => tar().symlink('s', `${ws.canary}/secret`).hardlink('h', 's').file('h', 'pwned').build(),
        (ws) => {
          assert.equal(readlinkSync(join(ws.root, 's')), `${ws.canary}/secret`);
          assert.equal(readFileSync(join(ws.root, 'h'), 'utf8'), 'pwned');
        },
      ));
    it('matches GNU tar for a hardlink to a symlink', async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      // prepare
      const ws = makeWorkspace();
      try {
        const archive = tar().symlink('s', `${ws.canary}/secret`).hardlink('h', 's').build();
        const archivePath = join(ws.dir, 'a.tar');
        writeFileSync(archivePath, archive);
        const gnu = join(ws.dir, 'gnu');
        mkdirSync(gnu);
        // act
        await applyBuffer(archive, ws.root);
        gnuTarExtract(archivePath, gnu);
        // assess
        const opts = { ignoreMtime: [''] };
        assert.deepEqual(await snapshotTree(ws.root, opts), await snapshotTree(gnu, opts));
        assert.ok(lstatSync(join(ws.root, 'h')).isSymbolicLink());
      } finally {
        ws.cleanup();
      }
    });
  });

  describe('symlink chains', () => {
    it('rejects writing through a chain deeper than 40 links', () =>
      expectRejected((ws) => {
        const b = tar();
        for (let i = 0; i < 50; i++) b.symlink(`l${i}`, i === 49 ? ws.canary : `l${i + 1}`);
        return b.file('l0/secret', 'pwned').build();
      }, /parent "l0" is a symlink/));
    it('rejects a symlink target longer than PATH_MAX', () =>
      expectRejected(
        () =>
          tar()
            .symlink('long', 'x', { pax: [['linkpath', 'a/'.repeat(2500)]] })
            .build(),
        /longer than PATH_MAX/,
      ));
    it('contains a chain whose total length exceeds PATH_MAX (stored, never followed)', () =>
      expectContained(
        () => {
          const b = tar();
          for (let i = 0; i < 30; i++)
            b.symlink(`c${i}`, 'x', { pax: [['linkpath', `${'./'.repeat(95)}c${i + 1}`]] });
          return b.build();
        },
        (ws) => assert.equal(readlinkSync(join(ws.root, 'c0')), `${'./'.repeat(95)}c1`),
      ));
  });

  describe('links planted by a previous revision', () => {
    for (const withManifest of [true, false]) {
      const how = withManifest ? 'with a manifest' : 'without a manifest';
      it(`replaces a planted symlink used as a parent in the next revision (${how})`, () =>
        expectContained(
          () => tar().file('evil/secret', 'pwned').build(),
          (ws) => {
            assert.ok(lstatSync(join(ws.root, 'evil')).isDirectory());
            assert.equal(readFileSync(join(ws.root, 'evil/secret'), 'utf8'), 'pwned');
          },
          (ws) => tar().symlink('evil', ws.canary).build(),
          withManifest,
        ));
      it(`replaces a planted symlink by a file of the same name, never writing through it (${how})`, () =>
        expectContained(
          () => tar().file('evil', 'pwned').build(),
          (ws) => assert.ok(lstatSync(join(ws.root, 'evil')).isFile()),
          (ws) => tar().symlink('evil', `${ws.canary}/secret`).build(),
          withManifest,
        ));
      it(`replaces a planted hardlink before writing new content (${how})`, () =>
        expectContained(
          () => tar().file('t', 'target').file('h', 'new content').build(),
          (ws) => {
            assert.equal(readFileSync(join(ws.root, 't'), 'utf8'), 'target');
            assert.equal(readFileSync(join(ws.root, 'h'), 'utf8'), 'new content');
          },
          () => tar().file('t', 'target').hardlink('h', 't').build(),
          withManifest,
        ));
    }
    it('replaces a symlink that appeared in the tree behind the manifest', async () => {
      // prepare
      const ws = makeWorkspace();
      try {
        await applyBuffer(tar().dir('etc').file('etc/x', 'one').build(), ws.root, {
          manifestPath: ws.manifest,
        });
        execFileSync('rm', ['-rf', join(ws.root, 'etc')]);
        execFileSync('ln', ['-s', ws.canary, join(ws.root, 'etc')]);
        const before = await canaries(ws);
        // act
        await applyBuffer(tar().file('etc/secret', 'pwned').build(), ws.root, { manifestPath: ws.manifest });
        // assess
        assert.deepEqual(await canaries(ws), before);
        assert.ok(lstatSync(join(ws.root, 'etc')).isDirectory());
      } finally {
        ws.cleanup();
      }
    });
    it('replaces a symlink that appeared behind the manifest where the archive lists the directory', async () => {
      // prepare
      const ws = makeWorkspace();
      try {
        await applyBuffer(tar().dir('etc').file('etc/x', 'one').build(), ws.root, {
          manifestPath: ws.manifest,
        });
        execFileSync('rm', ['-rf', join(ws.root, 'etc')]);
        execFileSync('ln', ['-s', ws.canary, join(ws.root, 'etc')]);
        const before = await canaries(ws);
        // act
        await applyBuffer(tar().dir('etc').file('etc/secret', 'pwned').build(), ws.root, {
          manifestPath: ws.manifest,
        });
        // assess
        assert.deepEqual(await canaries(ws), before);
        assert.ok(lstatSync(join(ws.root, 'etc')).isDirectory());
      } finally {
        ws.cleanup();
      }
    });
  });

  describe('names', () => {
    it('rejects a file named .', () =>
      expectRejected(() => tar().file('.', 'x').build(), /naming the target root/));
    it('rejects an empty name', () => expectRejected(() => tar().file('', 'x').build(), /empty path/));
    it('applies a directory named . to the root itself, never replacing the root', async () => {
      const ws = makeWorkspace();
      try {
        // prepare
        const ino = lstatSync(ws.root).ino;
        // act
        await applyBuffer(
          tar().dir('.', { mode: 0o750 }).file('f', 'x').dir('./', { mode: 0o751 }).build(),
          ws.root,
        );
        // assess
        assert.equal(lstatSync(ws.root).ino, ino);
        assert.equal(lstatSync(ws.root).mode & 0o7777, 0o751);
      } finally {
        ws.cleanup();
      }
    });
    it('rejects more than 1024 path components', () =>
      expectRejected(
        () =>
          tar()
            .file('x', 'deep', { pax: [['path', `${'a/'.repeat(1025)}x`]] })
            .build(),
        /components/,
      ));
    it('rejects a path longer than the limit', () =>
      expectRejected(
        () =>
          tar()
            .file('x', 'long', { pax: [['path', 'n'.repeat(5000)]] })
            .build(),
        /longer than/,
      ));
  });

  describe('extended headers', () => {
    it('rejects a PAX size before a GNU long-name header', () =>
      expectRejected(
        () =>
          tar()
            .paxHeader([['size', '1024']])
            .gnuLongName('innocent')
            .file('x', 'body')
            .build(),
        /PAX header mixed with GNU long-name/,
      ));
    it('rejects a PAX path with a NUL byte', () =>
      expectRejected(
        () =>
          tar()
            .file('x', 'x', { pax: [['path', Buffer.from('ok\0../../evil')]] })
            .build(),
        /NUL/,
      ));
    it('rejects a PAX path with a newline', () =>
      expectRejected(
        () =>
          tar()
            .file('x', 'x', { pax: [['path', 'a\nb']] })
            .build(),
        /newline/,
      ));
    it('rejects a GNU long name with an embedded NUL', () =>
      expectRejected(() => tar().gnuLongName(Buffer.from('ok\0../evil')).file('x', 'x').build(), /NUL/));
    it('rejects a PAX global header', () =>
      expectRejected(
        () =>
          tar()
            .paxHeader([['path', 'x']], 'g')
            .file('y', 'y')
            .build(),
        /global/,
      ));
    it('rejects an extended header larger than the limit', () =>
      expectRejected(
        () =>
          tar()
            .file('x', 'x', { pax: [['comment', 'c'.repeat(2 * 1024 * 1024)]] })
            .build(),
        /exceeds the limit/,
      ));
    it('rejects two PAX headers for one entry', () =>
      expectRejected(
        () =>
          tar()
            .paxHeader([['path', 'a']])
            .paxHeader([['path', 'b']])
            .file('x', 'x')
            .build(),
        /two PAX/,
      ));
    it('rejects a malformed PAX record', () =>
      expectRejected(
        () =>
          tar()
            .header({ name: 'p', typeflag: 'x', size: 12 }, Buffer.from('99 path=abc\n'))
            .file('x', 'x')
            .build(),
        /malformed PAX/,
      ));
  });

  describe('sizes, checksums and truncation', () => {
    it('rejects a negative base-256 size', () =>
      expectRejected(
        () =>
          tar()
            .header({ name: 'neg', rawSize: base256(-1n) })
            .build(),
        /negative size/,
      ));
    it('rejects a huge base-256 size', () =>
      expectRejected(
        () =>
          tar()
            .header({ name: 'huge', rawSize: base256(1n << 60n) })
            .build(),
        /out of range|exceeds/,
      ));
    it('rejects a size above the total limit before reading it', () =>
      expectRejected(
        () =>
          tar()
            .header({ name: 'big', rawSize: base256(1n << 40n) })
            .build(),
        /exceeds the limit/,
      ));
    it('accepts a small base-256 size', () =>
      expectContained(
        () =>
          tar()
            .header({ name: 'b256', rawSize: base256(5n) }, Buffer.from('hello'))
            .build(),
        (ws) => assert.equal(readFileSync(join(ws.root, 'b256'), 'utf8'), 'hello'),
      ));
    it('rejects a garbage size field', () =>
      expectRejected(
        () =>
          tar()
            .header({ name: 'g', rawSize: Buffer.from('12x4\0\0\0\0\0\0\0\0') })
            .build(),
        /invalid size/,
      ));
    it('rejects a bad checksum', () =>
      expectRejected(() => tar().header({ name: 'c', checksumDelta: 1 }).build(), /bad header checksum/));
    it('rejects truncation in the middle of a header', () =>
      expectRejected(
        () =>
          tar()
            .file('a', 'x')
            .build()
            .subarray(0, 1024 + 300),
        /middle of a header/,
      ));
    it('rejects truncation in the middle of a body', () =>
      expectRejected(
        () => tar().file('a', 'x'.repeat(2000)).build().subarray(0, 1024),
        /middle of an entry body/,
      ));
    it('rejects a missing end-of-archive', () =>
      expectRejected(() => tar().file('a', 'x').build(0), /missing end-of-archive/));
    it('rejects a lone zero block at the end', () =>
      expectRejected(() => tar().file('a', 'x').build(1), /missing end-of-archive/));
    it('rejects an unknown entry type', () =>
      expectRejected(() => tar().header({ name: 'v', typeflag: 'V' }).build(), /unsupported entry type/));
    it('reads what follows a symlink with a size as the next header, as GNU tar does (no body skipped)', () =>
      expectRejected(
        () =>
          tar().header({ name: 's', typeflag: '2', linkname: 't', size: 10 }, Buffer.alloc(10, 0x41)).build(),
        /checksum/,
        '<entry at byte 512>',
      ));
    it('rejects input that is not a tar archive', () =>
      expectRejected(() => Buffer.from('just some text, not a tar archive\n'.repeat(40)), /checksum/));
    it('rejects a header that is valid but for a garbage-filled block', () => {
      const block = header({ name: 'x' });
      block.fill(0x41, 100, 108);
      return expectRejected(
        () => Buffer.concat([block, Buffer.alloc(1024)]),
        /bad header checksum|invalid mode/,
      );
    });
  });

  describe('duplicates: the last entry wins, whatever the two types', () => {
    type Kind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'char';
    const kinds: Kind[] = ['file', 'dir', 'symlink', 'hardlink', 'fifo', 'char'];
    const add = (b: TarBuilder, kind: Kind, n: number) => {
      switch (kind) {
        case 'file':
          return b.file('p', `content ${n}`, { mode: 0o640 });
        case 'dir':
          return b.dir('p', { mode: 0o711 });
        case 'symlink':
          return b.symlink('p', `../target-${n}`);
        case 'hardlink':
          return b.hardlink('p', 't');
        case 'fifo':
          return b.fifo('p', { mode: 0o620 });
        case 'char':
          return b.device('p', 'char', 1, n);
      }
    };
    for (const first of kinds) {
      for (const second of kinds) {
        // GNU tar defers symlinks it deems unsafe and re-creates them at the very end, so after a symlink
        // its result is the symlink (or an error); there we check our own rule: the last entry wins.
        const gnuAgrees = first !== 'symlink';
        it(`${first} then ${second}: the ${second} remains${gnuAgrees ? ', as with GNU tar' : ''}`, async (t) => {
          if (!isRoot()) return t.skip('needs root: mknod');
          // prepare
          const ws = makeWorkspace();
          try {
            const b = tar().file('t', 'hardlink target');
            add(b, first, 1);
            add(b, second, 2);
            const archive = b.build();
            const archivePath = join(ws.dir, 'dup.tar');
            writeFileSync(archivePath, archive);
            const gnu = join(ws.dir, 'gnu');
            mkdirSync(gnu);
            // act
            await applyBuffer(archive, ws.root);
            if (gnuAgrees) gnuTarExtract(archivePath, gnu);
            // assess
            const ours = await snapshotTree(ws.root, { ignoreMtime: [''] });
            if (gnuAgrees) assert.deepEqual(ours, await snapshotTree(gnu, { ignoreMtime: [''] }));
            const expectedType = second === 'hardlink' ? 'file' : second;
            assert.equal(ours.p?.type, expectedType);
            if (second === 'file') assert.equal(readFileSync(join(ws.root, 'p'), 'utf8'), 'content 2');
            if (second === 'hardlink') assert.equal(ours.p?.hardlinkGroup, 'p');
            assert.equal(readFileSync(join(ws.root, 't'), 'utf8'), 'hardlink target');
          } finally {
            ws.cleanup();
          }
        });
      }
    }
    it('a directory with children, then a file of the same name: the subtree goes, the file remains', () =>
      expectContained(
        () => tar().dir('p').file('p/child', 'c').file('p', 'now a file').file('q', 'after').build(),
        (ws) => {
          assert.equal(readFileSync(join(ws.root, 'p'), 'utf8'), 'now a file');
          assert.ok(!existsSync(join(ws.root, 'p/child')));
        },
      ));
    // The final walk reads only directories that were there before the apply: one this apply created,
    // replaced and created again must hold nothing of its first life.
    for (const withPrior of [false, true]) {
      it(`a directory with children, a symlink, then the directory again: only the later children remain${withPrior ? ' (over an earlier revision)' : ''}`, () =>
        expectContained(
          () =>
            tar()
              .dir('p')
              .file('p/old', 'first life')
              .dir('p/sub')
              .file('p/sub/deep', 'first life')
              .symlink('p', '../target')
              .dir('p')
              .file('p/new', 'second life')
              .build(),
          (ws) => {
            assert.deepEqual(readdirSync(join(ws.root, 'p')), ['new']);
            assert.equal(readFileSync(join(ws.root, 'p/new'), 'utf8'), 'second life');
          },
          withPrior ? () => tar().file('p/old', 'from revision 1').file('q', 'q').build() : undefined,
        ));
    }
    it('a file, a hardlink to it, then the file again: the link keeps the first content', () =>
      expectContained(
        () => tar().file('f', 'first').hardlink('h', 'f').file('f', 'second').build(),
        (ws) => {
          assert.equal(readFileSync(join(ws.root, 'h'), 'utf8'), 'first');
          assert.equal(readFileSync(join(ws.root, 'f'), 'utf8'), 'second');
        },
      ));
  });

  describe('device nodes and privileged bits', () => {
    it('preserves devices, setuid files and security.capability inside the root', async (t) => {
      if (!isRoot()) return t.skip('needs root: mknod, chown, security.* xattrs');
      await expectContained(
        () =>
          tar()
            .device('dev/sda', 'block', 8, 0, { mode: 0o660, gid: 6 })
            .device('dev/mem', 'char', 1, 1, { mode: 0o640 })
            .file('bin/su', 'suid', { mode: 0o4755 })
            .file('bin/ping', 'cap', {
              mode: 0o755,
              xattrs: {
                'security.capability': Buffer.from('0100000200200000000000000000000000000000', 'hex'),
              },
            })
            .build(),
        (ws) => {
          const sda = lstatSync(join(ws.root, 'dev/sda'));
          assert.ok(sda.isBlockDevice());
          assert.equal(sda.rdev, 8 * 256);
          assert.equal(lstatSync(join(ws.root, 'bin/su')).mode & 0o7777, 0o4755);
          const cap = execFileSync('getfattr', [
            '-n',
            'security.capability',
            '-e',
            'hex',
            join(ws.root, 'bin/ping'),
          ]).toString();
          assert.match(cap, /security.capability=0x0100000200200000000000000000000000000000/);
        },
      );
    });
  });
});
