// Fakes for provenance: a KMS with asymmetric signing keys (counts GetPublicKey), PEM key pairs as openssl
// makes them, a bucket that keeps (or not) its own SHA-256 of each body, and signed uploads.
import { createHash, generateKeyPairSync } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SHA256_METADATA_KEY, SIGNATURE_METADATA_KEY, SIGNER_METADATA_KEY } from '#core/model/naming.ts';
import { p256PrivateKey } from '#core/provenance/signature.ts';
import type { ObjectStore, PublicKeyInfo, SigningKeys, StoredObject } from '#ports';

export const KMS_KEY_ARN = 'arn:aws:kms:eu-west-1:111111111111:key/0f1e2d3c-4b5a-4968-8776-655443322110';
export const OTHER_KMS_KEY_ARN =
  'arn:aws:kms:eu-west-1:222222222222:key/99999999-8888-4777-8666-555555555555';

/** A P-256 key pair in PEM, as `openssl ecparam -genkey -name prime256v1` and `openssl ec -pubout` make them. */
export function pemKeyPair(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privateKeyPem = privateKey.export({ format: 'pem', type: 'sec1' }).toString();
  return {
    privateKeyPem,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyId: p256PrivateKey(privateKeyPem, 'test key').keyId,
  };
}

/** KMS with ECC_NIST_P256 signing keys; `getPublicKeyCalls` counts GetPublicKey per key. */
export class FakeKms implements SigningKeys {
  readonly #keys = new Map<string, ReturnType<typeof p256PrivateKey>>();
  readonly getPublicKeyCalls = new Map<string, number>();
  addKey(arn: string): void {
    this.#keys.set(arn, p256PrivateKey(pemKeyPair().privateKeyPem, arn));
  }
  async getPublicKey(keyId: string): Promise<PublicKeyInfo> {
    this.getPublicKeyCalls.set(keyId, (this.getPublicKeyCalls.get(keyId) ?? 0) + 1);
    const key = this.#keys.get(keyId);
    if (!key) throw Object.assign(new Error(`Key '${keyId}' does not exist`), { name: 'NotFoundException' });
    return {
      keyId,
      keySpec: 'ECC_NIST_P256',
      keyUsage: 'SIGN_VERIFY',
      signingAlgorithms: ['ECDSA_SHA_256'],
      publicKey: key.publicKey.spki,
    };
  }
  async signDigest(keyId: string, digest: Buffer): Promise<{ keyId: string; signature: Buffer }> {
    const key = this.#keys.get(keyId);
    if (!key) throw new Error(`Key '${keyId}' does not exist`);
    return { keyId, signature: key.signDigest(digest.toString('hex')) };
  }
}

/**
 * A bucket whose etag is the body's MD5, and that keeps a full-object SHA-256 of each body (as S3 does for a
 * single-part upload with ChecksumAlgorithm SHA256) unless `checksums` is false (a multipart upload).
 */
export class ChecksummingObjects implements ObjectStore {
  readonly bucket = 'stemcell-tarballs';
  readonly objects = new Map<string, StoredObject>();
  puts = 0;
  readonly checksums: boolean;
  constructor(checksums = true) {
    this.checksums = checksums;
  }
  async put(key: string, body: Readable | Buffer, metadata: Record<string, string> = {}) {
    if (!Buffer.isBuffer(body)) throw new Error('buffers only in this fake');
    this.puts++;
    const object: StoredObject = {
      bucket: this.bucket,
      key,
      etag: createHash('md5').update(body).digest('hex'),
      size: body.length,
      versionId: `v${this.puts}`,
      metadata,
      ...(this.checksums ? { checksumSha256: createHash('sha256').update(body).digest('hex') } : {}),
    };
    this.objects.set(key, object);
    return object;
  }
  async head(key: string) {
    return this.objects.get(key);
  }
  async get(): Promise<never> {
    throw new Error('not in this fake');
  }
}

export const sha256Hex = (body: Buffer) => createHash('sha256').update(body).digest('hex');

/** The metadata `stemcell publish --sign` writes: the SHA-256 of `body`, and a signature over it. */
export function signedMetadata(sha256: string, signature: Buffer, signer?: string): Record<string, string> {
  return {
    [SHA256_METADATA_KEY]: sha256,
    [SIGNATURE_METADATA_KEY]: signature.toString('base64'),
    ...(signer ? { [SIGNER_METADATA_KEY]: signer } : {}),
  };
}
