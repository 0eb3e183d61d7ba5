// Provenance at ingest: only an upload signed, over the SHA-256 it records, by a key its stream trusts becomes a
// release. Every refusal is checked to leave nothing behind: no release, no sequence taken, no build job, no
// event but "Release Rejected".
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ingest, type ObjectCreated } from '#core/release/ingest.ts';
import { BuildJob } from '#events/aws.ts';
import { ProvenanceRejectedDetail } from '#events/stemcell.ts';
import { ingestSetup, RecordingLogger, testConfig } from '#test/support/core-fakes.ts';
import {
  ChecksummingObjects,
  FakeKms,
  KMS_KEY_ARN,
  OTHER_KMS_KEY_ARN,
  pemKeyPair,
  sha256Hex,
  signedMetadata,
} from '#test/support/provenance-fakes.ts';

const KEY = 'streams/web-base/2026.11.20.tar.zst';
const BODY = Buffer.from('a root filesystem tarball, or close enough for a signature');

/** openssl signs the file itself (`openssl dgst -sha256 -sign`), as a pipeline outside AWS would. */
function opensslSign(privateKeyPem: string, body: Buffer): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'stemcell-openssl-'));
  try {
    writeFileSync(join(dir, 'key.pem'), privateKeyPem);
    writeFileSync(join(dir, 'blob'), body);
    return execFileSync('openssl', ['dgst', '-sha256', '-sign', join(dir, 'key.pem'), join(dir, 'blob')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function setup(options: { checksums?: boolean; required?: boolean } = {}) {
  const pem = pemKeyPair();
  const kms = new FakeKms();
  kms.addKey(KMS_KEY_ARN);
  kms.addKey(OTHER_KMS_KEY_ARN);
  const config = testConfig();
  const stream = config.streams['web-base'];
  assert.ok(stream);
  stream.provenance = { required: options.required ?? true, trustedKeys: [KMS_KEY_ARN, pem.publicKeyPem] };
  const { deps, queues } = ingestSetup(new RecordingLogger(), config);
  const objects = new ChecksummingObjects(options.checksums ?? true);
  const full = { ...deps, objects, signingKeys: kms };
  const upload = async (
    body: Buffer,
    metadata: Record<string, string>,
    key = KEY,
  ): Promise<ObjectCreated> => {
    const stored = await objects.put(key, body, metadata);
    return {
      bucket: stored.bucket,
      key,
      etag: stored.etag,
      versionId: stored.versionId as string,
      time: '2026-11-20T10:00:00.000Z',
    };
  };
  /** Nothing but one "Release Rejected" happened: no release, no sequence, no job. */
  const assertNothingButRejection = (check: string, reasonIncludes: RegExp) => {
    assert.equal(deps.releases.releases.size, 0, 'no release recorded');
    assert.equal(deps.releases.creates, 0, 'the release store was not asked for a sequence');
    assert.deepEqual([...deps.releases.sequences.entries()], [], 'no sequence taken');
    assert.deepEqual(
      [...queues.values()].flatMap((q) => q.messages),
      [],
      'no build job queued',
    );
    assert.deepEqual(
      deps.events.events.map((e) => e.detailType),
      ['Release Rejected'],
    );
    const detail = ProvenanceRejectedDetail.parse(deps.events.events[0]?.detail);
    assert.equal(detail.check, check);
    assert.match(detail.reason, new RegExp(`s3://stemcell-tarballs/${KEY.replaceAll('.', '\\.')}`));
    assert.match(detail.reason, reasonIncludes);
    assert.equal(detail.stream, 'web-base');
    assert.equal(detail.revision, '2026.11.20');
  };
  return { deps: full, queues, kms, pem, objects, upload, assertNothingButRejection };
}

describe('Provenance at ingest', () => {
  it('builds a tarball signed by a trusted KMS key (Sign, MessageType DIGEST): release, jobs, the signer recorded', async () => {
    const { deps, queues, kms, upload } = setup();
    const sha = sha256Hex(BODY);
    const { signature, keyId } = await kms.signDigest(KMS_KEY_ARN, Buffer.from(sha, 'hex'));
    const result = await ingest(deps, await upload(BODY, signedMetadata(sha, signature, keyId)));
    assert.ok(result.release, `refused: ${result.rejected}`);
    assert.equal(result.release.sequence, 1);
    assert.equal(result.release.source.signer, KMS_KEY_ARN);
    assert.equal(result.release.source.sha256, sha);
    assert.equal(result.release.source.signature, signature.toString('base64'));
    assert.ok(result.release.source.signerPublicKey);
    const job = BuildJob.parse(JSON.parse(queues.get('eu-west-1')?.messages[0]?.body ?? ''));
    assert.equal(job.source.signer, KMS_KEY_ARN);
    assert.equal(deps.events.ofType('Release Started').length, 1);
    // The public key is read once per key, not once per upload.
    const second = await kms.signDigest(KMS_KEY_ARN, Buffer.from(sha256Hex(Buffer.from('r2')), 'hex'));
    const again = await ingest(
      deps,
      await upload(
        Buffer.from('r2'),
        signedMetadata(sha256Hex(Buffer.from('r2')), second.signature, KMS_KEY_ARN),
        'streams/web-base/2026.11.21.tar.zst',
      ),
    );
    assert.equal(again.release?.sequence, 2);
    assert.equal(kms.getPublicKeyCalls.get(KMS_KEY_ARN), 1);
  });

  it('builds a tarball signed by a trusted PEM key pair with openssl, named or not by its signer metadata', async () => {
    const { deps, pem, upload } = setup();
    const sha = sha256Hex(BODY);
    const signature = opensslSign(pem.privateKeyPem, BODY);
    const named = await ingest(deps, await upload(BODY, signedMetadata(sha, signature, pem.keyId)));
    assert.ok(named.release, `refused: ${named.rejected}`);
    assert.equal(named.release.source.signer, pem.keyId);
    // cosign sign-blob names no signer: the trusted keys are tried.
    const body2 = Buffer.from('revision two');
    const unnamed = await ingest(
      deps,
      await upload(
        body2,
        signedMetadata(sha256Hex(body2), opensslSign(pem.privateKeyPem, body2)),
        'streams/web-base/2026.11.21.tar.zst',
      ),
    );
    assert.equal(unnamed.release?.source.signer, pem.keyId);
  });

  it('rejects an unsigned tarball on a stream that requires a signature', async () => {
    const { deps, upload, assertNothingButRejection } = setup();
    const result = await ingest(deps, await upload(BODY, { sha256: sha256Hex(BODY) }));
    assert.equal(result.release, undefined);
    assertNothingButRejection('unsigned', /carries no signature/);
  });

  it('lets an unsigned tarball through on a stream whose provenance is not required, and marks it unsigned', async () => {
    const { deps, upload } = setup({ required: false });
    const result = await ingest(deps, await upload(BODY, { sha256: sha256Hex(BODY) }));
    assert.equal(result.release?.sequence, 1);
    assert.equal(result.release?.source.signer, undefined);
  });

  it('rejects a tarball signed by a key the stream does not trust, named or not', async () => {
    const { deps, kms, upload, assertNothingButRejection } = setup();
    const sha = sha256Hex(BODY);
    const stranger = pemKeyPair();
    // Trusted by nobody: the key it names is not in trustedKeys.
    const { signature } = await kms.signDigest(OTHER_KMS_KEY_ARN, Buffer.from(sha, 'hex'));
    const named = await ingest(deps, await upload(BODY, signedMetadata(sha, signature, OTHER_KMS_KEY_ARN)));
    assert.equal(named.release, undefined);
    assertNothingButRejection(
      'untrusted-signer',
      new RegExp(`signed by ${OTHER_KMS_KEY_ARN}, which stream web-base does not trust`),
    );
    assert.equal(
      kms.getPublicKeyCalls.get(OTHER_KMS_KEY_ARN),
      undefined,
      'an untrusted key is never looked up',
    );
    // Naming a trusted key does not help a signature another key made.
    deps.events.events.length = 0;
    const posing = await ingest(
      deps,
      await upload(BODY, signedMetadata(sha, opensslSign(stranger.privateKeyPem, BODY), KMS_KEY_ARN)),
    );
    assert.equal(posing.release, undefined);
    assertNothingButRejection('signature', /does not verify over its recorded SHA-256/);
  });

  it('rejects bytes changed after signing: by the store checksum, or by the signature once the SHA-256 is recomputed', async () => {
    const { deps, kms, upload, assertNothingButRejection } = setup();
    const sha = sha256Hex(BODY);
    const { signature } = await kms.signDigest(KMS_KEY_ARN, Buffer.from(sha, 'hex'));
    const flipped = Buffer.from(BODY);
    flipped[7] = (flipped[7] as number) ^ 0x01;
    // Same signature and recorded SHA-256, one byte flipped: the bucket's own checksum of the bytes disagrees.
    const kept = await ingest(deps, await upload(flipped, signedMetadata(sha, signature, KMS_KEY_ARN)));
    assert.equal(kept.release, undefined);
    assertNothingButRejection('bytes', /changed after it was signed/);
    // Published again, the SHA-256 recomputed from the flipped bytes: the old signature is not over it.
    deps.events.events.length = 0;
    const recomputed = await ingest(
      deps,
      await upload(flipped, signedMetadata(sha256Hex(flipped), signature, KMS_KEY_ARN)),
    );
    assert.equal(recomputed.release, undefined);
    assertNothingButRejection('signature', /does not verify/);
  });

  it('rejects a rewritten recorded SHA-256, with or without a store checksum to compare', async () => {
    for (const checksums of [true, false]) {
      const { deps, kms, upload, assertNothingButRejection } = setup({ checksums });
      const sha = sha256Hex(BODY);
      const { signature } = await kms.signDigest(KMS_KEY_ARN, Buffer.from(sha, 'hex'));
      const rewritten = sha256Hex(Buffer.from('something else'));
      const result = await ingest(
        deps,
        await upload(BODY, signedMetadata(rewritten, signature, KMS_KEY_ARN)),
      );
      assert.equal(result.release, undefined);
      assertNothingButRejection(
        checksums ? 'bytes' : 'signature',
        checksums ? /not the recorded/ : /does not verify/,
      );
    }
  });

  it('takes no sequence for a refused upload: the next valid one is sequence 1', async () => {
    const { deps, kms, upload } = setup();
    await ingest(deps, await upload(BODY, { sha256: sha256Hex(BODY) }));
    const sha = sha256Hex(BODY);
    const { signature } = await kms.signDigest(KMS_KEY_ARN, Buffer.from(sha, 'hex'));
    const ok = await ingest(deps, await upload(BODY, signedMetadata(sha, signature, KMS_KEY_ARN)));
    assert.equal(ok.release?.sequence, 1);
  });

  it('retries (throws) when KMS cannot give a trusted key, instead of rejecting the upload', async () => {
    const { deps, upload } = setup();
    const missing = 'arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-4000-8000-000000000000';
    const stream = deps.config.streams['web-base'];
    assert.ok(stream?.provenance);
    stream.provenance.trustedKeys = [missing];
    const sha = sha256Hex(BODY);
    await assert.rejects(
      ingest(deps, await upload(BODY, signedMetadata(sha, Buffer.from('MEUCIQ'), missing))),
      /GetPublicKey failed/,
    );
    assert.equal(deps.events.events.length, 0);
    assert.equal(deps.releases.creates, 0);
  });
});
