// `stemcell sign` and `stemcell verify`: for pipelines that upload tarballs by other means than `stemcell
// publish`. `sign` prints the S3 user metadata to upload the tarball with (one PutObject, e.g.
// `aws s3 cp t.tar.zst s3://bucket/streams/web/1.tar.zst --checksum-algorithm SHA256 --metadata "$(stemcell sign
// t.tar.zst --key k.pem)"`); `verify` checks a tarball and a signature (from `stemcell sign`, KMS Sign, `openssl
// dgst -sha256 -sign`, or `cosign sign-blob`) against a public key, exactly as ingest does.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { verifyDigest } from '#core/provenance/signature.ts';
import { CliError } from '../errors.ts';
import { type LocalOptions, localOptions, resolveConfig } from '../local-context.ts';
import {
  type KeyServiceOptions,
  publicKeyOf,
  sha256OfFile,
  signatureMetadata,
  signDigest,
} from '../signing.ts';

interface KeyOptions extends LocalOptions {
  key: string;
  aws?: boolean;
}

async function keyService(options: KeyOptions): Promise<KeyServiceOptions> {
  // Only a KMS key needs the configuration (the local key service's account and region).
  if (!options.key.startsWith('arn:'))
    return { data: options.data, accountId: '000000000000', region: 'us-east-1' };
  const config = await resolveConfig(options);
  return {
    data: options.data,
    ...(options.aws ? { aws: true } : {}),
    accountId: config.local?.managementAccountId ?? '000000000000',
    region: config.homeRegion,
  };
}

export function register(program: Command): void {
  localOptions(
    program
      .command('sign <tarball>')
      .description(
        'sign a tarball (ECDSA P-256 over its SHA-256) and print the S3 metadata to upload it with, as JSON',
      )
      .requiredOption('--key <key>', 'KMS key ARN (ECC_NIST_P256, SIGN_VERIFY) or P-256 private key PEM file')
      .option('--aws', 'a KMS key ARN is signed with by AWS KMS (default: the local key service of --data)'),
  ).action(async (tarball: string, options: KeyOptions) => {
    const sha256 = await sha256OfFile(tarball);
    const signed = await signDigest(sha256, options.key, await keyService(options));
    process.stdout.write(`${JSON.stringify(signatureMetadata(signed))}\n`);
    process.stderr.write(`signed ${tarball} (sha256 ${sha256}) with ${signed.signer}\n`);
  });

  localOptions(
    program
      .command('verify <tarball>')
      .description(
        'check a signature over a tarball with a public key, as ingest does: exit 0 and the signer id, or 2 and why',
      )
      .requiredOption(
        '--key <key>',
        'KMS key ARN, or P-256 public key PEM file (openssl ec -pubout, cosign.pub)',
      )
      .requiredOption(
        '--signature <signature>',
        'base64 of the DER signature (stemcell sign, KMS, cosign sign-blob), or a file holding it (base64 or DER)',
      )
      .option('--aws', 'read a KMS key ARN from AWS KMS (default: the local key service of --data)'),
  ).action(async (tarball: string, options: KeyOptions & { signature: string }) => {
    const signature = await signatureBytes(options.signature);
    const { keyId, key } = await publicKeyOf(options.key, await keyService(options));
    const sha256 = await sha256OfFile(tarball);
    if (!verifyDigest(key, sha256, signature))
      throw new CliError(
        `${tarball}: the signature does not verify over its sha256 ${sha256} with ${keyId}: the bytes changed after signing, or another key signed them`,
        2,
      );
    process.stdout.write(`verified: ${tarball} (sha256 ${sha256}) is signed by ${keyId}\n`);
  });
}

/** The signature as given: base64 text, or a file holding base64 text or the raw DER (openssl's output). */
async function signatureBytes(value: string): Promise<Buffer> {
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(value) && value.length >= 64) return Buffer.from(value, 'base64');
  const file = await readFile(value).catch((err: Error) => {
    throw new CliError(`--signature ${value}: neither base64 nor a readable file (${err.message})`, 2, {
      cause: err,
    });
  });
  const text = file.toString('latin1').trim();
  // DER starts with a SEQUENCE tag (0x30); base64 text never does.
  return file[0] === 0x30 ? file : Buffer.from(text, 'base64');
}
