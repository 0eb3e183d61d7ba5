// Behavioural contract of KeyService (KMS).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KeyService } from '#ports';

export type KeyServiceFactory = () => Promise<{
  keys: KeyService;
  /** A key of `ownerAccountId`, and another account of the organization. */
  keyId: string;
  ownerAccountId: string;
  otherAccountId: string;
  cleanup?: () => Promise<void>;
}>;

export function keyServiceContract(name: string, factory: KeyServiceFactory): void {
  describe(`Contract: KeyService (${name})`, () => {
    it('wraps a data key that the owner can unwrap with the same context only', async () => {
      const { keys, keyId, ownerAccountId, cleanup } = await factory();
      try {
        // act
        const dataKey = await keys.generateDataKey(keyId, { stream: 'web' });
        const plaintext = await keys.decrypt(dataKey.ciphertext, { stream: 'web' }, ownerAccountId);
        // assess
        assert.equal(dataKey.plaintext.length, 32);
        assert.notDeepEqual(dataKey.ciphertext, dataKey.plaintext);
        assert.deepEqual(plaintext, dataKey.plaintext);
        await assert.rejects(keys.decrypt(dataKey.ciphertext, { stream: 'other' }, ownerAccountId));
      } finally {
        await cleanup?.();
      }
    });

    it('refuses another account until it holds a grant', async () => {
      const { keys, keyId, otherAccountId, cleanup } = await factory();
      try {
        // prepare
        const dataKey = await keys.generateDataKey(keyId, { stream: 'web' });
        // act / assess
        await assert.rejects(keys.decrypt(dataKey.ciphertext, { stream: 'web' }, otherAccountId));
        const grant = await keys.createGrant(keyId, `arn:aws:iam::${otherAccountId}:root`, [
          'Decrypt',
          'DescribeKey',
        ]);
        assert.ok(grant.grantId);
        assert.deepEqual(
          await keys.decrypt(dataKey.ciphertext, { stream: 'web' }, otherAccountId),
          dataKey.plaintext,
        );
      } finally {
        await cleanup?.();
      }
    });

    it('describes the key with its owner account', async () => {
      const { keys, keyId, ownerAccountId, cleanup } = await factory();
      try {
        // act
        const described = await keys.describeKey(keyId);
        // assess
        assert.equal(described.accountId, ownerAccountId);
        assert.ok(described.arn.includes(described.keyId));
        assert.equal(described.state, 'Enabled');
      } finally {
        await cleanup?.();
      }
    });

    it("lists the key's grants, every page, or those of one grantee", async () => {
      const { keys, keyId, otherAccountId, cleanup } = await factory();
      try {
        // prepare
        const asg = `arn:aws:iam::${otherAccountId}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling`;
        const root = `arn:aws:iam::${otherAccountId}:root`;
        await keys.createGrant(keyId, asg, ['Decrypt', 'CreateGrant']);
        await keys.createGrant(keyId, root, ['Decrypt']);
        await keys.createGrant(keyId, asg, ['DescribeKey']);
        // act
        const all = await keys.listGrants(keyId);
        const mine = await keys.listGrants(keyId, asg);
        // assess
        assert.equal(all.length, 3);
        assert.deepEqual(mine.map((g) => [g.granteePrincipal, [...g.operations].sort()]).sort(), [
          [asg, ['CreateGrant', 'Decrypt']],
          [asg, ['DescribeKey']],
        ]);
        assert.ok(mine.every((g) => g.grantId.length > 0));
      } finally {
        await cleanup?.();
      }
    });
  });
}
