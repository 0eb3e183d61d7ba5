// Signing and verifying tarballs from the command line (`stemcell sign`, `stemcell verify`, `publish --sign`):
// the SHA-256 of the exact bytes, then an ECDSA P-256 signature over it by a KMS key (Sign, MessageType DIGEST) or
// a PEM private key. KMS key ARNs go to the local key service of --data, or to AWS KMS with --aws.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { KMS_KEY_ARN } from '#config/schema.ts';
import { SHA256_METADATA_KEY, SIGNATURE_METADATA_KEY, SIGNER_METADATA_KEY } from '#core/model/naming.ts';
import {
  type P256PublicKey,
  p256PrivateKey,
  p256PublicKey,
  publicKeyId,
  SigningKeyError,
} from '#core/provenance/signature.ts';
import type { SigningKeys } from '#ports';
import { CliError } from './errors.ts';

export interface KeyServiceOptions {
  /** The local data folder whose key service holds local KMS keys. */
  data: string;
  /** Use AWS KMS (the SDK's default credentials) for KMS key ARNs. */
  aws?: boolean;
  /** The local key service's account and region (the configuration's management account and home region). */
  accountId: string;
  region: string;
}

export interface TarballSignature {
  sha256: string;
  signer: string;
  /** Base64 of the DER signature. */
  signature: string;
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    await pipeline(createReadStream(path), hash);
  } catch (err) {
    throw new CliError(`${path}: cannot read (${(err as Error).message})`, 2, { cause: err });
  }
  return hash.digest('hex');
}

async function kmsKeys(options: KeyServiceOptions): Promise<SigningKeys> {
  if (options.aws) {
    const { KmsSigningKeys } = await import('#aws/signing-keys.ts');
    return new KmsSigningKeys({ defaultRegion: options.region });
  }
  const { LocalKeyService } = await import('#local/key-service.ts');
  return new LocalKeyService(join(options.data, 'kms'), {
    accountId: options.accountId,
    region: options.region,
  });
}

const isKmsKey = (ref: string) => ref.startsWith('arn:');

function requireKeyArn(ref: string): void {
  if (!KMS_KEY_ARN.test(ref))
    throw new CliError(`${ref}: not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)`, 2);
}

/** Signs the SHA-256 `sha256` with `keyRef`: a KMS key ARN, or a PEM private key file. */
export async function signDigest(
  sha256: string,
  keyRef: string,
  options: KeyServiceOptions,
): Promise<TarballSignature> {
  if (isKmsKey(keyRef)) {
    requireKeyArn(keyRef);
    const keys = await kmsKeys(options);
    try {
      const { keyId, signature } = await keys.signDigest(keyRef, Buffer.from(sha256, 'hex'));
      return { sha256, signer: keyId, signature: signature.toString('base64') };
    } catch (err) {
      throw new CliError(`--sign ${keyRef}: KMS Sign failed: ${(err as Error).message}`, 1, { cause: err });
    }
  }
  const pem = await readFile(keyRef, 'utf8').catch((err: Error) => {
    throw new CliError(`${keyRef}: cannot read the private key (${err.message})`, 2, { cause: err });
  });
  try {
    const key = p256PrivateKey(pem, keyRef);
    return { sha256, signer: key.keyId, signature: key.signDigest(sha256).toString('base64') };
  } catch (err) {
    if (err instanceof SigningKeyError) throw new CliError(err.message, 2, { cause: err });
    throw err;
  }
}

/** The public key `keyRef` names (KMS key ARN, or PEM public key file), and its id. */
export async function publicKeyOf(
  keyRef: string,
  options: KeyServiceOptions,
): Promise<{ keyId: string; key: P256PublicKey }> {
  try {
    if (isKmsKey(keyRef)) {
      requireKeyArn(keyRef);
      const info = await (await kmsKeys(options)).getPublicKey(keyRef);
      return { keyId: info.keyId, key: p256PublicKey(info.publicKey, keyRef) };
    }
    const pem = await readFile(keyRef, 'utf8').catch((err: Error) => {
      throw new CliError(`${keyRef}: cannot read the public key (${err.message})`, 2, { cause: err });
    });
    const key = p256PublicKey(pem, keyRef);
    return { keyId: publicKeyId(key.spki), key };
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${keyRef}: ${(err as Error).message}`, 2, { cause: err });
  }
}

/** The S3 user metadata a signed upload carries (x-amz-meta-…), written with the object in one PutObject. */
export function signatureMetadata(s: TarballSignature): Record<string, string> {
  return {
    [SHA256_METADATA_KEY]: s.sha256,
    [SIGNATURE_METADATA_KEY]: s.signature,
    [SIGNER_METADATA_KEY]: s.signer,
  };
}
