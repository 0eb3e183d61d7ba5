// What the fast way reads from ext4's tools, and the digest table's own format: the parsers that decide which
// blocks are read must miss no block they are shown, and a damaged table must never be taken for a parent's.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  BLOCK_SIZE,
  decodeDigests,
  encodeDigests,
  linearChecksum,
  zeroDigests,
} from '#builder/snapshot/digests.ts';
import { inodeBlocks, metadataRanges } from '#builder/snapshot/ext4-candidates.ts';

const STAT = `debugfs 1.47.0 (5-Feb-2023)
debugfs: stat <13>
Inode: 13   Type: regular    Mode:  0644   Flags: 0x80000
User:     0   Group:     0   Project:     0   Size: 300000
File ACL: 5164
Links: 1   Blockcount: 600
 ctime: 0x6b169c08:4b960bec -- Mon Dec  7 11:44:08 2026
Extended attributes:
  user.big (3000)
EXTENTS:
(ETB0):33000, (0-73):32801-32874, (74):40000
(75-80):40010-40015
debugfs: stat <7>
Inode: 7   Type: regular    Mode:  0600   Flags: 0x0
File ACL: 0
BLOCKS:
(DIND):1066, (IND):2, (2060):32770
TOTAL: 3

debugfs: stat <12>
Inode: 12   Type: symlink    Mode:  0777   Flags: 0x0
Fast link dest: "(x):99999"
`;

describe('Function: inodeBlocks()', () => {
  it('lists data extents, extent-tree and indirect blocks and the xattr block of every inode shown', () => {
    const { inodes, ranges } = inodeBlocks(STAT);
    assert.equal(inodes, 3);
    assert.deepEqual(
      ranges.sort((a, b) => a[0] - b[0]),
      [
        [2, 2],
        [1066, 1066],
        [5164, 5164],
        [32770, 32770],
        [32801, 32874],
        [33000, 33000],
        [40000, 40000],
        [40010, 40015],
      ],
      'a fast symlink has no block, whatever its target says',
    );
  });
});

describe('Function: metadataRanges()', () => {
  it('takes superblocks, descriptors, reserved GDT blocks, bitmaps and inode tables of every group', () => {
    const dump = `Block size:               4096
Group 0: (Blocks 0-32767) csum 0x1 [ITABLE_ZEROED]
  Primary superblock at 0, Group descriptors at 1-1
  Reserved GDT blocks at 2-256
  Block bitmap at 257 (+257), csum 0x0
  Inode bitmap at 273 (+273), csum 0x0
  Inode table at 289-800 (+289)
Group 1: (Blocks 32768-65535) csum 0x2 [INODE_UNINIT, ITABLE_ZEROED]
  Backup superblock at 32768, Group descriptors at 32769-32769
  Reserved GDT blocks at 32770-33024
  Block bitmap at 258 (bg #0 + 258), csum 0x0
  Inode bitmap at 274 (bg #0 + 274), csum 0x0
  Inode table at 801-1312 (bg #0 + 801)
`;
    assert.deepEqual(
      metadataRanges(dump).sort((a, b) => a[0] - b[0]),
      [
        [0, 0],
        [1, 1],
        [2, 256],
        [257, 257],
        [258, 258],
        [273, 273],
        [274, 274],
        [289, 800],
        [801, 1312],
        [32768, 32768],
        [32769, 32769],
        [32770, 33024],
      ],
    );
  });
});

describe('Digest tables', () => {
  const table = {
    snapshotId: 'snap-0123456789abcdef0',
    region: 'eu-west-1',
    blockSize: BLOCK_SIZE,
    sizeBytes: 2 ** 30,
    pristine: true,
    digests: zeroDigests(2 ** 30),
  };

  it('round-trips, and a damaged or mismatched table is refused with why', () => {
    assert.deepEqual(decodeDigests(encodeDigests(table)).digests, table);
    assert.match(decodeDigests(Buffer.from('not gzip')).problem ?? '', /not gzip/);
    const short = encodeDigests({ ...table, digests: table.digests.subarray(32) });
    assert.match(
      decodeDigests(short).problem ?? '',
      /2047 digests for a 1073741824-byte disk of 2048 blocks/,
    );
    const lying = gzipSync(
      Buffer.concat([
        Buffer.from(
          `${JSON.stringify({ ...table, digests: undefined, version: 1, blocks: 2048, sizeBytes: 2 ** 30, snapshotId: 'vol-1' })}\n`,
        ),
        table.digests,
      ]),
    );
    assert.match(decodeDigests(lying).problem ?? '', /snapshot id/);
  });

  it("LINEAR checksum: SHA-256 of the blocks' SHA-256 in ascending block order, whatever order they were put in", () => {
    const d = (n: number) =>
      createHash('sha256')
        .update(Buffer.from([n]))
        .digest();
    const expected = createHash('sha256')
      .update(Buffer.concat([d(1), d(2), d(3)]))
      .digest('base64');
    assert.equal(
      linearChecksum(
        new Map([
          [9, d(3)],
          [2, d(1)],
          [4, d(2)],
        ]),
      ),
      expected,
    );
  });
});
