// PAX extended headers: the records of an 'x' or 'g' header body, and what they change about an entry.
// Only records that GNU tar --xattrs --acls --selinux would apply are applied; GNU.sparse.* records are
// kept in order for sparse.ts.
import { posixAclXattr } from './acl.ts';
import { decodeName } from './names.ts';
import type { Reject } from './tar-fields.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const XATTR_NAMESPACES = ['user.', 'trusted.', 'security.', 'system.'];
const MAX_XATTR_VALUE = 64 * 1024;

export type PaxRecord = [key: string, value: Buffer];

export interface PaxOverrides {
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
  /** GNU.sparse.* records, in order (sparse.ts reads them). */
  sparse?: PaxRecord[];
}

export function decodeUtf8(bytes: Buffer, field: string, reject: Reject): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return reject(`${field} is not valid UTF-8`);
  }
}

/** The records of a PAX header body, in order, each checked for form. */
export function paxRecords(body: Buffer, reject: Reject): PaxRecord[] {
  const out: PaxRecord[] = [];
  let pos = 0;
  while (pos < body.length) {
    // Trailing NUL padding after the last record is tolerated.
    if (body[pos] === 0 && body.subarray(pos).every((b) => b === 0)) break;
    // "<length> <key>=<value>\n": a decimal length without leading zeros, of at most 20 digits.
    let len = 0;
    let at = pos;
    while (at < body.length && at - pos <= 20 && body[at]! >= 0x30 && body[at]! <= 0x39) {
      len = len * 10 + (body[at]! - 0x30);
      at++;
    }
    if (at === pos || body[pos] === 0x30 || body[at] !== 0x20 || at - pos > 20)
      reject('malformed PAX record length');
    const end = pos + len;
    if (end > body.length || body[end - 1] !== 0x0a) reject('malformed PAX record');
    const eq = body.indexOf(0x3d, at + 1);
    if (eq === -1 || eq >= end) reject('malformed PAX record (no =)');
    out.push([asciiOrUtf8(body, at + 1, eq, 'PAX key', reject), body.subarray(eq + 1, end - 1)]);
    pos = end;
  }
  return out;
}

/** Keys are ASCII in practice: decoded without a TextDecoder call when they are. */
function asciiOrUtf8(body: Buffer, start: number, end: number, field: string, reject: Reject): string {
  for (let i = start; i < end; i++) {
    if (body[i]! >= 0x80) return decodeUtf8(body.subarray(start, end), field, reject);
  }
  return body.toString('latin1', start, end);
}

/** A PAX time "[-]seconds[.fraction]", exact to the nanosecond (a double cannot hold it); null if malformed. */
function paxTime(value: Buffer): [number, number] | null {
  let i = 0;
  const negative = value[0] === 0x2d;
  if (negative) i++;
  let whole = 0;
  const wholeStart = i;
  for (; i < value.length && value[i]! >= 0x30 && value[i]! <= 0x39; i++)
    whole = whole * 10 + (value[i]! - 0x30);
  if (i === wholeStart || i - wholeStart > 16) return null;
  let frac = 0;
  if (i < value.length) {
    if (value[i] !== 0x2e) return null;
    i++;
    const fracStart = i;
    for (; i < value.length && value[i]! >= 0x30 && value[i]! <= 0x39; i++) {
      // Digits past the ninth are read and dropped (below a nanosecond).
      if (i - fracStart < 9) frac = frac * 10 + (value[i]! - 0x30);
    }
    if (i === fracStart || i !== value.length) return null;
    for (let d = Math.min(i - fracStart, 9); d < 9; d++) frac *= 10;
  }
  return negative && frac ? [-whole - 1, 1e9 - frac] : [negative ? -whole : whole, frac];
}

