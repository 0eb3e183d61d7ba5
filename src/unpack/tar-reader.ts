// A strict reader of POSIX ustar / pax and GNU tar, synchronous over the bytes the ByteSource has buffered.
// Written here rather than taken from tar-stream because every header field must be validated and anything
// ambiguous refused: tar-stream accepts a missing end-of-archive, applies PAX global headers, lets a PAX size
// govern a following GNU long-name header, and reads past NUL bytes in long names; a parser differential is
// an escape route.
//
// next() parses one entry's headers from what is buffered without consuming anything until they are all
// there: short of bytes, it returns how many it needs and is called again after the source has filled. So
// there is no promise per entry: the driver awaits only when a chunk runs out.

import { aclAfterChmod } from './acl.ts';
import type { ByteSource } from './byte-source.ts';
import { ARCHIVE, RejectedArchiveError } from './errors.ts';
import type { UnpackLimits } from './limits.ts';
import { decodeName, nameByteLength } from './names.ts';
import { globalMtime, type PaxOverrides, type PaxRecord, parsePax, paxRecords } from './pax.ts';
import {
  checkSparse,
  oldGnuExtended,
  oldGnuSparse,
  type PaxSparse,
  paxSparse,
  type SparseMap,
  sparse1Map,
} from './sparse.ts';
import { BLOCK, isZeroBlock, nameField, numericField, paddingOf, verifyChecksum } from './tar-fields.ts';

export type EntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarEntry {
  /** Normalised: no leading slash, no `.` or empty components; '' is the target root itself. */
  path: string;
  /** As written in the archive (after PAX / GNU long-name precedence), for messages. */
  rawPath: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds since the epoch (floor), and the nanoseconds a PAX mtime may add. */
  mtime: number;
  mtimeNsec: number;
  /** Bytes of body the archive stores (a sparse file's data segments only). */
  size: number;
  /** Symlink target byte for byte, or the normalised hardlink target path. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer> | null;
  /** A GNU sparse file: where its stored bytes go, and its real size. */
  sparse: SparseMap | null;
}

/** What next() returns when it needs this many bytes buffered before it can go on. */
export type NeedBytes = number;

/** Meta headers read so far for the entry that follows them. */
interface Meta {
  pax: PaxRecord[] | null;
  longName: string | null;
  longLink: string | null;
}

export class TarReader {
  entries = 0;
  private readonly src: ByteSource;
  private readonly limits: UnpackLimits;
  /** Body bytes of the current entry not yet read, and its padding. */
  private bodyLeft = 0;
  private padding = 0;
  /** From a PAX global header: the mtime of every later entry that sets none itself. */
  private globalMtime: [sec: number, nsec: number] | undefined;

  constructor(src: ByteSource, limits: UnpackLimits) {
    this.src = src;
    this.limits = limits;
  }

  private readonly reject = (reason: string): never => {
    throw new RejectedArchiveError(this.src.currentPath, reason);
  };

  /** Body bytes of the current entry still to be read. */
  get bodyRemaining(): number {
    return this.bodyLeft;
  }

  /** Takes up to n buffered body bytes of the current entry as zero-copy pieces. */
  takeBody(n: number): Buffer[] {
    const take = Math.min(n, this.bodyLeft, this.src.available);
    this.bodyLeft -= take;
    return take > 0 ? this.src.takePieces(take) : [];
  }

  /** The body ended early: the stream ran out inside it. */
  truncatedBody(): never {
    return this.reject('archive truncated in the middle of an entry body');
  }

