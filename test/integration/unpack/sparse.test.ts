// GNU sparse files (`tar --sparse`) in each of the four encodings GNU tar writes, against GNU tar's own
// extraction of the same archive: the same tree, and the holes kept (no more blocks allocated than GNU tar
// allocates, far fewer than the file's size). The archives are made here, by GNU tar, from files with holes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  ftruncateSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TarBuilder } from '#test/support/tar-builder.ts';
import {
  applyBuffer,
  gnuTarExtract,
  isRoot,
  makeWorkspace,
  snapshotTree,
  twoRevisions,
  type Workspace,
} from '#test/support/unpack-harness.ts';
import { RejectedArchiveError } from '#unpack/index.ts';

const T0 = 1_700_000_000;
const MiB = 1024 * 1024;

/** A file of `size` bytes that holds `data` at each offset and holes elsewhere. */
function sparseFile(path: string, size: number, data: Array<[offset: number, bytes: string | Buffer]>): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [offset, bytes] of data) {
      const body = Buffer.from(bytes);
      writeSync(fd, body, 0, body.length, offset);
    }
  } finally {
    closeSync(fd);
  }
}

/** Sparse files of every shape GNU tar maps differently, with mtimes fixed so trees compare exactly. */
function sparseTree(src: string, variant: 1 | 2 = 1): void {
  mkdirSync(join(src, 'var/log'), { recursive: true });
  // data in the middle, across a 64 KiB window, and at the very end
  sparseFile(join(src, 'disk.img'), 10 * MiB, [
    [MiB, `hello ${variant}`],
    [5 * MiB - 3, 'across a block edge'],
    [10 * MiB - 4, 'tail'],
  ]);
  // data at the start, then a hole to the end (GNU tar ends its map with a zero-length segment)
  sparseFile(join(src, 'var/log/lastlog'), 3 * MiB, [[0, 'x']]);
  // nothing but a hole
  sparseFile(join(src, 'var/log/faillog'), 2 * MiB, []);
  // many segments: more than an old GNU header holds (4), so extension blocks follow it
  sparseFile(
    join(src, 'var/log/many'),
    64 * MiB,
    Array.from({ length: 30 }, (_, i): [number, string] => [i * 2 * MiB, `segment ${i}`]),
  );
  writeFileSync(join(src, 'plain'), 'not sparse\n');
  execFileSync('find', [src, '-exec', 'touch', '-h', '-d', `@${T0}`, '{}', '+']);
}

const FORMATS: Array<[name: string, args: string[]]> = [
  ['old GNU', ['--format=gnu']],
  ['PAX 0.0', ['--format=posix', '--sparse-version=0.0']],
  ['PAX 0.1', ['--format=posix', '--sparse-version=0.1']],
  ['PAX 1.0', ['--format=posix', '--sparse-version=1.0']],
];

/** GNU tar's archive of the tree at `src`, sparse files kept sparse, in the format `args` names. */
function gnuSparseTar(src: string, out: string, args: string[]): void {
  execFileSync('tar', ['--sparse', ...args, '--numeric-owner', '-cf', out, '-C', src, '.']);
}

function sparseArchive(ws: Workspace, name: string, args: string[], variant: 1 | 2 = 1): Buffer {
  const src = join(ws.dir, `src-${name.replace(/\W/g, '')}-${variant}`);
  mkdirSync(src);
  sparseTree(src, variant);
  const out = join(ws.dir, `${name.replace(/\W/g, '')}-${variant}.tar`);
  gnuSparseTar(src, out, args);
  return readFileSync(out);
}

const SPARSE = ['disk.img', 'var/log/lastlog', 'var/log/faillog', 'var/log/many'];

/** 512-byte blocks allocated to each sparse file. */
function blocks(root: string): Record<string, number> {
  return Object.fromEntries(SPARSE.map((rel) => [rel, lstatSync(join(root, rel)).blocks]));
}

