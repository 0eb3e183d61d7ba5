// The builder's half of provenance: before it makes anything of the tree, the SHA-256 it computed while
// streaming must be the release's signed one, and the signature recorded at ingest must verify over it. A
// tarball whose bytes changed after it was signed (where no store checksum let ingest see it) is built into
// nothing: no snapshot, the region failed at once with the reason, one "Build Failed".
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { handleBuildFailure, runBuild, SourceDigestError } from '#builder/worker.ts';
import { TAG } from '#core/model/naming.ts';
import { p256PrivateKey } from '#core/provenance/signature.ts';
import { type FakeBuilder, fakeBuilder } from '#test/support/builder-fakes.ts';
import { pemKeyPair } from '#test/support/provenance-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

const tarball = new TarBuilder().dir('etc/').file('etc/hostname', 'web\n').build();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A release signed over `signedBody`'s SHA-256 by a PEM key, as ingest records it. */
function signedRecord(signedBody: Buffer, signOver = signedBody) {
  const key = p256PrivateKey(pemKeyPair().privateKeyPem, 'signer');
  return {
    sha256: sha(signedBody),
    signer: key.keyId,
    signature: key.signDigest(sha(signOver)).toString('base64'),
    signerPublicKey: key.publicKey.spki.toString('base64'),
  };
}

async function withBuilder(
  options: Parameters<typeof fakeBuilder>[0],
  body: (t: FakeBuilder) => Promise<void>,
) {
  const t = await fakeBuilder(options);
  try {
    await body(t);
  } finally {
    await rm(t.dir, { recursive: true, force: true });
  }
}

function countSnapshots(t: FakeBuilder) {
  const snapshots: Record<string, string>[] = [];
  t.deps.snapshots.create = async (volumeId, input) => {
    snapshots.push(input.tags);
    return { snapshotId: 'snap-1', volumeId, state: 'completed', tags: input.tags, kmsKeyId: 'k' };
  };
  return snapshots;
}

describe('Builder: the streamed SHA-256 is the signed one', () => {
  it('builds a signed tarball and tags its snapshot with the signer and the SHA-256', () => {
    const recorded = signedRecord(tarball);
    return withBuilder({ tarball, recorded }, async (t) => {
      const snapshots = countSnapshots(t);
      const outcome = await runBuild(t.deps, t.job);
      assert.equal(outcome.kind, 'built');
      assert.equal(snapshots.length, 1);
      assert.equal(snapshots[0]?.[TAG.signer], recorded.signer);
      assert.equal(snapshots[0]?.[TAG.sha256], sha(tarball));
    });
  });

  it('refuses bytes changed after signing (one byte flipped): no snapshot, failed at once with the reason', () => {
    const flipped = Buffer.from(tarball);
    // A byte of the file's content (after the two 512-byte headers of etc/ and etc/hostname).
    flipped[1024] = (flipped[1024] as number) ^ 0x01;
    return withBuilder({ tarball: flipped, recorded: signedRecord(tarball) }, async (t) => {
      const snapshots = countSnapshots(t);
      const error = await runBuild(t.deps, t.job).then(
        () => assert.fail('built a tarball that is not the signed one'),
        (err: unknown) => err,
      );
      assert.ok(error instanceof SourceDigestError, String(error));
      assert.match(
        error.message,
        new RegExp(`changed: sha256 ${sha(flipped)} != ${sha(tarball)} \\(signed by sha256:`),
      );
      assert.equal(snapshots.length, 0);
      // Final at once (another attempt streams the same bytes): the message is done, the region failed.
      const verdict = await handleBuildFailure(t.deps, t.job, error, { receiveCount: 1, maxReceiveCount: 5 });
      assert.equal(verdict, 'done');
      const release = await t.releases.get(t.releaseId);
      assert.equal(release?.regions['eu-west-1']?.state, 'failed');
      assert.equal(t.published.filter((e) => e.detailType === 'Build Failed').length, 1);
    });
  });

  it('refuses a release whose recorded signature is not over the bytes, even when the recorded SHA-256 is', () => {
    const recorded = signedRecord(tarball, Buffer.from('another tarball'));
    return withBuilder({ tarball, recorded }, async (t) => {
      const snapshots = countSnapshots(t);
      await assert.rejects(runBuild(t.deps, t.job), (err: Error) => {
        assert.ok(err instanceof SourceDigestError);
        assert.match(err.message, /does not verify over the streamed sha256/);
        return true;
      });
      assert.equal(snapshots.length, 0);
    });
  });
});
