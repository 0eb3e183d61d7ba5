// A strict, streaming reader of POSIX ustar / pax and GNU tar. Written here rather than taken from
// tar-stream because every header field must be validated and anything ambiguous refused: tar-stream
// accepts a missing end-of-archive, applies PAX global headers, lets a PAX size govern a following GNU
// long-name header, and reads past NUL bytes in long names; a parser differential is an escape route.

import { aclAfterChmod, posixAclXattr } from './acl.ts';
import { type ByteSource, TruncatedError } from './byte-source.ts';
import { ARCHIVE, RejectedArchiveError } from './errors.ts';
import type { UnpackLimits } from './limits.ts';

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
  size: number;
  /** Symlink target byte for byte, or the normalised hardlink target path. */
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Map<string, Buffer> | null;
}

const BLOCK = 512;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.', 'system.'];
const MAX_XATTR_VALUE = 64 * 1024;

type PaxRecord = [key: string, value: Buffer];

interface PaxOverrides {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: [sec: number, nsec: number];
  xattrs?: Map<string, Buffer>;
  /** RHT.security.selinux, as written. */
  selinux?: Buffer;
  /** SCHILY.acl.access / .default, already in the kernel's system.posix_acl_* binary form. */
  aclAccess?: Buffer;
  aclDefault?: Buffer;
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

  private reject(reason: string): never {
    throw new RejectedArchiveError(this.src.currentPath, reason);
  }

  /** Reads the next n bytes of the current entry's body (n ≤ what is left). */
  async readBody(n: number): Promise<Buffer> {
    if (n > this.bodyLeft) throw new Error(`internal: body read of ${n} past ${this.bodyLeft} left`);
    try {
      const data = await this.src.read(n);
      if (!data) this.reject('archive truncated in the middle of an entry body');
      this.bodyLeft -= n;
      return data;
    } catch (err) {
      if (err instanceof TruncatedError) this.reject('archive truncated in the middle of an entry body');
      throw err;
    }
  }

  /** Like readBody, as zero-copy pieces. */
  async readBodyPieces(n: number): Promise<Buffer[]> {
    if (n > this.bodyLeft) throw new Error(`internal: body read of ${n} past ${this.bodyLeft} left`);
    try {
      const pieces = await this.src.readPieces(n);
      this.bodyLeft -= n;
      return pieces;
    } catch (err) {
      if (err instanceof TruncatedError) this.reject('archive truncated in the middle of an entry body');
      throw err;
    }
  }

  private async skipBodyAndPadding(): Promise<void> {
    const n = this.bodyLeft + this.padding;
    this.bodyLeft = 0;
    this.padding = 0;
    if (n > 0 && !(await this.src.skip(n))) this.reject('archive truncated in the middle of an entry body');
  }

  private async readBlock(): Promise<Buffer | null> {
    try {
      return await this.src.read(BLOCK);
    } catch (err) {
      if (err instanceof TruncatedError) this.reject('archive truncated in the middle of a header');
      throw err;
    }
  }

