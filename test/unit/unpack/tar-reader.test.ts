import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { header, TarBuilder } from '#test/support/tar-builder.ts';
import { ByteSource, detectCompression } from '#unpack/byte-source.ts';
import { RejectedArchiveError } from '#unpack/errors.ts';
import { DEFAULT_LIMITS, resolveLimits } from '#unpack/limits.ts';
import { nextEntry, pumpBody, type TarEntry, TarReader } from '#unpack/tar-reader.ts';

/** Every entry with its body, read through the real byte source in chunks of `chunk` bytes. */
async function readAll(archive: Buffer, chunk = 1): Promise<Array<TarEntry & { body: string }>> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < archive.length; i += chunk) chunks.push(archive.subarray(i, i + chunk));
  const source = new ByteSource(Readable.from(chunks), DEFAULT_LIMITS);
  await source.open();
  const reader = new TarReader(source, DEFAULT_LIMITS);
  const out: Array<TarEntry & { body: string }> = [];
  for (;;) {
    const entry = await nextEntry(reader, source);
    if (!entry) break;
    const body: Buffer[] = [];
    await pumpBody(reader, source, (piece) => body.push(Buffer.from(piece)));
    out.push({ ...entry, body: Buffer.concat(body).toString() });
  }
  await source.finish();
  return out;
}

describe('Class: TarReader', () => {
  it('reads entries across 1-byte and odd-sized chunks alike', async () => {
    // prepare
    const archive = new TarBuilder().file('a', 'x'.repeat(700)).dir('d').file('d/b', 'bee').build();
    // act
    const one = await readAll(archive, 1);
    const odd = await readAll(archive, 333);
    // assess
    assert.deepEqual(
      one.map((e) => [e.path, e.type, e.body.length]),
      [
        ['a', 'file', 700],
        ['d', 'dir', 0],
        ['d/b', 'file', 3],
      ],
    );
    assert.deepEqual(odd, one);
  });

  it('gives a PAX path precedence over the header name, and a GNU long name likewise', async () => {
    // prepare
    const archive = new TarBuilder()
      .file('short', 'p', {
        pax: [
          ['path', 'from/pax'],
          ['uid', '70000'],
          ['mtime', '1700000000.25'],
        ],
      })
      .gnuLongName('from/gnu/long')
      .header({ name: 'ignored', size: 1, format: 'gnu' }, Buffer.from('g'))
      .header({ name: 'name', prefix: 'from/prefix', size: 0 })
      .build();
    // act
    const entries = await readAll(archive, 512);
    // assess
    assert.deepEqual(
      entries.map((e) => e.path),
      ['from/pax', 'from/gnu/long', 'from/prefix/name'],
    );
    assert.equal(entries[0]!.uid, 70000);
    assert.deepEqual([entries[0]!.mtime, entries[0]!.mtimeNsec], [1700000000, 250000000]);
  });

  it('keeps PAX mtimes exact to the nanosecond, negative ones included', async () => {
    // prepare
    const archive = new TarBuilder()
      .file('a', '', { pax: [['mtime', '1795296351.108852812']] })
      .file('b', '', { pax: [['mtime', '-2.5']] })
      .file('c', '', { pax: [['mtime', '7']] })
      .build();
    // act
    const entries = await readAll(archive, 512);
    // assess
    assert.deepEqual(
      entries.map((e) => [e.mtime, e.mtimeNsec]),
      [
        [1795296351, 108852812],
        [-3, 500000000],
        [7, 0],
      ],
    );
  });

  it('normalises paths chroot-style and keeps symlink targets byte for byte', async () => {
    // prepare
    const archive = new TarBuilder()
      .file('./a//b/./c', 'x')
      .file('///abs', 'y')
      .symlink('l', '/usr/share/zoneinfo/UTC')
      .hardlink('h', '/a/b/c')
      .build();
    // act
    const entries = await readAll(archive, 100);
    // assess
    assert.deepEqual(
      entries.map((e) => e.path),
      ['a/b/c', 'abs', 'l', 'h'],
    );
    assert.equal(entries[2]!.linkname, '/usr/share/zoneinfo/UTC');
    assert.equal(entries[3]!.linkname, 'a/b/c');
  });

  it('reads binary xattr values from SCHILY.xattr records', async () => {
    // prepare
    const value = Buffer.from([0, 1, 10, 255, 61]);
    const archive = new TarBuilder()
      .file('f', '', { xattrs: { 'security.capability': value, 'user.a': 'b=c' } })
      .build();
    // act
    const [entry] = await readAll(archive, 512);
    // assess
    assert.deepEqual(entry!.xattrs?.get('security.capability'), value);
    assert.equal(entry!.xattrs?.get('user.a')?.toString(), 'b=c');
  });

  it('rejects an xattr outside the known namespaces', async () => {
    const archive = new TarBuilder().file('f', '', { xattrs: { 'bogus.name': 'x' } }).build();
    await assert.rejects(readAll(archive, 512), /unsupported extended attribute name/);
  });

  it('accepts the old signed checksum', async () => {
    // prepare: a name byte above 127 makes the signed and unsigned sums differ
    const block = header({ name: 'x' });
    block[99] = 0; // keep the name NUL-terminated
    block[500] = 200; // padding byte: counted by both sums
    let signed = 0;
    block.fill(0x20, 148, 156);
    for (const b of block) signed += b > 127 ? b - 256 : b;
    block.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    // act
    const entries = await readAll(Buffer.concat([block, Buffer.alloc(1024)]), 512);
    // assess
    assert.equal(entries[0]!.path, 'x');
  });

  it('names the entry at fault in a rejection', async () => {
    const archive = new TarBuilder().file('fine', 'x').header({ name: 'bad', typeflag: 'X' }).build();
    await assert.rejects(readAll(archive, 512), (err: unknown) => {
      assert.ok(err instanceof RejectedArchiveError);
      assert.equal(err.message, 'rejected: bad: unsupported entry type "X"');
      return true;
    });
  });
});

