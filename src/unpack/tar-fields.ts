// The fields of a 512-byte tar header block: numbers (octal or GNU base-256), the checksum, and names.
// Every helper refuses what it cannot read exactly, through the caller's reject.
import { decodeName } from './names.ts';

export const BLOCK = 512;

export type Reject = (reason: string) => never;

/** Octal (space / NUL terminated) or GNU base-256; anything else is refused. */
export function numericField(
  block: Buffer,
  offset: number,
  length: number,
  field: string,
  reject: Reject,
  signed = false,
): number {
  const first = block[offset]!;
  if (first === 0x80 || first === 0xff) {
    let value = BigInt(first & 0x7f) - (first === 0xff ? 128n : 0n);
    for (let i = offset + 1; i < offset + length; i++) value = (value << 8n) | BigInt(block[i]!);
    if (value < 0n && !signed) reject(`negative ${field} field`);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
      reject(`${field} field out of range`);
    }
    return Number(value);
  }
  const end = offset + length;
  let i = offset;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i]!;
    if (c >= 0x30 && c <= 0x37) {
      value = value * 8 + (c - 0x30);
      digits++;
    } else break;
  }
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) reject(invalidField(block, offset, length, field));
  }
  if (digits === 0 && first !== 0 && first !== 0x20) reject(invalidField(block, offset, length, field));
  return value;
}

function invalidField(block: Buffer, offset: number, length: number, field: string): string {
  return `invalid ${field} field ${JSON.stringify(block.toString('latin1', offset, offset + length))}`;
}

/** A NUL-terminated name field, byte for byte (see names.ts). */
export function nameField(block: Buffer, offset: number, length: number): string {
  let end = offset;
  while (end < offset + length && block[end] !== 0) end++;
  return decodeName(block.subarray(offset, end));
}

export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 4) if (block.readUInt32LE(i) !== 0) return false;
  return true;
}

export function verifyChecksum(block: Buffer, reject: Reject): void {
  // The field is bytes 148-155 of the block (read in place: no view allocated per header).
  let stored = 0;
  let i = 148;
  while (i < 156 && block[i] === 0x20) i++;
  let digits = 0;
  for (; i < 156 && block[i]! >= 0x30 && block[i]! <= 0x37; i++, digits++)
    stored = stored * 8 + (block[i]! - 0x30);
  for (; i < 156; i++) if (block[i] !== 0 && block[i] !== 0x20) reject('invalid header checksum field');
  if (digits === 0) reject('invalid header checksum field');
  // The checksum field itself counts as eight spaces. One tight pass for the usual (unsigned) sum; the
  // signed variant (bytes above 127 count negative, as old tars summed) only when that does not match.
  let unsigned = 8 * 0x20;
  for (let j = 0; j < 148; j++) unsigned += block[j]!;
  for (let j = 156; j < BLOCK; j++) unsigned += block[j]!;
  if (stored === unsigned) return;
  let signed = unsigned;
  for (let j = 0; j < BLOCK; j++) if (block[j]! > 127 && (j < 148 || j >= 156)) signed -= 256;
  if (stored !== signed) reject('bad header checksum');
}

/** Padding after a body of n bytes, up to the next block. */
export function paddingOf(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}
