// SigningKeys on KMS: GetPublicKey for ingest (the public half of each trusted key, read once per key by the
// core's cache), Sign for `stemcell sign` / `publish --sign` (the release pipeline's role). A key ARN names its
// region, and each call goes to that region: the signing key may live in another region or account.
import { GetPublicKeyCommand, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import type { PublicKeyInfo, SigningKeys } from '#ports';

const KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/.+$/;

export class KmsSigningKeys implements SigningKeys {
  readonly #client: (region: string) => KMSClient;
  readonly #defaultRegion: string;

  /**
   * `client(region)`: the KMS client of a region (default: one per region with the SDK's default credentials);
   * key ids that are not ARNs go to `defaultRegion`.
   */
  constructor(options: { client?: (region: string) => KMSClient; defaultRegion: string }) {
    const made = new Map<string, KMSClient>();
    this.#client =
      options.client ??
      ((region) => {
        let client = made.get(region);
        if (!client) {
          client = new KMSClient({ region, retryMode: 'adaptive' });
          made.set(region, client);
        }
        return client;
      });
    this.#defaultRegion = options.defaultRegion;
  }

  #kms(keyId: string): KMSClient {
    return this.#client(KEY_ARN.exec(keyId)?.[1] ?? this.#defaultRegion);
  }

  async getPublicKey(keyId: string): Promise<PublicKeyInfo> {
    const out = await this.#kms(keyId).send(new GetPublicKeyCommand({ KeyId: keyId }));
    if (!out.PublicKey || !out.KeyId) throw new Error(`GetPublicKey ${keyId} returned no public key`);
    return {
      keyId: out.KeyId,
      keySpec: out.KeySpec ?? '',
      keyUsage: out.KeyUsage ?? '',
      signingAlgorithms: out.SigningAlgorithms ?? [],
      publicKey: Buffer.from(out.PublicKey),
    };
  }

  async signDigest(keyId: string, digest: Buffer): Promise<{ keyId: string; signature: Buffer }> {
    const out = await this.#kms(keyId).send(
      new SignCommand({
        KeyId: keyId,
        Message: digest,
        MessageType: 'DIGEST',
        SigningAlgorithm: 'ECDSA_SHA_256',
      }),
    );
    if (!out.Signature || !out.KeyId) throw new Error(`Sign with ${keyId} returned no signature`);
    return { keyId: out.KeyId, signature: Buffer.from(out.Signature) };
  }
}