describe('Function: detectCompression()', () => {
  it('recognises gzip, zstd, xz and bzip2 by magic bytes, and plain tar otherwise', () => {
    assert.equal(detectCompression(gzipSync(Buffer.from('x'))), 'gzip');
    assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0])), 'zstd');
    assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
    assert.equal(detectCompression(Buffer.from('BZh91AY')), 'bzip2');
    assert.equal(detectCompression(header({ name: 'x' })), 'none');
  });

  it('takes a leading zstd skippable frame (pzstd) for zstd, and only the skippable range', () => {
    const frame = (magic: number) => {
      const b = Buffer.alloc(8);
      b.writeUInt32LE(magic, 0);
      return b;
    };
    assert.equal(detectCompression(frame(0x184d2a50)), 'zstd');
    assert.equal(detectCompression(frame(0x184d2a5f)), 'zstd');
    assert.equal(detectCompression(frame(0x184d2a60)), 'none');
  });

  it('reads a gzip archive whatever its file name would say', async () => {
    const entries = await readAll(gzipSync(new TarBuilder().file('z', 'zipped').build()), 7);
    assert.deepEqual(
      entries.map((e) => [e.path, e.body]),
      [['z', 'zipped']],
    );
  });

  it('rejects bzip2 as unsupported rather than as garbage', async () => {
    await assert.rejects(readAll(Buffer.from('BZh91AY&SY'), 512), /bzip2 compression is not supported/);
  });

  it('rejects corrupt gzip data', async () => {
    const gz = gzipSync(new TarBuilder().file('z', 'x'.repeat(5000)).build());
    gz.fill(0x55, 20, 40);
    await assert.rejects(readAll(gz, 512), /corrupt gzip data/);
  });
});

describe('Function: resolveLimits()', () => {
  it('fills defaults and refuses unknown or non-positive limits', () => {
    assert.equal(resolveLimits({ maxEntries: 10 }).maxEntries, 10);
    assert.equal(resolveLimits(undefined).maxPathDepth, DEFAULT_LIMITS.maxPathDepth);
    assert.throws(() => resolveLimits({ maxEntries: 0 }), /must be a positive number/);
    assert.throws(() => resolveLimits({ bogus: 1 } as never), /unknown unpack limit: bogus/);
  });
});
