// POSIX ACLs from PAX SCHILY.acl.access / SCHILY.acl.default records (GNU tar --acls), turned into the
// system.posix_acl_* extended attributes the kernel stores them as, so they are applied, compared and
// recorded like every other attribute.
import { spawnSync } from 'node:child_process';

/** The kernel's ACL tags (linux/posix_acl.h), in the order its binary form sorts them. */
const ACL_TAGS = { user_obj: 0x01, user: 0x02, group_obj: 0x04, group: 0x08, mask: 0x10, other: 0x20 };
const ACL_UNDEFINED_ID = 0xffffffff;

/**
 * A POSIX.1e ACL in text form, as GNU tar --acls writes it (`user::rw-,user:1000:r--,group::r-x,mask::r-x,
 * other::---`; commas or newlines), in the system.posix_acl_* attribute's binary form (version 2, then
 * tag / perm / id per entry, sorted). GNU tar writes user and group names where the creating host knew
 * them (even with --numeric-owner) and, extracting, resolves them through the extracting host's user
 * database (libacl's acl_from_text: a number first, then a name); so does this, and a name that does not
 * resolve rejects the entry where GNU tar would warn and drop the ACL. A star-style fourth field (the id
 * after the permissions) is ignored, as GNU tar does.
 */
export function posixAclXattr(
  text: string,
  reject: (reason: string) => never,
  resolve: (kind: 'user' | 'group', name: string) => number | undefined = hostId,
): Buffer {
  const entries: Array<{ tag: number; perm: number; id: number }> = [];
  for (const line of text.split(/[,\n]/)) {
    const spec = line.replace(/#.*$/, '').trim();
    if (spec === '') continue;
    const parts = spec.split(':');
    if (parts.length < 3 || parts.length > 4) reject(`malformed ACL entry ${JSON.stringify(spec)}`);
    const [kind, qualifier, perms] = parts as [string, string, string, string | undefined];
    const named = qualifier !== '';
    let tag: number;
    if (kind === 'user' || kind === 'u') tag = named ? ACL_TAGS.user : ACL_TAGS.user_obj;
    else if (kind === 'group' || kind === 'g') tag = named ? ACL_TAGS.group : ACL_TAGS.group_obj;
    else if ((kind === 'mask' || kind === 'm') && !named) tag = ACL_TAGS.mask;
    else if ((kind === 'other' || kind === 'o') && !named) tag = ACL_TAGS.other;
    else reject(`malformed ACL entry ${JSON.stringify(spec)}`);
    let id = ACL_UNDEFINED_ID;
    if (named) {
      const who = tag === ACL_TAGS.user ? 'user' : 'group';
      const resolved = /^[0-9]{1,10}$/.test(qualifier) ? Number(qualifier) : resolve(who, qualifier);
      if (resolved === undefined) {
        reject(`ACL entry ${JSON.stringify(spec)}: no ${who} ${JSON.stringify(qualifier)} on this host`);
      }
      if (resolved >= ACL_UNDEFINED_ID) reject(`ACL entry ${JSON.stringify(spec)}: id out of range`);
      id = resolved;
    }
    if (!/^[rwx-]{1,3}$/.test(perms)) reject(`malformed ACL permissions ${JSON.stringify(perms)}`);
    const perm =
      (perms.includes('r') ? 4 : 0) | (perms.includes('w') ? 2 : 0) | (perms.includes('x') ? 1 : 0);
    if (entries.some((e) => e.tag === tag && e.id === id))
      reject(`duplicate ACL entry ${JSON.stringify(spec)}`);
    entries.push({ tag, perm, id });
  }
  const has = (tag: number) => entries.some((e) => e.tag === tag);
  if (!has(ACL_TAGS.user_obj) || !has(ACL_TAGS.group_obj) || !has(ACL_TAGS.other)) {
    reject('an ACL needs user::, group:: and other:: entries');
  }
  if ((has(ACL_TAGS.user) || has(ACL_TAGS.group)) && !has(ACL_TAGS.mask)) {
    reject('an ACL with named user or group entries needs a mask:: entry');
  }
  entries.sort((a, b) => a.tag - b.tag || a.id - b.id);
  const out = Buffer.alloc(4 + entries.length * 8);
  out.writeUInt32LE(2, 0);
  entries.forEach((e, i) => {
    out.writeUInt16LE(e.tag, 4 + i * 8);
    out.writeUInt16LE(e.perm, 6 + i * 8);
    out.writeUInt32LE(e.id, 8 + i * 8);
  });
  return out;
}

const hostIds = new Map<string, number | undefined>();

/** A user or group id by name from the host's user database (getent: NSS, as libacl sees it). */
function hostId(kind: 'user' | 'group', name: string): number | undefined {
  const key = `${kind}:${name}`;
  // Portable user names only (never one getent could take for an option).
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\$?$/.test(name)) return undefined;
  if (!hostIds.has(key)) {
    const db = kind === 'user' ? 'passwd' : 'group';
    const result = spawnSync('getent', [db, name], { encoding: 'utf8' });
    const id = result.status === 0 ? result.stdout.split(':')[2] : undefined;
    hostIds.set(key, id !== undefined && /^[0-9]+$/.test(id) ? Number(id) : undefined);
  }
  return hostIds.get(key);
}

/**
 * The mode bits a file ends with once its access ACL (binary form) is set: the kernel takes the owner bits
 * from user::, the group bits from mask:: (group:: without a mask) and the other bits from other::.
 */
export function modeWithAcl(mode: number, acl: Buffer): number {
  let owner = 0;
  let group = -1;
  let groupObj = 0;
  let other = 0;
  for (let pos = 4; pos + 8 <= acl.length; pos += 8) {
    const tag = acl.readUInt16LE(pos);
    const perm = acl.readUInt16LE(pos + 2) & 7;
    if (tag === ACL_TAGS.user_obj) owner = perm;
    else if (tag === ACL_TAGS.group_obj) groupObj = perm;
    else if (tag === ACL_TAGS.mask) group = perm;
    else if (tag === ACL_TAGS.other) other = perm;
  }
  return (mode & 0o7000) | (owner << 6) | ((group === -1 ? groupObj : group) << 3) | other;
}

/**
 * An access ACL (binary form) after a chmod to `mode`, as the kernel rewrites it (posix_acl_chmod): user::
 * and other:: take the owner and other bits, mask:: (group:: without a mask) the group bits.
 */
export function aclAfterChmod(acl: Buffer, mode: number): Buffer {
  const out = Buffer.from(acl);
  const hasMask = entriesOf(acl).some((tag) => tag === ACL_TAGS.mask);
  for (let pos = 4; pos + 8 <= out.length; pos += 8) {
    const tag = out.readUInt16LE(pos);
    if (tag === ACL_TAGS.user_obj) out.writeUInt16LE((mode >> 6) & 7, pos + 2);
    else if (tag === ACL_TAGS.other) out.writeUInt16LE(mode & 7, pos + 2);
    else if (tag === (hasMask ? ACL_TAGS.mask : ACL_TAGS.group_obj))
      out.writeUInt16LE((mode >> 3) & 7, pos + 2);
  }
  return out;
}

function entriesOf(acl: Buffer): number[] {
  const tags: number[] = [];
  for (let pos = 4; pos + 8 <= acl.length; pos += 8) tags.push(acl.readUInt16LE(pos));
  return tags;
}
