// Ingest reads the first tar header of an upload before it takes a sequence: a file that is not a tar archive
// (after decompression) is refused at once as "Release Rejected", with no sequence and no release; a tar, plain
// or compressed, goes on as before. What cannot be read here (or decoded: xz) is left to the builder.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { checkArchiveHead, isTarHeader } from '#core/release/archive-head.ts';
import { ingest } from '#core/release/ingest.ts';
import { ReleaseRejectedDetail } from '#events/stemcell.ts';
import type { StoredObject } from '#ports';
import { ingestSetup, RecordingLogger } from '#test/support/core-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

function tarball(): Buffer {
  const tar = new TarBuilder();
  tar.file('etc/hostname', 'web\n');
  return tar.build();
}

/** Serves `bodies` by key (the fake object store of core-fakes keeps no bodies). */
function serving(bodies: Record<string, Buffer>) {
  const setup = ingestSetup(new RecordingLogger());
  setup.deps.objects.get = async (key: string) => {
    const body = bodies[key];
    if (!body) throw new Error(`NoSuchKey: ${key}`);
    const object: StoredObject = {
      bucket: 'stemcell-tarballs',
      key,
      etag: 'e',
      size: body.length,
      metadata: {},
    };
    return { object, body: Readable.from([body]) };
  };
  return setup;
}

const upload = (key: string) => ({
  bucket: 'stemcell-tarballs',
  key,
  etag: 'e',
  time: '2026-11-20T10:00:00.000Z',
});

describe('Function: checkArchiveHead()', () => {
  it('passes a tar, plain, gzip or zstd, and refuses what is no tar, naming why', async () => {
    // prepare
    const tar = tarball();
    const zip = Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(2000, 7)]);
    // act
    const seen = await Promise.all(
      [
        tar,
        gzipSync(tar),
        zstdCompressSync(tar),
        zip,
        gzipSync(zip),
        Buffer.from('hello'),
        Buffer.from('BZh91AY'),
      ].map((b) => checkArchiveHead(Readable.from([b]))),
    );
    // assess
    assert.deepEqual(
      seen.map((s) => (s.ok ? s.compression : s.reason)),
      [
        'none',
        'gzip',
        'zstd',
        'not a tar archive: its first 512 bytes are no tar header (bad header checksum)',
        'not a tar archive: its first 512 bytes after gzip decompression are no tar header (bad header checksum)',
        'not a tar archive: 5 bytes, less than one 512-byte header',
        'bzip2 archives are not supported: use gzip, zstd or xz',
      ],
    );
  });

  it('reads the tar checksum as POSIX does: one byte changed in the header breaks it', () => {
    const header = tarball().subarray(0, 512);
    const broken = Buffer.from(header);
    broken[0] = (broken[0] ?? 0) ^ 1;
    assert.equal(isTarHeader(header), true);
    assert.equal(isTarHeader(broken), false);
    assert.equal(isTarHeader(Buffer.alloc(512)), true, 'an empty archive ends with zero blocks');
  });
});

describe('Function: ingest() of a file that is not a tar archive', () => {
  it('rejects it at once as "Release Rejected", with no sequence, no release, no build job', async () => {
    // prepare
    const { deps, queues } = serving({
      'streams/web-base/r1.tar.gz': gzipSync(Buffer.alloc(4096, 'x')),
      'streams/web-base/r2.tar.gz': gzipSync(tarball()),
    });
    // act
    const refused = await ingest(deps, upload('streams/web-base/r1.tar.gz'));
    const accepted = await ingest(deps, upload('streams/web-base/r2.tar.gz'));
    // assess
    assert.equal(refused.release, undefined);
    assert.match(
      refused.rejected ?? '',
      /^streams\/web-base\/r1\.tar\.gz: not a tar archive: its first 512 bytes after gzip/,
    );
    const [rejected] = deps.events.ofType('Release Rejected');
    const detail = ReleaseRejectedDetail.parse(rejected?.detail);
    assert.ok(!('check' in detail), 'a revision conflict, not a provenance refusal');
    assert.equal('sequence' in detail ? detail.sequence : undefined, undefined);
    assert.equal('releaseId' in detail ? detail.releaseId : undefined, undefined);
    assert.equal(detail.revision, 'r1');
    assert.equal(accepted.release?.sequence, 1, 'the refused upload took no sequence');
    assert.equal((await deps.releases.list()).length, 1);
    assert.deepEqual(
      [...queues.values()].map((q) => q.messages.length),
      [1, 1],
    );
  });

  it('leaves an upload it cannot read here to the builder', async () => {
    // prepare
    const { deps } = serving({});
    // act
    const result = await ingest(deps, upload('streams/web-base/r1.tar'));
    // assess
    assert.equal(result.release?.sequence, 1);
    assert.equal(deps.events.ofType('Release Rejected').length, 0);
  });
});
