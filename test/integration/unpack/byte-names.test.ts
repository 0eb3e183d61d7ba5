// Linux names are bytes: names that are not UTF-8 (Latin-1 from old systems, say) are kept byte for byte, as
// GNU tar keeps them, in every place a name can be (file, directory, symlink and its target, hardlink, a name
// long enough for an extended header), and `..`, NUL and every escape are still refused. The archives are made
// here by GNU tar from such a tree, and compared with GNU tar's extraction of them.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { header, paxBody, type TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  canaries,
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  overRevision,
  snapshotTree,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { RejectedArchiveError } from '#unpack/index.ts';

const T0 = 1_700_000_000;
const latin1 = (text: string) => Buffer.from(text, 'latin1');
/** A path under dir, as bytes. */
const at = (dir: string, ...names: Buffer[]) =>
  Buffer.concat([Buffer.from(`${dir}/`), ...names.flatMap((n, i) => (i ? [Buffer.from('/'), n] : [n]))]);

const ETE = latin1('\xe9t\xe9'); // "été" in Latin-1
const CAFE = latin1('caf\xe9');
const LONG = Buffer.concat([latin1('\xe0'.repeat(60)), Buffer.from('-'), latin1('\xff'.repeat(60))]);

/** A tree whose names are not UTF-8, beside a UTF-8 name that a lossy decoder would confuse with one. */
function byteTree(src: string, revision: 1 | 2 = 1): void {
  mkdirSync(at(src, ETE));
  writeFileSync(at(src, ETE, CAFE), `latin-1 name, revision ${revision}\n`);
  writeFileSync(join(src, 'caf\u00e9'), 'utf-8 name\n');
  writeFileSync(at(src, latin1('\xff\xfe')), 'not even latin-1 text\n');
  writeFileSync(at(src, LONG), 'a long name: an extended header holds it\n');
  symlinkSync(latin1('tar\xffget'), at(src, latin1('l\xe9nk')));
  linkSync(at(src, ETE, CAFE), at(src, latin1('hard\xe9')));
  if (revision === 1) writeFileSync(at(src, latin1('gone\xe9')), 'only in revision 1\n');
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', `@${T0}`, '{}', '+']);
}

function byteArchive(ws: Workspace, format: string, revision: 1 | 2 = 1): Buffer {
  const src = join(ws.dir, `src-${format}-${revision}`);
  mkdirSync(src);
  byteTree(src, revision);
  const out = join(ws.dir, `${format}-${revision}.tar`);
  execFileSync('tar', [`--format=${format}`, '--numeric-owner', '-cf', out, '-C', src, '.']);
  return readFileSync(out);
}

describe('Function: applyTarball() with names that are not UTF-8', () => {
  for (const format of ['gnu', 'posix']) {
    it(`keeps every name byte for byte, as GNU tar does (--format=${format})`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const ws = makeWorkspace();
      try {
        // prepare
        const archive = byteArchive(ws, format);
        const path = join(ws.dir, 'archive.tar');
        writeFileSync(path, archive);
        const gnu = join(ws.dir, 'gnu');
        mkdirSync(gnu);
        gnuTarExtract(path, gnu);
        // act
        await applyBuffer(archive, ws.root);
        // assess: the same tree, and the bytes of each name on disk are the archive's
        assert.deepEqual(await snapshotTree(ws.root), await snapshotTree(gnu));
        assert.equal(readFileSync(at(ws.root, ETE, CAFE), 'utf8'), 'latin-1 name, revision 1\n');
        assert.equal(readFileSync(join(ws.root, 'caf\u00e9'), 'utf8'), 'utf-8 name\n');
        assert.equal(lstatSync(at(ws.root, latin1('hard\xe9'))).ino, lstatSync(at(ws.root, ETE, CAFE)).ino);
        assert.ok(lstatSync(at(ws.root, LONG)).isFile());
      } finally {
        ws.cleanup();
      }
    });
  }

  for (const withManifest of [true, false]) {
    it(`applies a revision over one with such names ${withManifest ? 'with' : 'without'} a manifest`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const setup = makeWorkspace();
      try {
        const rev1 = byteArchive(setup, 'posix', 1);
        const rev2 = byteArchive(setup, 'posix', 2);
        const keep = latin1('\xff\xfe');
        let inode = 0;
        await overRevision(withManifest, {
          rev1: { build: () => rev1 } as TarBuilder,
          rev2: { build: () => rev2 } as TarBuilder,
          between: (ws) => {
            // a second name outside the target keeps the inode alive, so its number cannot be reused
            linkSync(at(ws.root, keep), join(ws.dir, 'witness'));
            inode = lstatSync(at(ws.root, keep)).ino;
          },
          check: (ws, stats) => {
            assert.equal(
              lstatSync(at(ws.root, keep)).ino,
              inode,
              'an unchanged file with such a name is kept',
            );
            assert.equal(stats.removed, 1, 'the name revision 2 dropped');
            assert.equal(readFileSync(at(ws.root, ETE, CAFE), 'utf8'), 'latin-1 name, revision 2\n');
          },
        });
      } finally {
        setup.cleanup();
      }
    });
  }

  describe('still refuses what it always refused', () => {
    const expectRejected = async (archive: Buffer, reason: RegExp) => {
      const ws = makeWorkspace();
      try {
        const before = await canaries(ws);
        await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
          assert.ok(err instanceof RejectedArchiveError, String(err));
          assert.match(err.reason, reason);
          return true;
        });
        assert.deepEqual(await canaries(ws), before);
      } finally {
        ws.cleanup();
      }
    };
    const raw = (name: Buffer, typeflag = '0', linkname = '') =>
      header({ name: '', rawName: name, typeflag, mtime: T0, linkname });
    const end = Buffer.alloc(1024);

    it("a '..' component between bytes that are not UTF-8", () =>
      expectRejected(Buffer.concat([raw(latin1('\xe9/../../x')), end]), /'\.\.' component/));
    it('a NUL in a PAX path that is not UTF-8', () => {
      const body = paxBody([
        ['path', Buffer.concat([latin1('caf\xe9'), Buffer.from([0]), Buffer.from('x')])],
      ]);
      const padded = Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
      return expectRejected(
        Buffer.concat([
          header({ name: 'PaxHeader', typeflag: 'x', size: body.length }),
          padded,
          raw(latin1('x')),
          end,
        ]),
        /NUL byte/,
      );
    });
    it('a file written through a symlink whose name is not UTF-8', async () => {
      const ws = makeWorkspace();
      try {
        const archive = Buffer.concat([
          raw(latin1('d\xe9'), '2', ws.canary),
          raw(latin1('d\xe9/secret'), '0'),
          end,
        ]);
        await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
          assert.ok(err instanceof RejectedArchiveError, String(err));
          assert.match(err.reason, /is a symlink in this archive/);
          return true;
        });
        assert.equal(readFileSync(join(ws.canary, 'secret'), 'utf8'), 'canary secret\n');
      } finally {
        ws.cleanup();
      }
    });
    it('a hardlink whose target name is not an earlier entry, byte for byte', () =>
      // caf\xe9 (Latin-1) exists; the link names café in UTF-8, a different name
      expectRejected(
        Buffer.concat([
          raw(CAFE),
          header({ name: 'l', typeflag: '1', linkname: 'caf\u00e9', mtime: T0 }),
          end,
        ]),
        /not an earlier entry/,
      ));
  });
});
