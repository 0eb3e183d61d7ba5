import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aclAfterChmod, modeWithAcl, posixAclXattr } from '#unpack/acl.ts';

const fail = (reason: string): never => {
  throw new Error(reason);
};
// What GNU tar --acls (through libacl and the kernel) stored for this ACL, read back with getfattr -e hex.
const GNU_TAR_STORED =
  '0200000001000600ffffffff02000700e803000004000400ffffffff10000700ffffffff20000000ffffffff';

describe('Function: posixAclXattr()', () => {
  it('encodes the text form as the kernel stores it, whatever the separators and order', () => {
    // act
    const newline = posixAclXattr('user::rw-\nuser:1000:rwx\ngroup::r--\nmask::rwx\nother::---\n', fail);
    const commas = posixAclXattr('other::---,mask::rwx,g::r--,u:1000:rwx,u::rw-', fail);
    // assess
    assert.equal(newline.toString('hex'), GNU_TAR_STORED);
    assert.equal(commas.toString('hex'), GNU_TAR_STORED);
  });

  it('resolves names through the resolver and refuses the ones it does not know', () => {
    // prepare
    const resolve = (_kind: 'user' | 'group', name: string) => (name === 'cloudsdk' ? 1000 : undefined);
    // act
    const named = posixAclXattr('user::rw-,user:cloudsdk:rwx,group::r--,mask::rwx,other::---', fail, resolve);
    // assess
    assert.equal(named.toString('hex'), GNU_TAR_STORED);
    assert.throws(
      () => posixAclXattr('user::rw-,user:nobody-here:rwx,group::r--,mask::rwx,other::---', fail, resolve),
      /no user "nobody-here"/,
    );
  });
});

describe('Function: modeWithAcl() and aclAfterChmod()', () => {
  it('take the group bits from the mask, as the kernel does', () => {
    // prepare
    const acl = Buffer.from(GNU_TAR_STORED, 'hex');
    // act + assess
    assert.equal(modeWithAcl(0o4640, acl).toString(8), '4670');
    const chmodded = aclAfterChmod(acl, 0o640);
    assert.equal(modeWithAcl(0o640, chmodded).toString(8), '640');
    // the named entry is untouched by a chmod
    assert.equal(chmodded.readUInt16LE(14), 7);
  });
});
