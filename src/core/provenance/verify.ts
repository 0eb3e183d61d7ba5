// Provenance at ingest: is this upload signed, over the SHA-256 it records, by a key its stream trusts? Checked
// before the release is created, so a refused upload takes no sequence and queues no build. The digest is the
// recorded one (x-amz-meta-sha256); where the store holds its own full-object SHA-256 of the bytes, the two must
// agree, and the builder checks the bytes it streams against the same digest before it snapshots.
import { isPemText, type ProvenanceConfig } from '#config/schema.ts';
import { DependencyError, InputError } from '#errors';
import type { ProvenanceCheck } from '#events/stemcell.ts';
import type { SigningKeys, StoredObject } from '#ports';
import { SHA256_METADATA_KEY, SIGNATURE_METADATA_KEY, SIGNER_METADATA_KEY } from '../model/naming.ts';
import {
  type P256PublicKey,
  p256PublicKey,
  publicKeyId,
  SIGNING_ALGORITHM,
  SIGNING_KEY_SPEC,
  verifyDigest,
} from './signature.ts';

/** An upload refused for its provenance; `check` says which check, the message names the object. */
export class ProvenanceError extends InputError {
  override readonly name = 'ProvenanceError';
  readonly check: ProvenanceCheck;
  /** The signer the upload named, when it named one. */
  readonly signer: string | undefined;
  constructor(check: ProvenanceCheck, message: string, signer?: string) {
    super(message);
    this.check = check;
    this.signer = signer;
  }
}

/** A trusted key, resolved: its id (KMS key ARN or sha256:<hex>) and its public half. */
export interface ResolvedKey {
  keyId: string;
  key: P256PublicKey;
}

/** What ingest records of a verified upload (SourceRef's signer fields). */
export interface VerifiedSignature {
  sha256: string;
  signer: string;
  signature: string;
  signerPublicKey: string;
}

/**
 * The trusted keys of every stream, resolved once: a PEM is parsed at first use, a KMS key's public half is read
 * with GetPublicKey once per key for the life of the process (a Lambda container), as KMS advises.
 */
export class TrustedKeys {
  readonly #keys: SigningKeys | undefined;
  readonly #resolved = new Map<string, Promise<ResolvedKey>>();

  constructor(keys: SigningKeys | undefined) {
    this.#keys = keys;
  }

