import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LocalKeyService } from '#local/key-service.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-kms-'));
  roots.push(r);
  return r;
}

const HOME = '111111111111';
const MEMBER = '222222222222';
const context = { 'aws:ebs:id': 'vol-1', stream: 'web' };

function kms(root: string) {
  return new LocalKeyService(root, { accountId: HOME, region: 'eu-west-1' });
}

describe('Class: LocalKeyService', () => {
  it('wraps data keys that the owner can unwrap with the same context, in any key order', async () => {
    // prepare
    const keys = kms(tempRoot());
    const { keyId } = keys.createKey({ alias: 'alias/stemcell' });
    // act
    const dataKey = await keys.generateDataKey('alias/stemcell', context);
    const plain = await keys.decrypt(dataKey.ciphertext, { stream: 'web', 'aws:ebs:id': 'vol-1' }, HOME);
    // assess
    assert.equal(dataKey.plaintext.length, 32);
    assert.ok(!dataKey.ciphertext.includes(dataKey.plaintext), 'the wrapped key does not hold the plaintext');
    assert.deepEqual(plain, dataKey.plaintext);
    assert.equal((await keys.describeKey('alias/stemcell')).keyId, keyId);
  });

  it('refuses to unwrap under another encryption context', async () => {
    const keys = kms(tempRoot());
    keys.createKey({ alias: 'alias/stemcell' });
    const dataKey = await keys.generateDataKey('alias/stemcell', context);
    await assert.rejects(keys.decrypt(dataKey.ciphertext, { ...context, stream: 'db' }, HOME), {
      name: 'InvalidCiphertextException',
    });
  });

  it('refuses decrypt to an account without a grant, naming the key and the account, until a grant exists', async () => {
    // prepare
    const keys = kms(tempRoot());
    const { arn } = keys.createKey({ alias: 'alias/stemcell' });
    const dataKey = await keys.generateDataKey(arn, context);
    // act + assess
    await assert.rejects(keys.decrypt(dataKey.ciphertext, context, MEMBER), (err: Error) => {
      assert.equal(err.name, 'AccessDeniedException');
      assert.match(err.message, new RegExp(MEMBER));
      assert.ok(err.message.includes(arn), err.message);
      return true;
    });
    const autoScaling = `arn:aws:iam::${MEMBER}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
    const grant = await keys.createGrant(arn, autoScaling, ['Decrypt', 'GenerateDataKeyWithoutPlaintext']);
    assert.deepEqual(await keys.decrypt(dataKey.ciphertext, context, autoScaling), dataKey.plaintext);
    await assert.rejects(
      keys.decrypt(dataKey.ciphertext, context, MEMBER),
      { name: 'AccessDeniedException' },
      'the grant is for the Auto Scaling role, not the whole account',
    );
    assert.match(grant.grantId, /^[0-9a-f]{64}$/);
  });

  it('does not let a grant for other operations decrypt', async () => {
    const keys = kms(tempRoot());
    const { keyId } = keys.createKey();
    const dataKey = await keys.generateDataKey(keyId, context);
    await keys.createGrant(keyId, MEMBER, ['DescribeKey']);
    await assert.rejects(keys.decrypt(dataKey.ciphertext, context, MEMBER), {
      name: 'AccessDeniedException',
    });
  });

  it('returns the same grant id for the same grant, and rejects unknown operations', async () => {
    const keys = kms(tempRoot());
    const { keyId } = keys.createKey();
    const a = await keys.createGrant(keyId, MEMBER, ['Decrypt', 'CreateGrant']);
    const b = await keys.createGrant(keyId, MEMBER, ['CreateGrant', 'Decrypt']);
    assert.equal(a.grantId, b.grantId);
    assert.equal((await keys.listGrants(keyId)).length, 1);
    await assert.rejects(keys.createGrant(keyId, MEMBER, ['Everything']), { name: 'ValidationException' });
  });

  it('stores master keys with mode 0600 and keeps keys and grants across instances', async () => {
    // prepare
    const root = tempRoot();
    const first = kms(root);
    const { keyId } = first.ensureKey('alias/stemcell');
    const dataKey = await first.generateDataKey(keyId, context);
    await first.createGrant(keyId, MEMBER, ['Decrypt']);
    // act
    const second = kms(root);
    // assess
    assert.equal(statSync(join(root, 'keys', `${keyId}.key`)).mode & 0o777, 0o600);
    assert.equal(second.ensureKey('alias/stemcell').keyId, keyId);
    assert.deepEqual(await second.decrypt(dataKey.ciphertext, context, MEMBER), dataKey.plaintext);
  });

  it('reports unknown keys as NotFoundException', async () => {
    const keys = kms(tempRoot());
    await assert.rejects(keys.generateDataKey('alias/missing', {}), {
      name: 'NotFoundException',
      message: /alias\/missing/,
    });
    await assert.rejects(keys.decrypt(Buffer.from('junk'), {}, HOME), { name: 'InvalidCiphertextException' });
  });
});
