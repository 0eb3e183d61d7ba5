// Direct-API snapshots end to end on real loop devices: a revision built with `direct` restores, through
// `stemcell export`, byte for byte equal to the disk as it was when its snapshot completed — for BIOS, UEFI and
// arm64 streams, along a chain of three revisions, and after a builder killed midway (SIGKILL) and a retry.
// Each incremental revision is found the fast way (ext4 candidates); a full hash of the disk checks that the
// fast way missed no block: the digest table it produced equals the full one, block for block.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BLOCK_SIZE, DIGEST_BYTES, digestOf } from '#builder/snapshot/digests.ts';
import { type BuildOutcome, runBuild } from '#builder/worker.ts';
import { imageName } from '#core/model/naming.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import type { BuildJob } from '#events/aws.ts';
import { type DirectBuilder, directBuilder, directJob } from '#test/support/direct-builder.ts';
import { needsRoot } from './helpers.ts';

const skip = needsRoot();
const root = skip ? '' : mkdtempSync(join('/var/tmp', 'stemcell-direct-'));

function cleanup(): void {
  const loops = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
    encoding: 'utf8',
  });
  // Partition loops sit on the disk loop, which sits on a file under root: detach from the top down.
  const attached = loops
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([name, file]) => name && file);
  const ours = new Set(attached.filter(([, f]) => f?.startsWith(root)).map(([n]) => n));
  for (const [name, file] of attached)
    if (file && ours.has(file)) execFileSync('losetup', ['--detach', name as string]);
  for (const name of ours) execFileSync('losetup', ['--detach', name as string]);
}

after(() => {
  if (!root) return;
  cleanup();
  rmSync(root, { recursive: true, force: true });
});

/** The digest table of a whole disk image, every block read: the full way. */
function fullDigests(image: string): Buffer {
  const size = statSync(image).size;
  const count = Math.ceil(size / BLOCK_SIZE);
  const table = Buffer.alloc(count * DIGEST_BYTES);
  const fd = openSync(image, 'r');
  try {
    const buf = Buffer.alloc(BLOCK_SIZE);
    for (let i = 0; i < count; i++) {
      buf.fill(0);
      readSync(fd, buf, 0, Math.min(BLOCK_SIZE, size - i * BLOCK_SIZE), i * BLOCK_SIZE);
      digestOf(buf).copy(table, i * DIGEST_BYTES);
    }
  } finally {
    closeSync(fd);
  }
  return table;
}

function differingBlocks(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i * DIGEST_BYTES < Math.max(a.length, b.length); i++) {
    const x = a.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
    const y = b.subarray(i * DIGEST_BYTES, (i + 1) * DIGEST_BYTES);
    if (!x.equals(y)) out.push(i);
  }
  return out;
}

/** Registers the snapshot as an image and exports it with the CLI; returns the raw file. */
async function exported(b: DirectBuilder, job: BuildJob, snapshotId: string): Promise<string> {
  const { imageId } = await b.images.register({
    name: imageName(job.stream, job.revision),
    description: job.revision,
    snapshotId,
    architecture: job.architecture,
    bootMode: job.bootMode,
    rootDeviceName: '/dev/xvda',
    tags: {},
    clientToken: `${job.releaseId}:${job.region}`,
  });
  const out = join(root, `${job.stream}-${job.revision}.raw`);
  const cli = spawnSync(process.execPath, ['src/cli/main.ts', 'export', imageId, out, '--data', root], {
    encoding: 'utf8',
  });
  assert.equal(cli.status, 0, cli.stderr);
  return out;
}

function sameBytes(a: string, b: string): void {
  execFileSync('cmp', [a, b]);
}

async function tarball(stream: string, revision: number): Promise<string> {
  const key = `streams/${stream}/r${revision}.tar.zst`;
  await buildSampleTarball(join(root, 'work'), join(root, 'objects', key), {
    stream,
    revision,
    withKernel: true,
    files: 120,
  });
  return key;
}

/** Builds one revision in this process and checks what the issue asks of it. */
async function buildAndCheck(
  b: DirectBuilder,
  stream: string,
  revision: number,
  bootMode: BuildJob['bootMode'],
  architecture: BuildJob['architecture'],
  t: { diagnostic(s: string): void },
): Promise<{ outcome: Extract<BuildOutcome, { kind: 'built' }>; job: BuildJob }> {
  const job = await directJob(
    b.releases,
    stream,
    `r${revision}`,
    await tarball(stream, revision),
    bootMode,
    architecture,
  );
  const outcome = await runBuild(b.deps, job);
  assert.equal(outcome.kind, 'built');
  if (outcome.kind !== 'built') throw new Error('not built');
  const direct = outcome.direct;
  assert.ok(direct, 'the snapshot was taken with the direct APIs');
  const copy = b.copies.get(outcome.snapshotId);
  assert.ok(copy, 'the disk was kept when the snapshot completed');
  // Byte for byte, through `stemcell export`.
  sameBytes(await exported(b, job, outcome.snapshotId), copy);
  // The fast way missed no block: its digest table is the full one.
  assert.deepEqual(differingBlocks(direct.scan.digests, fullDigests(copy)), [], 'blocks the scan missed');
  t.diagnostic(
    `${stream} r${revision}: ${direct.detection} detection read ${direct.scan.blocksRead} of ` +
      `${direct.sizeBytes / BLOCK_SIZE} blocks, put ${direct.result.changedBlocks}` +
      (direct.fullBecause ? ` (full: ${direct.fullBecause})` : '') +
      ` steps ${JSON.stringify(outcome.stepMs)} write ${JSON.stringify(direct.result.ms)}`,
  );
  return { outcome, job };
}

