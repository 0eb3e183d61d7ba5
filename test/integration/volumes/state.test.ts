// The apply manifest lives on the stream's volume (its state partition), not on a builder's disk: a second
// builder with an empty root disk takes over the volume and still applies revision 2 incrementally.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { DeviceWorkspace, openVolume } from '#builder/device.ts';
import { readLayout } from '#builder/volume/gpt.ts';
import { type BuilderDeps, runBuild } from '#builder/worker.ts';
import type { BuildJob } from '#events/aws.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import type { BusEvent } from '#ports';
import { AZ, localEbs, needsRoot, REGION } from './helpers.ts';

const skip = needsRoot() ?? false;

/** A tree of `files` incompressible files of 32 KiB, as a tar. */
function tarball(dir: string, name: string, files: Map<string, Buffer>): string {
  const tree = join(dir, `${name}-tree`);
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'data'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'hostname'), 'stemcell\n');
  for (const [file, body] of files) writeFileSync(join(tree, 'data', file), body);
  const out = join(dir, `${name}.tar`);
  execFileSync('tar', ['-C', tree, '--owner=0', '--group=0', '-cf', out, '.']);
  rmSync(tree, { recursive: true });
  return out;
}

describe('Flow: apply manifest on the volume', { skip }, () => {
  it('a second builder with an empty root disk applies revision 2 with a small delta', async (t) => {
    const ebs = localEbs('block');
    const dir = mkdtempSync(join('/var/tmp', 'stemcell-state-'));
    try {
      // prepare: 960 files (30 MiB); revision 2 changes 2 of them and adds one
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 960; i++) files.set(`f${i}`, randomBytes(32 * 1024));
      const r1 = tarball(dir, 'r1', files);
      files.set('f7', randomBytes(32 * 1024));
      files.set('f99', randomBytes(32 * 1024));
      files.set('new', randomBytes(32 * 1024));
      const r2 = tarball(dir, 'r2', files);
      const releases = new LocalReleaseStore(join(dir, 'releases'));
      const published: BusEvent[] = [];
      const jobFor = async (revision: string, key: string): Promise<BuildJob> => {
        const source = { bucket: 'b', key, etag: revision };
        const { release } = await releases.create({
          stream: 'web',
          revision,
          source,
          regions: [REGION],
          uploadedAt: new Date().toISOString(),
        });
        return {
          version: 1,
          releaseId: release.releaseId,
          stream: 'web',
          revision,
          sequence: release.sequence,
          region: REGION,
          architecture: 'x86_64',
          bootMode: 'none',
          volumeSizeGiB: 1,
          snapshots: 'direct',
          source,
        };
      };
      const bodies: Record<string, string> = { 'streams/web/r1.tar': r1, 'streams/web/r2.tar': r2 };
      const logs: string[] = [];
      /** A builder of its own: its own root disk (mount root, fallback manifest folder) and instance id. */
      const builder = (name: string): BuilderDeps => {
        const disk = join(dir, name);
        mkdirSync(join(disk, 'manifests'), { recursive: true });
        return {
          region: REGION,
          availabilityZone: AZ,
          instanceId: `i-${name}`,
          kmsKeyId: ebs.kmsKeyId,
          objects: {
            bucket: 'b',
            get: async (key: string) => ({ body: Readable.from([readFileSync(bodies[key] as string)]) }),
          } as unknown as BuilderDeps['objects'],
          volumes: ebs.volumes,
          snapshots: ebs.snapshots,
          releases,
          publisher: { publish: async (events: BusEvent[]) => void published.push(...events) },
          workspace: new DeviceWorkspace({ mountRoot: join(disk, 'mnt'), log: (l) => logs.push(l) }),
          manifestPath: (volumeId) => join(disk, 'manifests', `${volumeId}.json`),
          clock: { now: () => new Date() },
          log: (l) => logs.push(l),
        };
      };
      const first = builder('builder-a');
      const second = builder('builder-b');

      // act: builder A writes revision 1; builder B, whose disk has never seen this volume, writes revision 2
      const one = await runBuild(first, await jobFor('r1', 'streams/web/r1.tar'));
      const two = await runBuild(second, await jobFor('r2', 'streams/web/r2.tar'));

      // assess
      assert.equal(one.kind, 'built');
      assert.equal(two.kind, 'built');
      if (one.kind !== 'built' || two.kind !== 'built') return;
      assert.equal(one.volumeId, two.volumeId, 'one volume per stream and AZ');
      assert.deepEqual(readdirSync(join(dir, 'builder-b', 'manifests')), [], 'nothing from builder B’s disk');
      assert.equal(two.apply.verified, false, 'B applied from the manifest on the volume, not by verifying');
      assert.equal(two.apply.filesWritten, 3);
      assert.ok(two.apply.bytesWritten <= 3 * 32 * 1024, `wrote ${two.apply.bytesWritten} bytes`);
      const snaps = await Promise.all([one.snapshotId, two.snapshotId].map((id) => ebs.snapshots.get(id)));
      const [d1, d2] = snaps.map((s) => s?.deltaBytes ?? Number.NaN) as [number, number];
      t.diagnostic(`snapshot delta: revision 1 ${d1} B, revision 2 ${d2} B (${(d2 / d1).toFixed(3)})`);
      assert.ok(d2 < d1 / 4, `revision 2's snapshot delta ${d2} B is small next to revision 1's ${d1} B`);
      // The state partition is there, and the booted image is not told about it.
      const attachment = await ebs.volumes.attach(two.volumeId, 'i-inspect');
      try {
        assert.equal(attachment.kind, 'block');
        if (attachment.kind !== 'block') return;
        const layout = await readLayout(attachment.devicePath);
        assert.ok(layout?.state, 'the volume has a state partition');
        // Which of revision 2's changed blocks are the state partition's (the manifest's price in delta).
        const [b1, b2] = [one.snapshotId, two.snapshotId].map(
          (id) => ebs.snapshots.manifest(id)?.blocks ?? [],
        );
        const size = ebs.snapshots.manifest(two.snapshotId)?.blockSize ?? 1;
        const changed = (b2 ?? []).map((h, i) => (h !== b1?.[i] ? i : -1)).filter((i) => i >= 0);
        const from = Math.floor((layout.state.start * 512) / size);
        const to = Math.floor(((layout.state.start + layout.state.sectors) * 512 - 1) / size);
        const inState = changed.filter((i) => i >= from && i <= to).length;
        t.diagnostic(
          `revision 2 changed ${changed.length} blocks, ${inState} of them in the state partition`,
        );
        assert.ok((layout?.state?.start ?? 0) < (layout?.root.start ?? 0), 'before the root, which can grow');
      } finally {
        await ebs.volumes.detach(two.volumeId, 'i-inspect');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      ebs.cleanup();
    }
  });

  it('leaves no manifest on the volume that a later builder would trust when an apply does not complete', async () => {
    const dir = mkdtempSync(join('/var/tmp', 'stemcell-state-crash-'));
    const disk = join(dir, 'disk.img');
    const state = { mountPoint: join(dir, 'state'), scratchPath: join(dir, 'scratch', 'manifest.json') };
    const log = () => {};
    try {
      // prepare: a volume whose state partition holds a manifest from a completed apply
      writeFileSync(disk, '');
      execFileSync('truncate', ['-s', '256M', disk]);
      const device = execFileSync('losetup', ['--find', '--show', disk], { encoding: 'utf8' }).trim();
      try {
        const first = await openVolume(device, { bootMode: 'none', state, log });
        try {
          writeFileSync(join(first.root, 'a'), 'one');
          writeFileSync(state.scratchPath, 'a manifest\n');
          await first.manifest?.commit();
          await first.quiesce();
        } finally {
          await first.close();
        }
        // act: the next open finds it; then an apply starts (invalidate) and never completes (no commit)
        const second = await openVolume(device, { bootMode: 'none', state, log });
        let found: string;
        try {
          found = readFileSync(state.scratchPath, 'utf8');
          await second.manifest?.invalidate();
          writeFileSync(join(second.root, 'a'), 'half-applied');
        } finally {
          await second.close();
        }
        const third = await openVolume(device, { bootMode: 'none', state, log });
        let afterCrash: boolean;
        try {
          afterCrash = existsSync(state.scratchPath);
        } finally {
          await third.close();
        }
        // assess
        assert.equal(found, 'a manifest\n', "a completed apply's manifest comes back from the volume");
        assert.equal(afterCrash, false, 'after an apply that did not complete, there is none to trust');
        assert.equal(existsSync(state.mountPoint), false, 'close unmounts and removes the mount point');
      } finally {
        execFileSync('losetup', ['--detach', device]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
