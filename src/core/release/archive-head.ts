// What ingest reads of an upload before it gives it a sequence: the archive's first 512-byte header, after
// decompression. A file that is not a tar archive (a zip, a disk image, a truncated or renamed file) is refused
// at once as "Release Rejected", without taking a sequence number, instead of failing every region's build
// later. Only the first block is read (the stream is then dropped): the builder still checks everything else.
// xz cannot be decoded here (Node has no xz, and a Lambda no xz tool), so an xz stream is checked for its own
// header only and its tar header is left to the builder.
import type { Readable, Transform } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';

const BLOCK = 512;
/** What is read of an upload: far more than any decoder needs for its first 512 bytes. */
const PREFIX_BYTES = 256 * 1024;

export type ArchiveHead = { ok: true; compression: string } | { ok: false; reason: string };

/** Reads at most the start of `body` and says whether it begins like a tar archive. Destroys `body`. */
export async function checkArchiveHead(body: Readable): Promise<ArchiveHead> {
  let prefix: { data: Buffer; whole: boolean };
  try {
    prefix = await readPrefix(body, PREFIX_BYTES);
  } finally {
    body.destroy();
  }
  const compression = detect(prefix.data);
  if (compression === 'bzip2')
    return { ok: false, reason: 'bzip2 archives are not supported: use gzip, zstd or xz' };
  if (compression === 'xz') return { ok: true, compression };
  const after = compression === 'none' ? '' : ` after ${compression} decompression`;
  const head =
    compression === 'none'
      ? { data: prefix.data.subarray(0, BLOCK), failed: false }
      : await firstBytes(
          compression === 'gzip' ? createGunzip() : createZstdDecompress(),
          prefix.data,
          BLOCK,
        );
  if (head.data.length < BLOCK) {
    // Only the prefix was decoded: a short output then says nothing, unless the prefix was the whole file.
    if (!prefix.whole) return { ok: true, compression };
    return {
      ok: false,
      reason: head.failed
        ? `not a readable ${compression} stream`
        : `not a tar archive: ${head.data.length} bytes${after}, less than one 512-byte header`,
    };
  }
  if (!isTarHeader(head.data))
    return {
      ok: false,
      reason: `not a tar archive: its first 512 bytes${after} are no tar header (bad header checksum)`,
    };
  return { ok: true, compression };
}

/** The first `bytes` bytes of `stream`, and whether that is all of it. */
async function readPrefix(stream: Readable, bytes: number): Promise<{ data: Buffer; whole: boolean }> {
  const chunks: Buffer[] = [];
  let have = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    chunks.push(buffer);
    have += buffer.length;
    if (have > bytes) return { data: Buffer.concat(chunks).subarray(0, bytes), whole: false };
  }
  return { data: Buffer.concat(chunks), whole: true };
}

/** Up to `bytes` bytes out of `decoder` fed with `input` (a prefix: a decoder may complain of its end). */
function firstBytes(
  decoder: Transform,
  input: Buffer,
  bytes: number,
): Promise<{ data: Buffer; failed: boolean }> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let have = 0;
    let done = false;
    const finish = (failed: boolean) => {
      if (done) return;
      done = true;
      decoder.destroy();
      resolve({ data: Buffer.concat(out).subarray(0, bytes), failed });
    };
    decoder.on('data', (chunk: Buffer) => {
      out.push(chunk);
      have += chunk.length;
      if (have >= bytes) finish(false);
    });
    decoder.on('error', () => finish(true));
    decoder.on('end', () => finish(false));
    decoder.end(input);
  });
}

function detect(head: Buffer): 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 4 && (head.readUInt32LE(0) & 0xfffffff0) === 0x184d2a50) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])))
    return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/**
 * A tar header block: its checksum field (octal, at 148) equals the sum of its bytes with that field read as
 * spaces (POSIX; some writers summed signed bytes). An all-zero block (an empty archive's end) also passes.
 */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  if (block.subarray(0, BLOCK).every((b) => b === 0)) return true;
  const field = block
    .subarray(148, 156)
    .toString('latin1')
    .replace(/[\0 ]+$/g, '')
    .trim();
  if (!/^[0-7]{1,7}$/.test(field)) return false;
  const stored = Number.parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}