describe('Function: applyTarball() with GNU sparse files', () => {
  for (const [name, args] of FORMATS) {
    it(`applies ${name} sparse entries as GNU tar does, holes kept`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const ws = makeWorkspace();
      try {
        // prepare
        const archive = sparseArchive(ws, name, args);
        const path = join(ws.dir, 'archive.tar');
        writeFileSync(path, archive);
        const gnu = join(ws.dir, 'gnu');
        mkdirSync(gnu);
        gnuTarExtract(path, gnu);
        // act
        const stats = await applyBuffer(archive, ws.root);
        // assess: the same tree, byte for byte, and no more blocks than GNU tar allocates
        assert.deepEqual(await snapshotTree(ws.root), await snapshotTree(gnu));
        const ours = blocks(ws.root);
        const theirs = blocks(gnu);
        for (const rel of SPARSE) {
          assert.ok(ours[rel]! <= theirs[rel]!, `${rel}: ${ours[rel]} blocks, GNU tar ${theirs[rel]}`);
          assert.ok(ours[rel]! * 512 < lstatSync(join(ws.root, rel)).size / 4, `${rel} keeps its holes`);
        }
        // GNU tar stores whole 4 KiB blocks around the data: a few dozen blocks, not the 79 MiB of the files
        assert.ok(stats.bytesWritten < 64 * 4096, `only the data segments (${stats.bytesWritten} bytes)`);
      } finally {
        ws.cleanup();
      }
    });
  }

  it('streams a sparse file with more data than it buffers (16 MiB), as GNU tar extracts it, holes kept', async (t) => {
    if (!isRoot()) return t.skip('needs root: chown');
    const ws = makeWorkspace();
    try {
      // prepare: 17 MiB of data between two holes, and a tail
      const src = join(ws.dir, 'src');
      mkdirSync(src);
      const path = join(src, 'big.img');
      sparseFile(path, 48 * MiB, [
        [8 * MiB, randomBytes(17 * MiB)],
        [48 * MiB - 4, 'tail'],
      ]);
      execFileSync('touch', ['-d', `@${T0}`, path, src]);
      const tarball = join(ws.dir, 'big.tar');
      gnuSparseTar(src, tarball, ['--format=posix']);
      const gnu = join(ws.dir, 'gnu');
      mkdirSync(gnu);
      gnuTarExtract(tarball, gnu);
      // act
      await applyBuffer(readFileSync(tarball), ws.root);
      // assess
      assert.deepEqual(await snapshotTree(ws.root), await snapshotTree(gnu));
      const ours = lstatSync(join(ws.root, 'big.img')).blocks;
      assert.ok(ours <= lstatSync(join(gnu, 'big.img')).blocks, `${ours} blocks, no more than GNU tar's`);
      assert.ok(ours * 512 < 20 * MiB, 'the 31 MiB of holes stay holes');
    } finally {
      ws.cleanup();
    }
  });

  // 16 MiB of data is the most a sparse file's body is buffered at; one block more and it is streamed, and a
  // streamed sparse file is always written as a new inode, even when nothing changed.
  for (const [data, buffered] of [
    [16 * MiB, true],
    [16 * MiB + 4096, false],
  ] as const) {
    it(`${buffered ? 'keeps' : 'rewrites'} an unchanged sparse file with ${data} bytes of data${buffered ? ', its inode kept' : ' as a new inode'}`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const setup = makeWorkspace();
      try {
        // prepare: one data segment of `data` bytes between two holes, archived by GNU tar (old GNU format,
        // whose entry size is the data alone)
        const src = join(setup.dir, 'src');
        mkdirSync(src);
        sparseFile(join(src, 'img'), data + 8 * MiB, [[4 * MiB, randomBytes(data)]]);
        execFileSync('touch', ['-d', `@${T0}`, join(src, 'img'), src]);
        const tarball = join(setup.dir, 'img.tar');
        gnuSparseTar(src, tarball, ['--format=gnu']);
        const archive = readFileSync(tarball);
        const witness = (w: Workspace) => join(w.dir, 'witness');
        // act: the same archive twice, with a manifest; a second name outside the target keeps the inode alive
        const { ws, stats } = await twoRevisions(true, { build: () => archive } as TarBuilder, archive, (w) =>
          linkSync(join(w.root, 'img'), witness(w)),
        );
        try {
          // assess
          const ino = lstatSync(join(ws.root, 'img')).ino;
          if (buffered) {
            assert.equal(ino, lstatSync(witness(ws)).ino, 'not rewritten');
            assert.equal(stats.bytesWritten, 0);
          } else {
            assert.notEqual(ino, lstatSync(witness(ws)).ino, 'written as a new inode');
            assert.equal(stats.bytesWritten, data);
          }
          assert.ok(lstatSync(join(ws.root, 'img')).blocks * 512 < data + 4 * MiB, 'holes kept');
        } finally {
          ws.cleanup();
        }
      } finally {
        setup.cleanup();
      }
    });
  }

  for (const withManifest of [true, false]) {
    const how = withManifest ? 'with a manifest' : 'without a manifest';
    it(`keeps an unchanged sparse file and rewrites a changed one, holes kept, ${how}`, async (t) => {
      if (!isRoot()) return t.skip('needs root: chown');
      const setup = makeWorkspace();
      try {
        // prepare: revision 2 changes disk.img's first segment and leaves the other sparse files alone
        const [, args] = FORMATS[3]!;
        const rev1 = sparseArchive(setup, 'rev', args, 1);
        const rev2 = sparseArchive(setup, 'rev', args, 2);
        const inodes = (root: string) =>
          Object.fromEntries(SPARSE.map((rel) => [rel, lstatSync(join(root, rel)).ino]));
        // a second name outside the target for each file keeps its inode alive (its number is not reused)
        const witness = (w: Workspace, i: number) => join(w.dir, `witness-${i}`);
        let before: Record<string, number> = {};
        // act
        const { ws, stats } = await twoRevisions(
          withManifest,
          { build: () => rev1 } as TarBuilder,
          rev2,
          (w) => {
            for (const [i, rel] of SPARSE.entries()) linkSync(join(w.root, rel), witness(w, i));
            before = inodes(w.root);
          },
        );
        try {
          // assess
          const path = join(ws.dir, 'rev2.tar');
          writeFileSync(path, rev2);
          const gnu = join(ws.dir, 'gnu');
          mkdirSync(gnu);
          gnuTarExtract(path, gnu);
          const snap = { ignoreMtime: [''] };
          assert.deepEqual(await snapshotTree(ws.root, snap), await snapshotTree(gnu, snap));
          const after = inodes(ws.root);
          assert.notEqual(after['disk.img'], before['disk.img'], 'the changed sparse file is a new inode');
          for (const rel of SPARSE.slice(1)) assert.equal(after[rel], before[rel], `${rel} is not rewritten`);
          assert.ok(stats.bytesWritten > 0 && stats.bytesWritten <= 4 * 4096, "only disk.img's data blocks");
          assert.ok(blocks(ws.root)['disk.img']! <= blocks(gnu)['disk.img']!, 'holes kept');
        } finally {
          ws.cleanup();
        }
      } finally {
        setup.cleanup();
      }
    });
  }

  it('refuses a sparse archive that ends without its end-of-archive blocks', async () => {
    const ws = makeWorkspace();
    try {
      // prepare: GNU tar's archive, cut after the last entry's data (the zero blocks dropped)
      const archive = sparseArchive(ws, 'cut', FORMATS[0]![1]);
      let end = archive.length;
      while (end > 0 && archive.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
      // act, assess
      await assert.rejects(applyBuffer(archive.subarray(0, end), ws.root), (err: unknown) => {
        assert.ok(err instanceof RejectedArchiveError, String(err));
        assert.match(err.reason, /missing end-of-archive/);
        return true;
      });
    } finally {
      ws.cleanup();
    }
  });

  describe('refuses a map that disagrees with the body', () => {
    const reject = async (archive: Buffer, reason: RegExp) => {
      const ws = makeWorkspace();
      try {
        await assert.rejects(applyBuffer(archive, ws.root), (err: unknown) => {
          assert.ok(err instanceof RejectedArchiveError, String(err));
          assert.equal(err.entryPath, 'f');
          assert.match(err.reason, reason);
          return true;
        });
      } finally {
        ws.cleanup();
      }
    };
    const pax01 = (map: string, realSize: number, body: string) =>
      new TarBuilder()
        .file('f', body, {
          pax: [
            ['GNU.sparse.size', String(realSize)],
            ['GNU.sparse.numblocks', String(map.split(',').length / 2)],
            ['GNU.sparse.map', map],
          ],
        })
        .build();
    it('overlapping segments', () => reject(pax01('0,4,2,4', 100, 'aaaabbbb'), /overlap/));
    it('a segment past the real size', () =>
      reject(pax01('0,4,98,4', 100, 'aaaabbbb'), /past the real size/));
    it('more data in the map than stored', () =>
      reject(pax01('0,4,10,5', 100, 'aaaabbbb'), /9 bytes of data/));
    it('a real size beyond any filesystem', () => reject(pax01('0,1', 2 ** 50, 'a'), /exceeds/));
    it('a numblocks that does not match the map', () =>
      reject(
        new TarBuilder()
          .file('f', 'abcd', {
            pax: [
              ['GNU.sparse.size', '100'],
              ['GNU.sparse.numblocks', '2'],
              ['GNU.sparse.map', '0,4'],
            ],
          })
          .build(),
        /numblocks says 2/,
      ));
    it('a 1.0 map cut short by the end of the body', () =>
      reject(
        new TarBuilder()
          .file('f', '3\n0\n', {
            pax: [
              ['GNU.sparse.major', '1'],
              ['GNU.sparse.minor', '0'],
              ['GNU.sparse.realsize', '100'],
            ],
          })
          .build(),
        /GNU sparse 1.0 map/,
      ));
  });
});
