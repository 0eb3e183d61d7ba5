// Entry names resolved as if the target were a chroot, as GNU tar does by default: leading slashes, empty and
// `.` components are dropped; a `..` component is refused outright (GNU tar skips such members; a rejected
// archive fails the build). The depth and length limits count the normalised name, in components and bytes.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { ByteSource } from '#unpack/byte-source.ts';
import { RejectedArchiveError } from '#unpack/errors.ts';
import { resolveLimits, type UnpackLimits } from '#unpack/limits.ts';
import { TarReader } from '#unpack/tar-reader.ts';

function reader(limits: Partial<UnpackLimits> = {}): TarReader {
  const resolved = resolveLimits(limits);
  return new TarReader(new ByteSource(Readable.from([]), resolved), resolved);
}

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RejectedArchiveError, `expected a rejection, got ${String(err)}`);
    return err.reason;
  }
  assert.fail('expected a rejection');
}

describe('Function: TarReader.normalisePath()', () => {
  it('drops leading slashes, empty and . components, chroot-style', () => {
    const r = reader();
    assert.equal(r.normalisePath('/etc/passwd'), 'etc/passwd');
    assert.equal(r.normalisePath('////etc//./ssh/./sshd_config/'), 'etc/ssh/sshd_config');
    assert.equal(r.normalisePath('./'), '');
    assert.equal(r.normalisePath('.'), '');
    assert.equal(r.normalisePath('/'), '');
  });

  it('refuses a .. component anywhere, and only a whole .. component', () => {
    const r = reader();
    for (const raw of ['..', '../x', 'a/..', 'a/../b', '/..', './../etc']) {
      assert.equal(
        rejection(() => r.normalisePath(raw)),
        "path contains a '..' component",
        raw,
      );
    }
    assert.equal(r.normalisePath('a..b/...'), 'a..b/...');
    assert.equal(r.normalisePath('..a/b..'), '..a/b..');
    // two-character components with one dot are names like any other
    assert.equal(r.normalisePath('a./.b/x.'), 'a./.b/x.');
  });

  it('refuses an empty name, a NUL and a newline, naming what it checked', () => {
    const r = reader();
    assert.equal(
      rejection(() => r.normalisePath('')),
      'empty path',
    );
    assert.equal(
      rejection(() => r.normalisePath('a\0b')),
      'path contains a NUL byte',
    );
    assert.equal(
      rejection(() => r.normalisePath('a\nb')),
      'path contains a newline',
    );
    assert.equal(
      rejection(() => r.normalisePath('../x', 'hardlink target')),
      "hardlink target contains a '..' component",
    );
  });

  it('counts the depth limit in normalised components, the limit itself allowed', () => {
    const r = reader({ maxPathDepth: 3 });
    assert.equal(r.normalisePath('/a/./b//c/'), 'a/b/c');
    assert.equal(
      rejection(() => r.normalisePath('a/b/c/d')),
      'path has 4 components, more than the limit of 3',
    );
  });

  it('counts the length limit in bytes of the normalised name, the limit itself allowed', () => {
    const r = reader({ maxPathLength: 5 });
    assert.equal(r.normalisePath('///ab/cd'), 'ab/cd');
    assert.equal(
      rejection(() => r.normalisePath('ab/cde')),
      'path is longer than the limit of 5 bytes',
    );
    // 4 characters, 6 bytes of UTF-8
    assert.equal(
      rejection(() => r.normalisePath('\u00e9\u00e9/a', 'hardlink target')),
      'hardlink target is longer than the limit of 5 bytes',
    );
  });
});