export function parsePax(records: PaxRecord[], reject: Reject): PaxOverrides {
  const out: PaxOverrides = {};
  for (const [key, value] of records) applyPaxRecord(out, key, value, reject);
  if (out.selinux !== undefined) {
    // GNU tar --selinux writes the label as RHT.security.selinux and sets it as the security.selinux
    // attribute, NUL-terminated as libselinux does. Both spellings for one entry must agree.
    const label = Buffer.concat([out.selinux, Buffer.alloc(1)]);
    const xattr = out.xattrs?.get('security.selinux');
    if (xattr && !xattr.equals(label) && !xattr.equals(out.selinux)) {
      reject('RHT.security.selinux and SCHILY.xattr.security.selinux disagree');
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
    if (other && !other.equals(acl)) reject(`${record} and SCHILY.xattr.${xattr} disagree`);
    out.xattrs ??= new Map();
    out.xattrs.set(xattr, acl);
  }
  return out;
}

/**
 * A PAX global header ('g'), e.g. git archive's `comment`. GNU tar applies its records to every later
 * entry that does not set them itself; only records that cannot redirect where or what is written are
 * accepted here: comment and charset (informative) and the time records (mtime sets every later entry's
 * mtime, as in GNU tar; atime and ctime are not restored by GNU tar either). Returns the global mtime, if set.
 */
export function globalMtime(body: Buffer, reject: Reject): [number, number] | undefined {
  let mtime: [number, number] | undefined;
  for (const [key, value] of paxRecords(body, reject)) {
    switch (key) {
      case 'comment':
      case 'charset':
      case 'atime':
      case 'ctime':
        break;
      case 'mtime': {
        const parsed: PaxOverrides = {};
        applyPaxRecord(parsed, key, value, reject);
        mtime = parsed.mtime;
        break;
      }
      case 'path':
      case 'linkpath':
      case 'size':
        reject(`a PAX global ${key} record would change every later entry's ${key}`);
        break;
      default:
        reject(
          `PAX global record ${JSON.stringify(key)} is not supported (only comment, charset, mtime, atime, ctime)`,
        );
    }
  }
  return mtime;
}

function applyPaxRecord(out: PaxOverrides, key: string, value: Buffer, reject: Reject): void {
  const text = () => decodeUtf8(value, `PAX ${key}`, reject);
  const decimal = (): number => {
    const s = text();
    if (!/^[0-9]{1,16}$/.test(s)) reject(`invalid PAX ${key} ${JSON.stringify(s)}`);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) reject(`PAX ${key} out of range`);
    return n;
  };
  switch (key) {
    case 'path':
    case 'linkpath': {
      if (value.includes(0)) reject(`PAX ${key} contains a NUL byte`);
      // Names are bytes: GNU tar writes a name that is not UTF-8 as it is, without hdrcharset.
      const s = decodeName(value);
      if (s.includes('\n')) reject(`PAX ${key} contains a newline`);
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
      const mtime = paxTime(value);
      if (!mtime) reject(`invalid PAX mtime ${JSON.stringify(text())}`);
      out.mtime = mtime;
      return;
    }
    case 'atime':
    case 'ctime':
    case 'uname':
    case 'gname':
      // Not restored by GNU tar --xattrs --acls --selinux either.
      return;
  }
  if (key.startsWith('SCHILY.xattr.')) {
    const name = key.slice('SCHILY.xattr.'.length);
    if (!XATTR_NAMESPACES.some((ns) => name.startsWith(ns) && name.length > ns.length)) {
      reject(`unsupported extended attribute name ${JSON.stringify(name)}`);
    }
    if (name.length > 255) reject('extended attribute name longer than 255 bytes');
    if (value.length > MAX_XATTR_VALUE) reject(`extended attribute ${name} larger than 64 KiB`);
    out.xattrs ??= new Map();
    out.xattrs.set(name, Buffer.from(value));
    return;
  }
  if (key === 'RHT.security.selinux') {
    if (value.includes(0)) reject('RHT.security.selinux contains a NUL byte');
    if (value.length === 0 || value.length > MAX_XATTR_VALUE)
      reject('RHT.security.selinux is empty or too long');
    out.selinux = Buffer.from(value);
    return;
  }
  if (key === 'SCHILY.acl.access' || key === 'SCHILY.acl.default') {
    const acl = posixAclXattr(text(), (reason) => reject(`${key}: ${reason}`));
    if (key === 'SCHILY.acl.access') out.aclAccess = acl;
    else out.aclDefault = acl;
    return;
  }
  if (key.startsWith('SCHILY.acl.')) reject(`unsupported ACL record ${key} (NFSv4 ACLs are not supported)`);
  if (key.startsWith('GNU.sparse.')) {
    out.sparse ??= [];
    out.sparse.push([key, value]);
    return;
  }
  // Other keys (atime, ctime, uname, gname, comment, charset, LIBARCHIVE.*) do not change the tree
  // GNU tar --xattrs --acls --selinux produces; ignoring unknown keywords is what POSIX asks.
}
