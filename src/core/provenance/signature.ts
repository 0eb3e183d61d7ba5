// The signature scheme of a tarball: ECDSA P-256 over the SHA-256 of its exact bytes, the signature DER-encoded
// (ANSI X9.62 / RFC 3279) — what KMS Sign (ECC_NIST_P256, ECDSA_SHA_256, MessageType DIGEST) returns, and what
// `openssl dgst -sha256 -sign key.pem` and `cosign sign-blob --key` make over the file. Verifying needs only the
// digest, never the bytes, so ingest can check a multi-gigabyte upload in milliseconds.
//
// node:crypto signs and verifies messages only (it hashes them itself); a precomputed digest needs an ECDSA that
// takes one, which @noble/curves (audited, no dependencies) provides. Keys are parsed with node:crypto.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { InputError } from '#errors';

/** The signing algorithm, as KMS names it. */
export const SIGNING_ALGORITHM = 'ECDSA_SHA_256';
/** The KMS key spec of a signing key stemcell accepts. */
export const SIGNING_KEY_SPEC = 'ECC_NIST_P256';

/** A key, text or file, that is not a P-256 key: the message names it. */
export class SigningKeyError extends InputError {
  override readonly name = 'SigningKeyError';
}

/** A P-256 public key: its DER SubjectPublicKeyInfo and the uncompressed point ECDSA verifies with. */
export interface P256PublicKey {
  spki: Buffer;
  point: Uint8Array;
}

const isPem = (text: string) => /-----BEGIN [A-Z ]+-----/.test(text);

/** A P-256 public key from PEM text (SubjectPublicKeyInfo) or DER bytes (KMS GetPublicKey); `what` names it. */
export function p256PublicKey(input: string | Buffer, what: string): P256PublicKey {
  let key: KeyObject;
  try {
    key =
      typeof input === 'string'
        ? createPublicKey(input)
        : createPublicKey({ key: input, format: 'der', type: 'spki' });
  } catch (err) {
    throw new SigningKeyError(`${what}: not a PEM or DER public key (${(err as Error).message})`, {
      cause: err,
    });
  }
  return fromKeyObject(key, what);
}

function fromKeyObject(key: KeyObject, what: string): P256PublicKey {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new SigningKeyError(
      `${what}: a ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''} key; stemcell signatures are ECDSA P-256 (prime256v1)`,
    );
  }
  const jwk = key.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.from([4]),
    Buffer.from(jwk.x as string, 'base64url'),
    Buffer.from(jwk.y as string, 'base64url'),
  ]);
  return { spki: key.export({ format: 'der', type: 'spki' }), point };
}

/** The id of a key pair held outside AWS: `sha256:` and the hex SHA-256 of its public key's DER. */
export function publicKeyId(spki: Buffer): string {
  return `sha256:${createHash('sha256').update(spki).digest('hex')}`;
}

/** True when `signature` (DER) is an ECDSA P-256 signature over the SHA-256 digest `sha256Hex` by `key`. */
export function verifyDigest(key: P256PublicKey, sha256Hex: string, signature: Buffer): boolean {
  if (!/^[0-9a-f]{64}$/.test(sha256Hex)) return false;
  try {
    // lowS false: KMS and OpenSSL do not normalise s, so half their valid signatures have a high s.
    return p256.verify(signature, Buffer.from(sha256Hex, 'hex'), key.point, {
      prehash: false,
      lowS: false,
      format: 'der',
    });
  } catch {
    // A malformed DER signature is not a valid one.
    return false;
  }
}

/** A P-256 private key (PEM: PKCS#8 or SEC1 "EC PRIVATE KEY") that signs digests; `what` names it. */
export interface P256PrivateKey {
  keyId: string;
  publicKey: P256PublicKey;
  signDigest(sha256Hex: string): Buffer;
}

export function p256PrivateKey(pem: string, what: string): P256PrivateKey {
  if (!isPem(pem)) throw new SigningKeyError(`${what}: not a PEM private key`);
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new SigningKeyError(
      `${what}: not a readable PEM private key (${(err as Error).message}; an encrypted cosign.key must be decrypted first, or sign with cosign and pass the signature)`,
      { cause: err },
    );
  }
  const publicKey = fromKeyObject(createPublicKey(key), what);
  const scalar = Buffer.from(key.export({ format: 'jwk' }).d as string, 'base64url');
  return {
    keyId: publicKeyId(publicKey.spki),
    publicKey,
    signDigest: (sha256Hex) =>
      Buffer.from(
        p256.sign(Buffer.from(sha256Hex, 'hex'), scalar, { prehash: false, lowS: false, format: 'der' }),
      ),
  };
}
