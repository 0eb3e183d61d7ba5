// The signing-key port (KMS asymmetric keys), kept beside the core's plain types so src/ports.ts stays one
// screenful per service; src/ports.ts re-exports it. Adapters: src/aws/signing-keys.ts, src/local/key-service.ts.
/** An asymmetric KMS key's public half (GetPublicKey). */
export interface PublicKeyInfo {
  /** The key's ARN. */
  keyId: string;
  /** ECC_NIST_P256 for the keys that sign tarballs. */
  keySpec: string;
  /** SIGN_VERIFY for signing keys. */
  keyUsage: string;
  signingAlgorithms: string[];
  /** DER SubjectPublicKeyInfo. */
  publicKey: Buffer;
}
/** Asymmetric signing keys (KMS): the release pipeline signs, ingest reads public keys to verify. */
export interface SigningKeys {
  getPublicKey(keyId: string): Promise<PublicKeyInfo>;
  /** Sign with ECDSA_SHA_256 over a SHA-256 digest (MessageType DIGEST): the DER signature, and the key's ARN. */
  signDigest(keyId: string, digest: Buffer): Promise<{ keyId: string; signature: Buffer }>;
}
