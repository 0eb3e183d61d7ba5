// KeyService on KMS. Decrypt runs with the caller's credentials: pass a client per account where the
// caller is not this process's own account. A member's subscriber asks, with its own client, DescribeKey and
// ListGrants on the publisher's key before it moves a launch template (src/aws/launch-model.ts).
import {
  CreateGrantCommand,
  DecryptCommand,
  DescribeKeyCommand,
  GenerateDataKeyCommand,
  type GrantOperation,
  KMSClient,
  paginateListGrants,
} from '@aws-sdk/client-kms';
import type { DataKey, KeyDescription, KeyService } from '#ports';

export class KmsKeyService implements KeyService {
  readonly #kms: KMSClient;
  readonly #forAccount: ((accountId: string) => KMSClient) | undefined;

  constructor(options: { client?: KMSClient; clientForAccount?: (accountId: string) => KMSClient } = {}) {
    this.#kms = options.client ?? new KMSClient({ retryMode: 'adaptive' });
    this.#forAccount = options.clientForAccount;
  }

  async generateDataKey(keyId: string, context: Record<string, string>): Promise<DataKey> {
    const out = await this.#kms.send(
      new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }),
    );
    if (!out.Plaintext || !out.CiphertextBlob) throw new Error(`GenerateDataKey ${keyId} returned no key`);
    return { plaintext: Buffer.from(out.Plaintext), ciphertext: Buffer.from(out.CiphertextBlob) };
  }

  async decrypt(
    ciphertext: Buffer,
    context: Record<string, string>,
    callerAccountId: string,
  ): Promise<Buffer> {
    const kms = this.#forAccount?.(callerAccountId) ?? this.#kms;
    const out = await kms.send(
      new DecryptCommand({ CiphertextBlob: ciphertext, EncryptionContext: context }),
    );
    if (!out.Plaintext) throw new Error(`Decrypt as ${callerAccountId} returned no plaintext`);
    return Buffer.from(out.Plaintext);
  }

  async createGrant(
    keyId: string,
    granteePrincipal: string,
    operations: string[],
  ): Promise<{ grantId: string }> {
    const out = await this.#kms.send(
      new CreateGrantCommand({
        KeyId: keyId,
        GranteePrincipal: granteePrincipal,
        Operations: operations as GrantOperation[],
      }),
    );
    if (!out.GrantId) throw new Error(`CreateGrant on ${keyId} for ${granteePrincipal} returned no GrantId`);
    return { grantId: out.GrantId };
  }

  async describeKey(keyId: string): Promise<KeyDescription> {
    const out = await this.#kms.send(new DescribeKeyCommand({ KeyId: keyId }));
    const m = out.KeyMetadata;
    if (!m?.KeyId || !m.Arn || !m.AWSAccountId) throw new Error(`DescribeKey ${keyId} returned no metadata`);
    return { keyId: m.KeyId, arn: m.Arn, accountId: m.AWSAccountId, state: m.KeyState ?? 'Unavailable' };
  }

  /** ListGrants, every page. Another account's key is named by its key ARN. */
  async listGrants(
    keyId: string,
    granteePrincipal?: string,
  ): Promise<{ grantId: string; granteePrincipal: string; operations: string[] }[]> {
    const grants: { grantId: string; granteePrincipal: string; operations: string[] }[] = [];
    const pages = paginateListGrants(
      { client: this.#kms },
      { KeyId: keyId, ...(granteePrincipal ? { GranteePrincipal: granteePrincipal } : {}) },
    );
    for await (const page of pages) {
      for (const g of page.Grants ?? []) {
        grants.push({
          grantId: g.GrantId ?? '',
          granteePrincipal: g.GranteePrincipal ?? '',
          operations: [...(g.Operations ?? [])],
        });
      }
    }
    return grants;
  }
}
