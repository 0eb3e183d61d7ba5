// Stateful fake of KMS for one key: data keys wrapped with the key, decrypt allowed to the key's account and
// to grantees, encryption context enforced; DescribeKey with its state, ListGrants by grantee; GetPublicKey of
// the signing keys a test registers.
// Kept for the role-vs-code test (test/support/role-world.ts) and the launch-model contract; why moto cannot
// stand in there: common.ts.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  CreateGrantCommand,
  DecryptCommand,
  DescribeKeyCommand,
  GenerateDataKeyCommand,
  GetPublicKeyCommand,
  KMSClient,
  ListGrantsCommand,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { ACCOUNT, awsError, fakeId } from './common.ts';

function contextAad(context: Record<string, string> | undefined): Buffer {
  const sorted = Object.keys(context ?? {})
    .sort()
    .map((k) => [k, context?.[k]]);
  return Buffer.from(JSON.stringify(sorted));
}

export class FakeKms {
  readonly keyId = '1234abcd-12ab-34cd-56ef-1234567890ab';
  /** The key's ARN; a test of a resolved deployment sets the one its templates name (a multi-Region key's). */
  arn = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/${this.keyId}`;
  readonly owner = ACCOUNT;
  readonly grants = new Map<string, { grantee: string; operations: string[] }>();
  /** Asymmetric signing keys (ECC_NIST_P256) by key ARN: their DER public keys, for GetPublicKey. */
  readonly signingKeys = new Map<string, Buffer>();
  /** KeyState DescribeKey reports. */
  state = 'Enabled';
  readonly #master = randomBytes(32);

  #resolves(keyId: string | undefined): boolean {
    return keyId === this.keyId || keyId === this.arn || keyId === 'alias/stemcell';
  }

  /** A client acting as `accountId` (the credentials decide who calls, as on AWS). */
  client(accountId: string = ACCOUNT): KMSClient {
    const client = new KMSClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    mock.on(GenerateDataKeyCommand).callsFake((input) => {
      if (!this.#resolves(input.KeyId)) throw awsError('NotFoundException', `key ${input.KeyId} not found`);
      const plaintext = randomBytes(32);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', this.#master, iv);
      cipher.setAAD(contextAad(input.EncryptionContext));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return {
        KeyId: this.arn,
        Plaintext: new Uint8Array(plaintext),
        CiphertextBlob: new Uint8Array(Buffer.concat([iv, cipher.getAuthTag(), body])),
      };
    });
    // Who may read a public key is the key policy's and IAM's to say (the role-vs-code simulator), not the fake's.
    mock.on(GetPublicKeyCommand).callsFake((input) => {
      const publicKey = this.signingKeys.get(input.KeyId ?? '');
      if (!publicKey) throw awsError('NotFoundException', `key ${input.KeyId} not found`);
      return {
        KeyId: input.KeyId,
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        SigningAlgorithms: ['ECDSA_SHA_256'],
        PublicKey: new Uint8Array(publicKey),
      };
    });
    mock.on(DecryptCommand).callsFake((input) => {
      const allowed =
        accountId === this.owner ||
        [...this.grants.values()].some(
          (g) => g.grantee.includes(accountId) && g.operations.includes('Decrypt'),
        );
      if (!allowed)
        throw awsError('AccessDeniedException', `account ${accountId} may not use key ${this.keyId}`);
      const blob = Buffer.from(input.CiphertextBlob);
      try {
        const decipher = createDecipheriv('aes-256-gcm', this.#master, blob.subarray(0, 12));
        decipher.setAuthTag(blob.subarray(12, 28));
        decipher.setAAD(contextAad(input.EncryptionContext));
        const plaintext = Buffer.concat([decipher.update(blob.subarray(28)), decipher.final()]);
        return { KeyId: this.arn, Plaintext: new Uint8Array(plaintext) };
      } catch {
        throw awsError('InvalidCiphertextException');
      }
    });
    mock.on(CreateGrantCommand).callsFake((input) => {
      if (!this.#resolves(input.KeyId)) throw awsError('NotFoundException');
      const grantId = fakeId('grant', 32);
      this.grants.set(grantId, { grantee: input.GranteePrincipal, operations: input.Operations ?? [] });
      return { GrantId: grantId, GrantToken: 'token' };
    });
    mock.on(DescribeKeyCommand).callsFake((input) => {
      if (!this.#resolves(input.KeyId))
        throw awsError('NotFoundException', `Key '${input.KeyId}' does not exist`);
      return {
        KeyMetadata: { KeyId: this.keyId, Arn: this.arn, AWSAccountId: this.owner, KeyState: this.state },
      };
    });
    mock.on(ListGrantsCommand).callsFake((input) => {
      if (!this.#resolves(input.KeyId))
        throw awsError('NotFoundException', `Key '${input.KeyId}' does not exist`);
      const grants = [...this.grants]
        .filter(([, g]) => !input.GranteePrincipal || g.grantee === input.GranteePrincipal)
        .map(([id, g]) => ({
          GrantId: id,
          KeyId: this.arn,
          GranteePrincipal: g.grantee,
          Operations: g.operations,
        }));
      // One grant a page, so that a reader that stops after the first page misses some.
      const start = Number(input.Marker ?? 0);
      const more = start + 1 < grants.length;
      return {
        Grants: grants.slice(start, start + 1),
        Truncated: more,
        ...(more ? { NextMarker: String(start + 1) } : {}),
      };
    });
    return client;
  }

  /** RevokeGrant of every grant to `grantee`. */
  revokeGrants(grantee: string): void {
    for (const [id, g] of this.grants) if (g.grantee === grantee) this.grants.delete(id);
  }
}
