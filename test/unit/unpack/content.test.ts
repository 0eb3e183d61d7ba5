import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ContentDigest, WINDOW } from '#unpack/content.ts';

/** The manifest's content id, computed the plain way (as src/builder/verify.ts reads it back from disk). */
function reference(body: Buffer): { h: string; windows: number } {
  if (body.length <= WINDOW) return { h: createHash('sha256').update(body).digest('hex'), windows: 0 };
  const digests: Buffer[] = [];
  for (let i = 0; i < body.length; i += WINDOW) {
    digests.push(
      createHash('sha256')
        .update(body.subarray(i, i + WINDOW))
        .digest()
        .subarray(0, 16),
    );
  }
  return { h: createHash('sha256').update(Buffer.concat(digests)).digest('hex'), windows: digests.length };
}

describe('Class: ContentDigest', () => {
  it('gives the reference id for bodies at and around window edges, in any pieces', () => {
    for (const size of [0, 1, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW, 3 * WINDOW - 7, 5 * WINDOW]) {
      const body = randomBytes(size);
      for (const piece of [1000, WINDOW, 70_000, size || 1]) {
        const digest = new ContentDigest(true);
        for (let at = 0; at < size; at += piece) digest.update(body.subarray(at, at + piece));
        const id = digest.finish();
        const want = reference(body);
        assert.equal(id.h, want.h, `size ${size}, pieces of ${piece}`);
        assert.equal(id.windows?.length ?? 0, want.windows);
      }
    }
  });

  it('hashes holes (zeros) as the bytes they read as, whole windows by their known digest', () => {
    const shapes: Array<Array<[zero: boolean, length: number]>> = [
      [[true, WINDOW]],
      [[true, 2 * WINDOW]],
      [
        [false, 10],
        [true, 3 * WINDOW],
        [false, 10],
      ],
      [
        [true, WINDOW - 5],
        [false, 5],
        [true, WINDOW],
      ],
      [
        [false, WINDOW],
        [true, 4096 * WINDOW + 17],
      ],
      [
        [true, 1],
        [false, 2 * WINDOW - 1],
        [true, 0],
      ],
    ];
    for (const shape of shapes) {
      const parts = shape.map(([zero, length]) => (zero ? Buffer.alloc(length) : randomBytes(length)));
      const digest = new ContentDigest(true);
      shape.forEach(([zero, length], i) => {
        if (zero) digest.zeros(length);
        else digest.update(parts[i]!);
      });
      const body = Buffer.concat(parts);
      assert.equal(digest.total, body.length);
      assert.equal(digest.finish().h, reference(body).h, JSON.stringify(shape));
    }
  });
});
