import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeName, fsPath, hasEscapes, nameByteLength, nameBytes } from '#unpack/names.ts';

const bytes = (...b: number[]) => Buffer.from(b);

describe('Function: decodeName() / nameBytes()', () => {
  it('keeps ASCII and valid UTF-8 as their strings', () => {
    assert.equal(decodeName(Buffer.from('usr/bin/ls')), 'usr/bin/ls');
    assert.equal(decodeName(Buffer.from('caf\u00e9 \u{1f600}')), 'caf\u00e9 \u{1f600}');
    assert.equal(hasEscapes('caf\u00e9 \u{1f600}'), false);
  });

  it('gives back the exact bytes of every name, valid UTF-8 or not', () => {
    const cases = [
      bytes(0x63, 0x61, 0x66, 0xe9), // Latin-1 "café"
      bytes(0xff, 0xfe, 0x2f, 0x80),
      bytes(0xc3), // a lead byte cut short
      bytes(0xe0, 0x80, 0x80), // overlong
      bytes(0xed, 0xa0, 0x80), // an encoded surrogate
      bytes(0xf4, 0x90, 0x80, 0x80), // above U+10FFFF
      bytes(0xf0, 0x9f, 0x98, 0x80, 0xe9), // a valid emoji, then a stray byte
      bytes(0xed, 0xb2, 0x80), // the UTF-8 form of U+DC80, which must not decode as an escape
    ];
    for (const name of cases) {
      const decoded = decodeName(name);
      assert.deepEqual(nameBytes(decoded), name, `round trip of ${name.toString('hex')}`);
      assert.equal(nameByteLength(decoded), name.length);
    }
    for (let i = 0; i < 2000; i++) {
      const name = Buffer.from(
        Array.from({ length: 1 + (i % 12) }, (_, j) => (i * 7919 + j * 104_729) & 0xff),
      );
      assert.deepEqual(nameBytes(decodeName(name)), name);
    }
  });

  it('never maps two different byte names to one string', () => {
    // "café" in Latin-1 and in UTF-8 are two names, as on disk
    const latin1 = decodeName(bytes(0x63, 0x61, 0x66, 0xe9));
    const utf8 = decodeName(Buffer.from('caf\u00e9'));
    assert.notEqual(latin1, utf8);
    assert.equal(hasEscapes(latin1), true);
    // an escaped byte and a real U+DC80..U+DCFF cannot meet: valid UTF-8 never decodes to a lone surrogate
    assert.notEqual(decodeName(bytes(0xed, 0xb2, 0x80)), decodeName(bytes(0x80)));
  });

  it('hands node:fs a Buffer only when the name holds escaped bytes', () => {
    assert.equal(fsPath('/root/etc/passwd'), '/root/etc/passwd');
    assert.deepEqual(fsPath(decodeName(bytes(0x2f, 0xe9))), bytes(0x2f, 0xe9));
  });
});
