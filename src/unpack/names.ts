// Linux names are bytes. A name that is valid UTF-8 is kept as its string; one that is not is decoded with
// each byte that is not part of a valid UTF-8 sequence mapped to a lone low surrogate U+DC80-U+DCFF (as
// Python's surrogateescape does). Valid UTF-8 never decodes to a lone surrogate, so the two kinds of names
// cannot collide in a Map, and the exact bytes come back for every system call (GNU tar keeps such names
// byte for byte too). The manifest stores names as JSON strings, which keep lone surrogates as \udcXX escapes.

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const ESCAPE_BASE = 0xdc00;

/** The name as a string, byte for byte reversible by nameBytes(). */
export function decodeName(bytes: Uint8Array): string {
  // Plain ASCII is the common case and needs no validation.
  let ascii = true;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i]! >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return decodeEscaped(bytes);
  }
}

function decodeEscaped(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const len = sequenceLength(bytes, i);
    if (len === 0) {
      out += String.fromCharCode(ESCAPE_BASE + b);
      i++;
    } else {
      out += strictUtf8.decode(bytes.subarray(i, i + len));
      i += len;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at i (RFC 3629: no overlongs, no surrogates), or 0. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const b = bytes[i + k];
    return b !== undefined && b >= lo && b <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 >= 0xe1 && b0 <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** Whether the name holds escaped bytes (and so must reach the kernel as a Buffer). */
export function hasEscapes(name: string): boolean {
  return !name.isWellFormed();
}

/** The exact bytes of a name made by decodeName(). */
export function nameBytes(name: string): Buffer {
  if (name.isWellFormed()) return Buffer.from(name, 'utf8');
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0xdc80 && c <= 0xdcff && !isPairedLow(name, i)) {
      if (i > start) parts.push(Buffer.from(name.slice(start, i), 'utf8'));
      parts.push(Buffer.of(c - ESCAPE_BASE));
      start = i + 1;
    }
  }
  if (start < name.length) parts.push(Buffer.from(name.slice(start), 'utf8'));
  return Buffer.concat(parts);
}

function isPairedLow(name: string, i: number): boolean {
  if (i === 0) return false;
  const prev = name.charCodeAt(i - 1);
  return prev >= 0xd800 && prev <= 0xdbff;
}

/** Bytes of the name on disk. */
export function nameByteLength(name: string): number {
  return name.isWellFormed() ? Buffer.byteLength(name) : nameBytes(name).length;
}

/** A path for node:fs: the string itself, or its exact bytes when it holds escaped bytes. */
export function fsPath(path: string): string | Buffer {
  return path.isWellFormed() ? path : nameBytes(path);
}