  /** The key a configured entry (KMS key ARN or PEM text) names. */
  resolve(entry: string): Promise<ResolvedKey> {
    let found = this.#resolved.get(entry);
    if (!found) {
      found = isPemText(entry) ? Promise.resolve().then(() => pemKey(entry)) : this.#kmsKey(entry);
      this.#resolved.set(entry, found);
      // A failure is not cached: KMS may answer next time.
      found.catch(() => this.#resolved.delete(entry));
    }
    return found;
  }

  async #kmsKey(arn: string): Promise<ResolvedKey> {
    if (!this.#keys)
      throw new DependencyError(`trusted key ${arn}: no key service here to read its public key from`);
    let info: Awaited<ReturnType<SigningKeys['getPublicKey']>>;
    try {
      info = await this.#keys.getPublicKey(arn);
    } catch (err) {
      throw new DependencyError(`trusted key ${arn}: GetPublicKey failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (
      info.keySpec !== SIGNING_KEY_SPEC ||
      info.keyUsage !== 'SIGN_VERIFY' ||
      !info.signingAlgorithms.includes(SIGNING_ALGORITHM)
    ) {
      throw new ProvenanceError(
        'key',
        `trusted key ${arn} is a ${info.keySpec} ${info.keyUsage} key (algorithms ${info.signingAlgorithms.join(', ') || 'none'}); tarball signatures need ${SIGNING_KEY_SPEC}, SIGN_VERIFY, ${SIGNING_ALGORITHM}`,
      );
    }
    return { keyId: info.keyId, key: p256PublicKey(info.publicKey, `trusted key ${arn}`) };
  }
}

/** The id a configured trusted key goes by: the KMS key ARN itself, or sha256:<hex> of the PEM's DER. */
export function trustedKeyId(entry: string): string {
  return isPemText(entry) ? pemKey(entry).keyId : entry;
}

function pemKey(pem: string): ResolvedKey {
  const key = p256PublicKey(pem, 'trusted PEM key');
  return { keyId: publicKeyId(key.spki), key };
}

/** The signature fields an object carries in its metadata. */
export function signatureMetadata(object: Pick<StoredObject, 'metadata'>): {
  sha256?: string;
  signature?: string;
  signer?: string;
} {
  const get = (k: string) => object.metadata[k]?.trim() || undefined;
  const sha256 = get(SHA256_METADATA_KEY)?.toLowerCase();
  const signature = get(SIGNATURE_METADATA_KEY);
  const signer = get(SIGNER_METADATA_KEY);
  return {
    ...(sha256 ? { sha256 } : {}),
    ...(signature ? { signature } : {}),
    ...(signer ? { signer } : {}),
  };
}

/**
 * Verifies an upload to a stream with `provenance`; throws ProvenanceError naming the object and what failed.
 * Returns undefined for an unsigned upload to a stream that does not require a signature.
 */
export async function verifyUpload(
  trusted: TrustedKeys,
  stream: string,
  provenance: ProvenanceConfig,
  object: StoredObject,
): Promise<VerifiedSignature | undefined> {
  const where = `s3://${object.bucket}/${object.key}`;
  const { sha256, signature, signer } = signatureMetadata(object);
  if (!signature) {
    if (!provenance.required) return undefined;
    throw new ProvenanceError(
      'unsigned',
      `${where} carries no signature (x-amz-meta-${SIGNATURE_METADATA_KEY}), and stream ${stream} accepts only tarballs signed by a trusted key: sign it (stemcell publish --sign, or stemcell sign) and upload it again`,
      signer,
    );
  }
  if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw new ProvenanceError(
      'no-sha256',
      `${where} records no SHA-256 (x-amz-meta-${SHA256_METADATA_KEY}${sha256 ? ` is ${JSON.stringify(sha256)}` : ' is missing'}): nothing its signature could be over`,
      signer,
    );
  }
  if (object.checksumSha256 && object.checksumSha256 !== sha256) {
    throw new ProvenanceError(
      'bytes',
      `${where}: its bytes have SHA-256 ${object.checksumSha256} (the store's own checksum), not the recorded ${sha256} the signature is over: the object changed after it was signed`,
      signer,
    );
  }
  const signatureBytes = Buffer.from(signature, 'base64');
  // Only the keys the signature can be by are resolved: a named signer needs no other key (nor KMS for it).
  const ids = provenance.trustedKeys.map((entry) => ({ entry, keyId: trustedKeyId(entry) }));
  const candidates = signer ? ids.filter((k) => k.keyId === signer) : ids;
  if (candidates.length === 0) {
    throw new ProvenanceError(
      'untrusted-signer',
      `${where} is signed by ${signer}, which stream ${stream} does not trust (trusted: ${ids.map((k) => k.keyId).join(', ')})`,
      signer,
    );
  }
  const keys = await Promise.all(candidates.map((k) => trusted.resolve(k.entry)));
  const verified = keys.find((k) => verifyDigest(k.key, sha256, signatureBytes));
  if (!verified) {
    throw new ProvenanceError(
      'signature',
      `${where}: the signature does not verify over its recorded SHA-256 ${sha256} with ${signer ? `key ${signer}` : `any key stream ${stream} trusts`}: the bytes or the recorded SHA-256 changed after signing, or another key signed it`,
      signer,
    );
  }
  return {
    sha256,
    signer: verified.keyId,
    signature: signatureBytes.toString('base64'),
    signerPublicKey: verified.key.spki.toString('base64'),
  };
}