describe('Direct-API snapshots restore byte for byte (loop devices)', { skip, timeout: 600_000 }, () => {
  let b: DirectBuilder;
  before(() => {
    mkdirSync(join(root, 'objects'), { recursive: true });
    b = directBuilder({ root, instanceId: 'i-builder' });
  });

  it('BIOS: a chain of three revisions, each child on its parent, the later ones found the fast way', async (t) => {
    const one = await buildAndCheck(b, 'bios', 1, 'legacy-bios', 'x86_64', t);
    const two = await buildAndCheck(b, 'bios', 2, 'legacy-bios', 'x86_64', t);
    const three = await buildAndCheck(b, 'bios', 3, 'legacy-bios', 'x86_64', t);
    assert.equal(one.outcome.direct?.parentSnapshotId, undefined, 'the first snapshot has no parent');
    assert.equal(two.outcome.direct?.parentSnapshotId, one.outcome.snapshotId);
    assert.equal(three.outcome.direct?.parentSnapshotId, two.outcome.snapshotId);
    for (const r of [two, three]) {
      assert.equal(r.outcome.direct?.detection, 'fast');
      assert.ok(
        (r.outcome.direct?.scan.blocksRead ?? 0) < (r.outcome.direct?.sizeBytes ?? 0) / BLOCK_SIZE / 2,
        'the fast way read less than half the disk',
      );
    }
    // Encrypted: the first with the stream's key, the children with their parent's.
    const manifests = [one, two, three].map((r) => b.snapshots.manifest(r.outcome.snapshotId));
    assert.ok(manifests.every((m) => m?.kmsKeyId === manifests[0]?.kmsKeyId && m?.kmsKeyId));
    // Register is told by the builder: EBS sends nothing for direct-API snapshots.
    const told = b.published.filter((e) => e.detailType === 'Snapshot Completed');
    assert.deepEqual(
      told.map((e) => (e.detail as { snapshotId: string }).snapshotId),
      [one, two, three].map((r) => r.outcome.snapshotId),
    );
  });

  for (const [name, bootMode, architecture] of [
    ['uefi', 'uefi', 'x86_64'],
    ['arm64', 'uefi', 'arm64'],
  ] as const) {
    it(`${name}: two revisions`, async (t) => {
      await buildAndCheck(b, name, 1, bootMode, architecture, t);
      const two = await buildAndCheck(b, name, 2, bootMode, architecture, t);
      assert.equal(two.outcome.direct?.detection, 'fast');
    });
  }

  it("a builder that lacks the stream's disk restores it from the last snapshot, applies incrementally, and the next snapshot names it as parent", async (t) => {
    const one = await buildAndCheck(b, 'moved', 1, 'legacy-bios', 'x86_64', t);
    // The disk is gone from this builder (a new instance, another AZ): only the snapshot is left.
    const [volume] = b.volumes.list().filter((v) => v.stream === 'moved');
    await b.volumes.delete(volume?.volumeId as string);
    const two = await buildAndCheck(b, 'moved', 2, 'legacy-bios', 'x86_64', t);
    assert.ok(two.outcome.stepMs.restore > 0, 'restored');
    assert.equal(two.outcome.direct?.parentSnapshotId, one.outcome.snapshotId);
    assert.equal(two.outcome.apply.verified, false, 'the restored state partition held the manifest');
    assert.equal(two.outcome.direct?.detection, 'fast', 'a restored disk is exactly its snapshot');
    assert.match(b.logs.join('\n'), new RegExp(`restoring ${one.outcome.snapshotId}`));
  });

  it('a builder killed midway (SIGKILL while putting blocks), then retried: the half snapshot is deleted, the retry hashes every block and restores byte for byte', async (t) => {
    await buildAndCheck(b, 'killed', 1, 'legacy-bios', 'x86_64', t);
    const job = await directJob(b.releases, 'killed', 'r2', await tarball('killed', 2), 'legacy-bios');
    // act 1: another builder process takes revision 2 and dies after two blocks were put
    const child = spawnSync(
      process.execPath,
      [
        'test/support/direct-builder.ts',
        JSON.stringify({ root, instanceId: 'i-killed', killAfterPuts: 2 }),
        JSON.stringify(job),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const left = (await b.snapshots.findByTags({ 'stemcell:release': job.releaseId })).map((s) => s.state);
    assert.deepEqual(left, ['pending'], 'the killed builder left its snapshot pending');
    // EC2 takes the dead instance's volumes back (and whatever it left attached).
    await b.volumes.releaseAttachments((id) => id === 'i-killed');

    // act 2: the retry, on this builder
    const outcome = await runBuild(b.deps, job);

    // assess
    assert.equal(outcome.kind, 'built');
    if (outcome.kind !== 'built') return;
    const all = await b.snapshots.findByTags({ 'stemcell:release': job.releaseId });
    assert.deepEqual(
      all.map((s) => [s.snapshotId, s.state]),
      [[outcome.snapshotId, 'completed']],
      'only the retry’s snapshot is left',
    );
    assert.equal(outcome.direct?.detection, 'full');
    assert.match(outcome.direct?.fullBecause ?? '', /earlier attempt did not finish/);
    const copy = b.copies.get(outcome.snapshotId) as string;
    sameBytes(await exported(b, job, outcome.snapshotId), copy);
    assert.deepEqual(differingBlocks(outcome.direct?.scan.digests as Buffer, fullDigests(copy)), []);
    t.diagnostic(`retry put ${outcome.direct?.result.changedBlocks} blocks`);
  });
});