  /** Reads a meta header's body (PAX or GNU long name) whole, bounded by maxPaxHeaderBytes. */
  private async readMetaBody(size: number): Promise<Buffer> {
    if (size > this.limits.maxPaxHeaderBytes) {
      this.reject(`extended header of ${size} bytes exceeds the limit of ${this.limits.maxPaxHeaderBytes}`);
    }
    this.src.assertWithinTotal(size);
    let body: Buffer | null;
    try {
      body = await this.src.read(size);
    } catch (err) {
      if (err instanceof TruncatedError) this.reject('archive truncated in the middle of an extended header');
      throw err;
    }
    if (!body && size > 0) this.reject('archive truncated in the middle of an extended header');
    const copy = Buffer.from(body ?? Buffer.alloc(0));
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad && !(await this.src.skip(pad)))
      this.reject('archive truncated in the middle of an extended header');
    return copy;
  }

  /** The next entry, or null at a proper end-of-archive (two zero blocks). */
  async next(): Promise<TarEntry | null> {
    await this.skipBodyAndPadding();
    let pax: PaxRecord[] | null = null;
    let longName: string | null = null;
    let longLink: string | null = null;
    // Until its name is known, a fault is the next entry's, named by where its first header starts
    // (never by the previous entry's name).
    this.src.currentPath = `<entry at byte ${this.src.position}>`;
    for (;;) {
      const block = await this.readBlock();
      if (!block) {
        if (pax || longName !== null || longLink !== null) {
          this.reject('archive ends after an extended header, without its entry');
        }
        this.src.currentPath = ARCHIVE;
        this.reject('missing end-of-archive (the stream ended without two zero blocks)');
      }
      if (isZeroBlock(block)) {
        if (pax || longName !== null || longLink !== null) {
          this.reject('end-of-archive right after an extended header, without its entry');
        }
        const second = await this.readBlock();
        this.src.currentPath = ARCHIVE;
        if (!second) this.reject('missing end-of-archive (a lone zero block ends the stream)');
        if (!isZeroBlock(second)) this.reject('a zero block followed by more headers');
        return null;
      }
      verifyChecksum(block, (reason) => this.reject(reason));
      const typeflag = String.fromCharCode(block[156]!);
      const size = this.numeric(block, 124, 12, 'size');
      if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
        const body = await this.readMetaBody(size);
        if (typeflag === 'g') {
          if (pax || longName !== null || longLink !== null) {
            this.reject('a PAX global header between an extended header and its entry');
          }
          this.applyGlobal(body);
          this.src.currentPath = `<entry at byte ${this.src.position}>`;
          continue;
        }
        if (typeflag === 'x') {
          // One extended header per entry, and never mixed with GNU long names: which of them governs
          // the size and name of what follows is exactly where tar implementations disagree.
          if (pax) this.reject('two PAX extended headers for one entry');
          if (longName !== null || longLink !== null)
            this.reject('a PAX header mixed with GNU long-name headers');
          pax = this.paxRecords(body);
        } else {
          if (pax) this.reject('a PAX header mixed with GNU long-name headers');
          const value = this.longNameValue(body, typeflag === 'L' ? 'long name' : 'long link name');
          if (typeflag === 'L') {
            if (longName !== null) this.reject('two GNU long-name headers for one entry');
            longName = value;
          } else {
            if (longLink !== null) this.reject('two GNU long-link headers for one entry');
            longLink = value;
          }
        }
        continue;
      }
      return this.entryFrom(block, typeflag, size, pax, longName, longLink);
    }
  }

  private entryFrom(
    block: Buffer,
    typeflag: string,
    headerSize: number,
    paxRecords: PaxRecord[] | null,
    longName: string | null,
    longLink: string | null,
  ): TarEntry {
    const isUstar = block.subarray(257, 263).toString('latin1') === 'ustar\0';
    const headerName = () => {
      const name = this.textField(block, 0, 100, 'name');
      const prefix = isUstar ? this.textField(block, 345, 155, 'prefix') : '';
      return prefix ? `${prefix}/${name}` : name;
    };
    // The entry is named before its PAX records are checked, so a fault in them is reported as its own.
    const paxPath = paxRecords?.findLast(([key]) => key === 'path')?.[1];
    const named = paxPath !== undefined ? lenientUtf8(paxPath) : (longName ?? headerName());
    if (named !== null) this.src.currentPath = named === '' ? '<empty name>' : named;
    const pax = paxRecords ? this.parsePax(paxRecords) : null;
    const rawPath = pax?.path ?? longName ?? headerName();
    this.src.currentPath = rawPath === '' ? '<empty name>' : rawPath;
    this.entries++;
    if (this.entries > this.limits.maxEntries) {
      this.reject(`archive has more than ${this.limits.maxEntries} entries`);
    }
    let type: EntryType;
    switch (typeflag) {
      case '0':
      case '\0':
      case '7':
        // Old archives mark directories by a trailing slash on a regular-file header.
        type = rawPath.endsWith('/') && typeflag !== '7' ? 'dir' : 'file';
        break;
      case '1':
        type = 'hardlink';
        break;
      case '2':
        type = 'symlink';
        break;
      case '3':
        type = 'char';
        break;
      case '4':
        type = 'block';
        break;
      case '5':
        type = 'dir';
        break;
      case '6':
        type = 'fifo';
        break;
      case 'S':
        this.reject('GNU sparse files are not supported');
        break;
      default:
        this.reject(`unsupported entry type ${JSON.stringify(typeflag)}`);
    }
    // Only regular files have a body. Old ustar writers put a size on directories and hardlinks; GNU tar
    // ignores the size field of every other type (header or PAX), and so no body is skipped for them.
    const size = type === 'file' ? (pax?.size ?? headerSize) : 0;
    this.src.assertWithinTotal(size);
    const path = this.normalisePath(rawPath);
    let linkname = '';
    if (type === 'symlink' || type === 'hardlink') {
      const rawLink = pax?.linkpath ?? longLink ?? this.textField(block, 157, 100, 'linkname');
      if (rawLink === '') this.reject(`${type} with an empty target`);
      if (Buffer.byteLength(rawLink) > 4095) this.reject('link target longer than PATH_MAX');
      if (type === 'hardlink') {
        linkname = this.normalisePath(rawLink, 'hardlink target');
        if (linkname === '') this.reject('hardlink to the target root');
      } else {
        linkname = rawLink;
      }
    }
    const mode = this.numeric(block, 100, 8, 'mode') & 0o7777;
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
    const entry: TarEntry = {
      path,
      rawPath,
      type,
      mode,
      uid: pax?.uid ?? this.numeric(block, 108, 8, 'uid'),
      gid: pax?.gid ?? this.numeric(block, 116, 8, 'gid'),
      mtime: mtime?.[0] ?? this.numeric(block, 136, 12, 'mtime', true),
      mtimeNsec: mtime?.[1] ?? 0,
      size,
      linkname,
      devmajor: type === 'char' || type === 'block' ? this.numeric(block, 329, 8, 'devmajor') : 0,
      devminor: type === 'char' || type === 'block' ? this.numeric(block, 337, 8, 'devminor') : 0,
      xattrs,
    };
    this.bodyLeft = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    return entry;
  }

  /** Chroot-style: leading slashes dropped, `.` and empty components dropped, `..` refused outright. */
  normalisePath(raw: string, what = 'path'): string {
    if (raw === '') this.reject(`empty ${what}`);
    if (raw.includes('\0')) this.reject(`${what} contains a NUL byte`);
    if (raw.includes('\n')) this.reject(`${what} contains a newline`);
    const parts: string[] = [];
    for (const part of raw.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') this.reject(`${what} contains a '..' component`);
      parts.push(part);
    }
    if (parts.length > this.limits.maxPathDepth) {
      this.reject(
        `${what} has ${parts.length} components, more than the limit of ${this.limits.maxPathDepth}`,
      );
    }
    const path = parts.join('/');
    if (Buffer.byteLength(path) > this.limits.maxPathLength) {
      this.reject(`${what} is longer than the limit of ${this.limits.maxPathLength} bytes`);
    }
    return path;
  }

  private textField(block: Buffer, offset: number, length: number, field: string): string {
    const raw = block.subarray(offset, offset + length);
    const end = raw.indexOf(0);
    return this.decodeUtf8(end === -1 ? raw : raw.subarray(0, end), field);
  }

  private decodeUtf8(bytes: Buffer, field: string): string {
    try {
      return utf8.decode(bytes);
    } catch {
      return this.reject(`${field} is not valid UTF-8`);
    }
  }

  private longNameValue(body: Buffer, what: string): string {
    let end = body.length;
    while (end > 0 && body[end - 1] === 0) end--;
    const value = body.subarray(0, end);
    if (value.includes(0)) this.reject(`GNU ${what} contains a NUL byte`);
    return this.decodeUtf8(value, `GNU ${what}`);
  }

  /** Octal (space / NUL terminated) or GNU base-256; anything else is refused. */
  private numeric(block: Buffer, offset: number, length: number, field: string, signed = false): number {
    const raw = block.subarray(offset, offset + length);
    const first = raw[0]!;
    if (first === 0x80 || first === 0xff) {
      let value = BigInt(first & 0x7f) - (first === 0xff ? 128n : 0n);
      for (let i = 1; i < raw.length; i++) value = (value << 8n) | BigInt(raw[i]!);
      if (value < 0n && !signed) this.reject(`negative ${field} field`);
      if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
        this.reject(`${field} field out of range`);
      }
      return Number(value);
    }
    let i = 0;
    while (i < raw.length && raw[i] === 0x20) i++;
    let value = 0;
    let digits = 0;
    for (; i < raw.length; i++) {
      const c = raw[i]!;
      if (c >= 0x30 && c <= 0x37) {
        value = value * 8 + (c - 0x30);
        digits++;
      } else break;
    }
    for (; i < raw.length; i++) {
      if (raw[i] !== 0 && raw[i] !== 0x20)
        this.reject(`invalid ${field} field ${JSON.stringify(raw.toString('latin1'))}`);
    }
    if (digits === 0 && raw[0] !== 0 && raw[0] !== 0x20) {
      this.reject(`invalid ${field} field ${JSON.stringify(raw.toString('latin1'))}`);
    }
    return value;
  }

  /** The records of a PAX header body, in order, each checked for form. */
  private paxRecords(body: Buffer): PaxRecord[] {
    const out: PaxRecord[] = [];
    let pos = 0;
    while (pos < body.length) {
      // Trailing NUL padding after the last record is tolerated.
      if (body[pos] === 0 && body.subarray(pos).every((b) => b === 0)) break;
      const space = body.indexOf(0x20, pos);
      if (space === -1 || space - pos > 20) this.reject('malformed PAX record length');
      const lenText = body.subarray(pos, space).toString('latin1');
      if (!/^[1-9][0-9]*$/.test(lenText)) this.reject('malformed PAX record length');
      const len = Number(lenText);
      const end = pos + len;
      if (end > body.length || body[end - 1] !== 0x0a) this.reject('malformed PAX record');
      const eq = body.indexOf(0x3d, space + 1);
      if (eq === -1 || eq >= end) this.reject('malformed PAX record (no =)');
      const key = this.decodeUtf8(body.subarray(space + 1, eq), 'PAX key');
      out.push([key, body.subarray(eq + 1, end - 1)]);
      pos = end;
    }
    return out;
  }

  private parsePax(records: PaxRecord[]): PaxOverrides {
    const out: PaxOverrides = {};
    for (const [key, value] of records) this.applyPaxRecord(out, key, value);
    if (out.selinux !== undefined) {
      // GNU tar --selinux writes the label as RHT.security.selinux and sets it as the security.selinux
      // attribute, NUL-terminated as libselinux does. Both spellings for one entry must agree.
      const label = Buffer.concat([out.selinux, Buffer.alloc(1)]);
      const xattr = out.xattrs?.get('security.selinux');
      if (xattr && !xattr.equals(label) && !xattr.equals(out.selinux)) {
        this.reject('RHT.security.selinux and SCHILY.xattr.security.selinux disagree');
      }
      out.xattrs ??= new Map();
      out.xattrs.set('security.selinux', xattr ?? label);
    }
    for (const [record, xattr] of [
      ['SCHILY.acl.access', 'system.posix_acl_access'],
      ['SCHILY.acl.default', 'system.posix_acl_default'],
    ] as const) {
      const acl = record === 'SCHILY.acl.access' ? out.aclAccess : out.aclDefault;
      if (acl === undefined) continue;
      const other = out.xattrs?.get(xattr);
      if (other && !other.equals(acl)) this.reject(`${record} and SCHILY.xattr.${xattr} disagree`);
      out.xattrs ??= new Map();
      out.xattrs.set(xattr, acl);
    }
    return out;
  }

  /**
   * A PAX global header ('g'), e.g. git archive's `comment`. GNU tar applies its records to every later
   * entry that does not set them itself; only records that cannot redirect where or what is written are
   * accepted here: comment and charset (informative) and the time records (mtime sets every later entry's
   * mtime, as in GNU tar; atime and ctime are not restored by GNU tar either).
   */
  private applyGlobal(body: Buffer): void {
    for (const [key, value] of this.paxRecords(body)) {
      switch (key) {
        case 'comment':
        case 'charset':
        case 'atime':
        case 'ctime':
          break;
        case 'mtime': {
          const parsed: PaxOverrides = {};
          this.applyPaxRecord(parsed, key, value);
          this.globalMtime = parsed.mtime;
          break;
        }
        case 'path':
        case 'linkpath':
        case 'size':
          this.reject(`a PAX global ${key} record would change every later entry's ${key}`);
          break;
        default:
          this.reject(
            `PAX global record ${JSON.stringify(key)} is not supported (only comment, charset, mtime, atime, ctime)`,
          );
      }
    }
  }

  private applyPaxRecord(out: PaxOverrides, key: string, value: Buffer): void {
    const text = () => this.decodeUtf8(value, `PAX ${key}`);
    const decimal = (): number => {
      const s = text();
      if (!/^[0-9]{1,16}$/.test(s)) this.reject(`invalid PAX ${key} ${JSON.stringify(s)}`);
      const n = Number(s);
      if (!Number.isSafeInteger(n)) this.reject(`PAX ${key} out of range`);
      return n;
    };
    switch (key) {
      case 'path':
      case 'linkpath': {
        if (value.includes(0)) this.reject(`PAX ${key} contains a NUL byte`);
        const s = text();
        if (s.includes('\n')) this.reject(`PAX ${key} contains a newline`);
        out[key] = s;
        return;
      }
      case 'size':
        out.size = decimal();
        return;
      case 'uid':
        out.uid = decimal();
        return;
      case 'gid':
        out.gid = decimal();
        return;
      case 'mtime': {
        // Kept exact to the nanosecond: a double cannot hold today's seconds with nine decimals.
        const m = /^(-?)([0-9]{1,16})(?:\.([0-9]{1,9})[0-9]*)?$/.exec(text());
        if (!m) this.reject(`invalid PAX mtime ${JSON.stringify(text())}`);
        const whole = Number(m[2]);
        const frac = Number((m[3] ?? '').padEnd(9, '0'));
        out.mtime = m[1] && frac ? [-whole - 1, 1e9 - frac] : [m[1] ? -whole : whole, frac];
        return;
      }
    }
    if (key.startsWith('SCHILY.xattr.')) {
      const name = key.slice('SCHILY.xattr.'.length);
      if (!XATTR_NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) {
        this.reject(`unsupported extended attribute name ${JSON.stringify(name)}`);
      }
      if (name.length > 255) this.reject('extended attribute name longer than 255 bytes');
      if (value.length > MAX_XATTR_VALUE) this.reject(`extended attribute ${name} larger than 64 KiB`);
      out.xattrs ??= new Map();
      out.xattrs.set(name, Buffer.from(value));
      return;
    }
    if (key === 'RHT.security.selinux') {
      if (value.includes(0)) this.reject('RHT.security.selinux contains a NUL byte');
      if (value.length === 0 || value.length > MAX_XATTR_VALUE)
        this.reject('RHT.security.selinux is empty or too long');
      out.selinux = Buffer.from(value);
      return;
    }
    if (key === 'SCHILY.acl.access' || key === 'SCHILY.acl.default') {
      const acl = posixAclXattr(text(), (reason) => this.reject(`${key}: ${reason}`));
      if (key === 'SCHILY.acl.access') out.aclAccess = acl;
      else out.aclDefault = acl;
      return;
    }
    if (key.startsWith('SCHILY.acl.'))
      this.reject(`unsupported ACL record ${key} (NFSv4 ACLs are not supported)`);
    if (key.startsWith('GNU.sparse.')) this.reject('GNU sparse files are not supported');
    // Other keys (atime, ctime, uname, gname, comment, charset, LIBARCHIVE.*) do not change the tree
    // GNU tar --xattrs --acls --selinux produces; ignoring unknown keywords is what POSIX asks.
  }
}

function lenientUtf8(bytes: Buffer): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i += 4) if (block.readUInt32LE(i) !== 0) return false;
  return true;
}

function verifyChecksum(block: Buffer, reject: (reason: string) => never): void {
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