  /** The next entry, null at a proper end-of-archive (two zero blocks), or the bytes it needs buffered. */
  next(): TarEntry | null | NeedBytes {
    const rest = this.bodyLeft + this.padding;
    if (rest > 0) {
      const skipped = this.src.skip(rest);
      const fromBody = Math.min(skipped, this.bodyLeft);
      this.bodyLeft -= fromBody;
      this.padding -= skipped - fromBody;
      if (skipped < rest) {
        if (this.src.done) this.truncatedBody();
        return rest - skipped;
      }
    }
    const src = this.src;
    const meta: Meta = { pax: null, longName: null, longLink: null };
    const pending = () => meta.pax !== null || meta.longName !== null || meta.longLink !== null;
    let pos = 0;
    // Until its name is known, a fault is the next entry's, named by where its first header starts
    // (never by the previous entry's name).
    src.currentPath = `<entry at byte ${src.position}>`;
    for (;;) {
      if (src.available < pos + BLOCK) {
        if (!src.done) return pos + BLOCK;
        if (src.available > pos) this.reject('archive truncated in the middle of a header');
        if (pending()) this.reject('archive ends after an extended header, without its entry');
        src.currentPath = ARCHIVE;
        this.reject('missing end-of-archive (the stream ended without two zero blocks)');
      }
      const block = src.peek(pos, BLOCK);
      if (isZeroBlock(block)) {
        if (pending()) this.reject('end-of-archive right after an extended header, without its entry');
        if (src.available < pos + 2 * BLOCK) {
          if (!src.done) return pos + 2 * BLOCK;
          if (src.available > pos + BLOCK) this.reject('archive truncated in the middle of a header');
          src.currentPath = ARCHIVE;
          this.reject('missing end-of-archive (a lone zero block ends the stream)');
        }
        src.currentPath = ARCHIVE;
        if (!isZeroBlock(src.peek(pos + BLOCK, BLOCK))) this.reject('a zero block followed by more headers');
        src.skip(pos + 2 * BLOCK);
        return null;
      }
      verifyChecksum(block, this.reject);
      const typeflag = String.fromCharCode(block[156]!);
      const size = numericField(block, 124, 12, 'size', this.reject);
      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        if (size > this.limits.maxPaxHeaderBytes) {
          this.reject(
            `extended header of ${size} bytes exceeds the limit of ${this.limits.maxPaxHeaderBytes}`,
          );
        }
        src.assertWithinTotal(size, pos + BLOCK);
        const end = pos + BLOCK + size + paddingOf(size);
        if (src.available < end) {
          if (!src.done) return end;
          this.reject('archive truncated in the middle of an extended header');
        }
        const body = Buffer.from(src.peek(pos + BLOCK, size));
        pos = end;
        this.metaHeader(typeflag, body, meta);
        if (typeflag === 'g') src.currentPath = `<entry at byte ${src.position + pos}>`;
        continue;
      }
      return this.entryAt(block, pos, typeflag, size, meta);
    }
  }

  private metaHeader(typeflag: string, body: Buffer, meta: Meta): void {
    if (typeflag === 'g') {
      if (meta.pax || meta.longName !== null || meta.longLink !== null) {
        this.reject('a PAX global header between an extended header and its entry');
      }
      this.globalMtime = globalMtime(body, this.reject) ?? this.globalMtime;
      return;
    }
    if (typeflag === 'x') {
      // One extended header per entry, and never mixed with GNU long names: which of them governs the size
      // and name of what follows is exactly where tar implementations disagree.
      if (meta.pax) this.reject('two PAX extended headers for one entry');
      if (meta.longName !== null || meta.longLink !== null)
        this.reject('a PAX header mixed with GNU long-name headers');
      meta.pax = paxRecords(body, this.reject);
      return;
    }
    if (meta.pax) this.reject('a PAX header mixed with GNU long-name headers');
    const value = this.longNameValue(body, typeflag === 'L' ? 'long name' : 'long link name');
    if (typeflag === 'L') {
      if (meta.longName !== null) this.reject('two GNU long-name headers for one entry');
      meta.longName = value;
    } else {
      if (meta.longLink !== null) this.reject('two GNU long-link headers for one entry');
      meta.longLink = value;
    }
  }

  /**
   * The entry whose header block is at `pos`: checked whole, then (when every byte it needs before its body
   * is buffered: old GNU sparse extension blocks, a PAX 1.0 sparse map) consumed.
   */
  private entryAt(
    block: Buffer,
    pos: number,
    typeflag: string,
    headerSize: number,
    meta: Meta,
  ): TarEntry | NeedBytes {
    const src = this.src;
    const isUstar = block.toString('latin1', 257, 263) === 'ustar\0';
    const headerName = () => {
      const name = nameField(block, 0, 100);
      const prefix = isUstar ? nameField(block, 345, 155) : '';
      return prefix ? `${prefix}/${name}` : name;
    };
    // The entry is named before its PAX records are checked, so a fault in them is reported as its own.
    const paxPath = meta.pax?.findLast(([key]) => key === 'path')?.[1];
    const named = paxPath !== undefined ? decodeName(paxPath) : (meta.longName ?? headerName());
    src.currentPath = named === '' ? '<empty name>' : named;
    const pax = meta.pax ? parsePax(meta.pax, this.reject) : null;
    const sparseRecords = pax?.sparse ? paxSparse(pax.sparse, this.reject) : null;
    const rawPath = this.entryName(pax, sparseRecords, meta.longName, headerName);
    src.currentPath = rawPath === '' ? '<empty name>' : rawPath;
    const count = this.entries + 1;
    if (count > this.limits.maxEntries)
      this.reject(`archive has more than ${this.limits.maxEntries} entries`);
    const type = this.typeOf(typeflag, rawPath);
    if (sparseRecords && (type !== 'file' || typeflag === 'S')) {
      this.reject(`GNU sparse records on a ${typeflag === 'S' ? 'GNU sparse header' : type}`);
    }
    // Only regular files have a body. Old ustar writers put a size on directories and hardlinks; GNU tar
    // ignores the size field of every other type (header or PAX), and so no body is skipped for them.
    let size = type === 'file' ? (pax?.size ?? headerSize) : 0;
    src.assertWithinTotal(size, pos + BLOCK);
    const path = this.normalisePath(rawPath);
    let linkname = '';
    if (type === 'symlink' || type === 'hardlink') {
      const rawLink = pax?.linkpath ?? meta.longLink ?? nameField(block, 157, 100);
      if (rawLink === '') this.reject(`${type} with an empty target`);
      if (nameByteLength(rawLink) > 4095) this.reject('link target longer than PATH_MAX');
      if (type === 'hardlink') {
        linkname = this.normalisePath(rawLink, 'hardlink target');
        if (linkname === '') this.reject('hardlink to the target root');
      } else {
        linkname = rawLink;
      }
    }
    const mode = numericField(block, 100, 8, 'mode', this.reject) & 0o7777;
    const mtime = pax?.mtime ?? this.globalMtime;
    const xattrs = pax?.xattrs ?? null;
    const rawAcl = xattrs?.get('system.posix_acl_access');
    if (rawAcl && !pax?.aclAccess && rawAcl.length >= 4) {
      // An access ACL carried as a plain attribute (SCHILY.xattr.system.posix_acl_access, e.g. mmdebstrap's
      // tar --xattrs): GNU tar sets it, then chmods, which rewrites its mask. The same end state here,
      // where the attribute is set after the chmod.
      xattrs!.set('system.posix_acl_access', aclAfterChmod(rawAcl, mode));
    }
    if (type === 'symlink' && (pax?.aclAccess || pax?.aclDefault)) this.reject('an ACL on a symlink');
    if (type !== 'dir' && pax?.aclDefault) this.reject(`a default ACL on a ${type}, not a directory`);
    const uid = pax?.uid ?? numericField(block, 108, 8, 'uid', this.reject);
    const gid = pax?.gid ?? numericField(block, 116, 8, 'gid', this.reject);
    const mtimeSec = mtime?.[0] ?? numericField(block, 136, 12, 'mtime', this.reject, true);
    const devmajor =
      type === 'char' || type === 'block' ? numericField(block, 329, 8, 'devmajor', this.reject) : 0;
    const devminor =
      type === 'char' || type === 'block' ? numericField(block, 337, 8, 'devminor', this.reject) : 0;

    // What lies between this header and the body, now that the entry is known to be sound.
    let consumed = pos + BLOCK;
    let sparse: SparseMap | null = null;
    if (typeflag === 'S') {
      const extensions: Buffer[] = [];
      let extended = oldGnuExtended(block, false);
      while (extended) {
        if ((extensions.length + 1) * BLOCK > this.limits.maxPaxHeaderBytes) {
          this.reject(
            `old GNU sparse map exceeds the extended-header limit of ${this.limits.maxPaxHeaderBytes}`,
          );
        }
        if (src.available < consumed + BLOCK) {
          if (!src.done) return consumed + BLOCK;
          this.reject('archive truncated in the middle of a sparse map');
        }
        const extension = Buffer.from(src.peek(consumed, BLOCK));
        extensions.push(extension);
        consumed += BLOCK;
        extended = oldGnuExtended(extension, true);
      }
      sparse = oldGnuSparse(block, extensions, this.reject);
    } else if (sparseRecords?.version === '1.0') {
      const window = Math.min(size, this.limits.maxPaxHeaderBytes, src.available - consumed);
      const complete = window === size || window === this.limits.maxPaxHeaderBytes || src.done;
      const map = sparse1Map(
        src.peek(consumed, Math.max(0, window)),
        complete,
        this.limits.maxPaxHeaderBytes,
        this.reject,
      );
      if (!map) return consumed + Math.min(size, window + BLOCK);
      consumed += map.mapBytes;
      size -= map.mapBytes;
      sparse = { realSize: sparseRecords.realSize, segments: map.segments };
    } else if (sparseRecords) {
      sparse = { realSize: sparseRecords.realSize, segments: sparseRecords.segments ?? [] };
    }
    if (sparse) checkSparse(sparse, size, this.reject);

    src.skip(consumed);
    this.entries = count;
    this.bodyLeft = size;
    // A 1.0 map takes whole blocks, so the data's padding is the body's.
    this.padding = paddingOf(size);
    return {
      path,
      rawPath,
      type,
      mode,
      uid,
      gid,
      mtime: mtimeSec,
      mtimeNsec: mtime?.[1] ?? 0,
      size,
      linkname,
      devmajor,
      devminor,
      xattrs,
      sparse,
    };
  }

  /** The name that governs: a PAX path, a GNU long name or the header's; GNU.sparse.name must agree. */
  private entryName(
    pax: PaxOverrides | null,
    sparse: PaxSparse | null,
    longName: string | null,
    headerName: () => string,
  ): string {
    if (sparse?.name !== undefined) {
      if (pax?.path !== undefined && pax.path !== sparse.name) {
        this.reject('PAX path and GNU.sparse.name disagree');
      }
      if (longName !== null) this.reject('GNU.sparse.name mixed with a GNU long name');
      return sparse.name;
    }
    return pax?.path ?? longName ?? headerName();
  }

  private typeOf(typeflag: string, rawPath: string): EntryType {
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':
        // Old archives mark directories by a trailing slash on a regular-file header.
        return rawPath.endsWith('/') && typeflag !== '7' ? 'dir' : 'file';
      case 'S':
        return 'file';
      case '1':
        return 'hardlink';
      case '2':
        return 'symlink';
      case '3':
        return 'char';
      case '4':
        return 'block';
      case '5':
        return 'dir';
      case '6':
        return 'fifo';
      default:
        return this.reject(`unsupported entry type ${JSON.stringify(typeflag)}`);
    }
  }

  /** Chroot-style: leading slashes dropped, `.` and empty components dropped, `..` refused outright. */
  normalisePath(raw: string, what = 'path'): string {
    if (raw === '') this.reject(`empty ${what}`);
    if (raw.includes('\0')) this.reject(`${what} contains a NUL byte`);
    if (raw.includes('\n')) this.reject(`${what} contains a newline`);
    // One scan: the components, and whether any is empty, `.` or `..` (only then is the path rebuilt).
    let components = 0;
    let clean = true;
    let start = 0;
    for (let i = 0; i <= raw.length; i++) {
      if (i < raw.length && raw.charCodeAt(i) !== 0x2f) continue;
      const len = i - start;
      if (len === 0 || (len === 1 && raw.charCodeAt(start) === 0x2e)) clean = false;
      else if (len === 2 && raw.charCodeAt(start) === 0x2e && raw.charCodeAt(start + 1) === 0x2e) {
        this.reject(`${what} contains a '..' component`);
      } else components++;
      start = i + 1;
    }
    if (components > this.limits.maxPathDepth) {
      this.reject(`${what} has ${components} components, more than the limit of ${this.limits.maxPathDepth}`);
    }
    const path = clean ? raw : dropEmptyAndDot(raw);
    if (nameByteLength(path) > this.limits.maxPathLength) {
      this.reject(`${what} is longer than the limit of ${this.limits.maxPathLength} bytes`);
    }
    return path;
  }

  private longNameValue(body: Buffer, what: string): string {
    let end = body.length;
    while (end > 0 && body[end - 1] === 0) end--;
    const value = body.subarray(0, end);
    if (value.includes(0)) this.reject(`GNU ${what} contains a NUL byte`);
    return decodeName(value);
  }
}

function dropEmptyAndDot(raw: string): string {
  const parts: string[] = [];
  for (const part of raw.split('/')) if (part !== '' && part !== '.') parts.push(part);
  return parts.join('/');
}

/** The next entry (see TarReader.next), filling the source as the reader asks. */
export async function nextEntry(reader: TarReader, src: ByteSource): Promise<TarEntry | null> {
  for (;;) {
    const result = reader.next();
    if (typeof result !== 'number') return result;
    while (src.available < result && (await src.fill())) {}
  }
}

/** Hands the current entry's body to `sink` as zero-copy pieces, as the chunks arrive. */
export async function pumpBody(
  reader: TarReader,
  src: ByteSource,
  sink: (piece: Buffer) => void,
): Promise<void> {
  while (reader.bodyRemaining > 0) {
    if (src.available === 0 && !(await src.fill())) reader.truncatedBody();
    for (const piece of reader.takeBody(reader.bodyRemaining)) sink(piece);
  }
}
