// The demo's signed stream: its tarballs are signed by a local KMS key (ECC_NIST_P256, Sign with MessageType
// DIGEST) that its provenance trusts; then one unsigned revision and one signed by a stranger's key pair are
// published, and ingest rejects both ("Release Rejected", no sequence taken). What the demo reports comes from the
// bus and the release store, not from its own bookkeeping.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import type { StemcellConfig } from '#config/schema.ts';
import {
  objectKey,
  SHA256_METADATA_KEY,
  SIGNATURE_METADATA_KEY,
  SIGNER_METADATA_KEY,
} from '#core/model/naming.ts';
import { p256PrivateKey } from '#core/provenance/signature.ts';
import { LocalKeyService } from '#local/key-service.ts';
import type { LocalStack } from '#local/stack.ts';

export const SIGNED_STREAM = 'batch-base';
const SIGNING_ALIAS = 'alias/stemcell-demo-release-signing';

export interface RejectedUpload {
  stream: string;
  revision: string;
  reason: string;
}

/**
 * The release pipeline's signing key in the data folder's local KMS (created once), trusted by SIGNED_STREAM.
 * Made before the stack, whose configuration must name it.
 */
export async function trustDemoSigningKey(dataDir: string, config: StemcellConfig): Promise<string> {
  const keys = new LocalKeyService(join(dataDir, 'kms'), {
    accountId: config.local?.managementAccountId ?? '000000000000',
    region: config.homeRegion,
  });
  let arn: string;
  try {
    arn = keys.createKey({
      alias: SIGNING_ALIAS,
      keySpec: 'ECC_NIST_P256',
      description: 'demo release signing',
    }).arn;
  } catch {
    arn = (await keys.getPublicKey(SIGNING_ALIAS)).keyId;
  }
  const stream = config.streams[SIGNED_STREAM];
  if (stream) stream.provenance = { required: true, trustedKeys: [arn] };
  return arn;
}

/** The metadata a signed upload carries: the tarball's SHA-256 and the KMS key's signature over it. */
export async function signedUploadMetadata(
  stack: LocalStack,
  keyArn: string,
  body: Buffer,
): Promise<Record<string, string>> {
  const digest = createHash('sha256').update(body).digest();
  const { keyId, signature } = await stack.keys.signDigest(keyArn, digest);
  return {
    [SHA256_METADATA_KEY]: digest.toString('hex'),
    [SIGNATURE_METADATA_KEY]: signature.toString('base64'),
    [SIGNER_METADATA_KEY]: keyId,
  };
}

/** Collects every "Release Rejected" on the central bus from now on. */
export function watchRejections(stack: LocalStack): RejectedUpload[] {
  const seen: RejectedUpload[] = [];
  stack.centralBus.addRule(
    'stemcell-demo-rejected',
    { source: ['stemcell'], 'detail-type': ['Release Rejected'] },
    (event) => {
      const d = event.detail as { stream: string; revision: string; reason: string };
      seen.push({ stream: d.stream, revision: d.revision, reason: d.reason });
    },
  );
  return seen;
}

/** Publishes an unsigned revision and one signed by a key nobody trusts, of `body`, and waits for ingest. */
export async function publishUntrusted(stack: LocalStack, body: Buffer): Promise<string[]> {
  const sha256 = createHash('sha256').update(body).digest('hex');
  const unsigned = '2026.11.23';
  await stack.publish(objectKey(SIGNED_STREAM, unsigned), body, { [SHA256_METADATA_KEY]: sha256 });
  const stranger = p256PrivateKey(
    generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString(),
    'a stranger',
  );
  const wronglySigned = '2026.11.24';
  await stack.publish(objectKey(SIGNED_STREAM, wronglySigned), body, {
    [SHA256_METADATA_KEY]: sha256,
    [SIGNATURE_METADATA_KEY]: stranger.signDigest(sha256).toString('base64'),
    [SIGNER_METADATA_KEY]: stranger.keyId,
  });
  await stack.settle();
  return [unsigned, wronglySigned];
}

/** The table's block of refused uploads. */
export function rejectedLines(rejected: RejectedUpload[]): string[] {
  return rejected.map((r) => `REJECTED ${r.stream} ${r.revision}: ${r.reason}`);
}
