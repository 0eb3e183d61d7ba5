// Decompression bombs and inode bombs: the limits trip early, long before the input is used up.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { header } from '#test/support/tar-builder.ts';
import { canaries, makeWorkspace } from '#test/support/unpack-harness.ts';
import { applyTarball, DEFAULT_LIMITS, RejectedArchiveError } from '#unpack/index.ts';

const ZEROS = Buffer.alloc(16 * 1024 * 1024);
const compressors: Record<string, (b: Buffer) => Buffer> = {
  gzip: (b) => gzipSync(b, { level: 9 }),
  zstd: (b) => zstdCompressSync(b),
  xz: (b) => execFileSync('xz', ['-c', '-9'], { input: b, maxBuffer: 64 * 1024 * 1024 }),
};

/**
 * A tar of one 4 GiB file of zeros, as concatenated compressed members (each format accepts that), produced
 * lazily.
 */
function bomb(compress: (b: Buffer) => Buffer): Readable {
  const size = 4 * 1024 ** 3;
  const members = size / ZEROS.length;
  const head = compress(header({ name: 'bomb', size }));
  const zeros = compress(ZEROS);
  function* gen() {
    yield head;
    for (let i = 0; i < members; i++) yield zeros;
  }
  return Readable.from(gen(), { highWaterMark: 1 });
}

describe('Function: applyTarball() against bombs', () => {
  for (const [name, compress] of Object.entries(compressors)) {
    it(`rejects a ${name} bomb by its compression ratio, early`, async () => {
      // prepare
      const ws = makeWorkspace();
      try {
        const before = await canaries(ws);
        const stream = bomb(compress);
        // act
        const run = applyTarball(stream, ws.root);
        // assess: stopped within the first tenth of the 4 GiB it would inflate to
        await assert.rejects(run, (err: unknown) => {
          assert.ok(err instanceof RejectedArchiveError, String(err));
          assert.equal(err.entryPath, 'bomb');
          const match = /^compression ratio exceeds 100 \((\d+) bytes from (\d+)\)$/.exec(err.reason);
          assert.ok(match, err.reason);
          assert.ok(Number(match[1]) < 400 * 1024 * 1024, `inflated ${match[1]} bytes before stopping`);
          return true;
        });
        assert.deepEqual(await canaries(ws), before);
      } finally {
        ws.cleanup();
      }
    });
  }

  it('rejects a million empty entries at the entry limit, without reading them all', async () => {
    // prepare: the default limit is below a million, so this archive is refused with defaults too; a
    // lower limit here keeps the test from first creating half a million files.
    assert.ok(DEFAULT_LIMITS.maxEntries < 1_000_000);
    const ws = makeWorkspace();
    try {
      const total = 1_000_000;
      let generated = 0;
      function* gen() {
        for (let i = 0; i < total; i += 1000) {
          const blocks: Buffer[] = [];
          for (let j = i; j < i + 1000; j++) blocks.push(header({ name: `e${j}` }));
          generated += 1000;
          yield Buffer.concat(blocks);
        }
        yield Buffer.alloc(1024);
      }
      const before = await canaries(ws);
      // act
      const run = applyTarball(Readable.from(gen(), { highWaterMark: 1 }), ws.root, {
        limits: { maxEntries: 20_000 },
      });
      // assess
      await assert.rejects(run, (err: unknown) => {
        assert.ok(err instanceof RejectedArchiveError, String(err));
        assert.equal(err.entryPath, 'e20000');
        assert.match(err.reason, /more than 20000 entries/);
        return true;
      });
      assert.ok(generated < 30_000, `generated ${generated} entries`);
      assert.deepEqual(await canaries(ws), before);
    } finally {
      ws.cleanup();
    }
  });

  it('rejects a plain archive larger than the total-bytes limit while reading it', async () => {
    // prepare
    const ws = makeWorkspace();
    try {
      const body = Buffer.alloc(1024 * 1024, 0x61);
      function* gen() {
        yield header({ name: 'big', size: 64 * 1024 * 1024 });
        for (let i = 0; i < 64; i++) yield body;
      }
      // act
      const run = applyTarball(Readable.from(gen()), ws.root, { limits: { maxTotalBytes: 8 * 1024 * 1024 } });
      // assess
      await assert.rejects(run, /rejected: big: entry size 67108864 exceeds the limit of 8388608/);
    } finally {
      ws.cleanup();
    }
  });
});
