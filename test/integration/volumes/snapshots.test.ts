// Volumes, block snapshots and images together on real loop devices: incremental by construction,
// encrypted at rest, exact on restore, crash-safe, and refused to an account without a key grant.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openVolume } from '#builder/device.ts';
import { AmiStateChangeEvent, SnapshotNotificationEvent } from '#events/aws.ts';
import type { VolumeInfo } from '#ports';
import { AZ, INSTANCE, type LocalEbs, localEbs, MEMBER, needsRoot, OWNER, REGION } from './helpers.ts';

const skip = needsRoot();
const MARKER = 'stemcell-plaintext-marker-';

/** One "revision": attach, open (bootMode none), let `write` change the tree, quiesce, close, detach. */
async function revision(ebs: LocalEbs, volume: VolumeInfo, write: (root: string) => void): Promise<void> {
  const attachment = await ebs.volumes.attach(volume.volumeId, INSTANCE);
  try {
    if (attachment.kind !== 'block') throw new Error('expected a block attachment');
    const opened = await openVolume(attachment.devicePath, {
      bootMode: 'none',
      mountPoint: join(ebs.root, 'mnt'),
      log: () => {},
    });
    try {
      write(opened.root);
      await opened.quiesce();
    } finally {
      await opened.close();
    }
  } finally {
    await ebs.volumes.detach(volume.volumeId, INSTANCE);
  }
}

function sameBytes(a: string, b: string): boolean {
  try {
    execFileSync('cmp', ['--quiet', a, b]);
    return true;
  } catch {
    return false;
  }
}

function blockFiles(ebs: LocalEbs): string[] {
  const dir = join(ebs.root, 'ebs', 'blocks');
  return readdirSync(dir).flatMap((p) => readdirSync(join(dir, p)).map((n) => join(dir, p, n)));
}

async function newVolume(ebs: LocalEbs, token: string): Promise<VolumeInfo> {
  return ebs.volumes.create({
    stream: 'web',
    availabilityZone: AZ,
    sizeGiB: 1,
    kmsKeyId: ebs.kmsKeyId,
    tags: { 'stemcell:stream': 'web' },
    clientToken: token,
  });
}

const register = (ebs: LocalEbs, snapshotId: string, revisionName: string) =>
  ebs.images.register({
    name: `stemcell/web/${revisionName}`,
    description: revisionName,
    snapshotId,
    architecture: 'x86_64',
    bootMode: 'none',
    rootDeviceName: '/dev/xvda',
    tags: { 'stemcell:stream': 'web', 'stemcell:revision': revisionName },
    clientToken: `web:${revisionName}`,
  });

describe('Class: LocalSnapshots with LocalVolumes and LocalImages', { skip }, () => {
  let ebs: LocalEbs;
  let volume: VolumeInfo;
  const snaps: Record<string, string> = {};
  const images: Record<string, string> = {};

  before(async () => {
    if (skip) return;
    ebs = localEbs('block');
    volume = await newVolume(ebs, 'web-volume');
    // revision 1: some content, including a recognisable plaintext
    await revision(ebs, volume, (root) => {
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, 'etc', 'marker'), MARKER.repeat(100_000));
      for (let i = 0; i < 50; i++)
        writeFileSync(join(root, `file-${i}`), `revision 1 file ${i}\n`.repeat(2000));
    });
    snaps.r1 = (
      await ebs.snapshots.create(volume.volumeId, { description: 'r1', tags: {}, clientToken: 'r1' })
    ).snapshotId;
    copyFileSync(ebs.volumes.imagePath(volume.volumeId), join(ebs.root, 'volume-at-r1.img'));
    images.r1 = (await register(ebs, snaps.r1, '1')).imageId;
    // revision 2: one file changed
    await revision(ebs, volume, (root) => writeFileSync(join(root, 'file-7'), 'revision 2\n'));
    snaps.r2 = (
      await ebs.snapshots.create(volume.volumeId, { description: 'r2', tags: {}, clientToken: 'r2' })
    ).snapshotId;
    images.r2 = (await register(ebs, snaps.r2, '2')).imageId;
  });
  after(() => ebs?.cleanup());

  it('restores revision N byte for byte as the volume was at its snapshot, after N+1 was applied', async () => {
    // act
    const out1 = join(ebs.root, 'r1.raw');
    const out2 = join(ebs.root, 'r2.raw');
    await ebs.images.restore(images.r1!, out1, OWNER);
    await ebs.images.restore(images.r2!, out2, OWNER);
    // assess
    assert.equal(
      sameBytes(out1, join(ebs.root, 'volume-at-r1.img')),
      true,
      'revision 1 image = volume at r1',
    );
    assert.equal(
      sameBytes(out2, ebs.volumes.imagePath(volume.volumeId)),
      true,
      'revision 2 image = volume now',
    );
    assert.equal(sameBytes(out1, out2), false);
  });

  it('records an incremental delta, the parent, and the bytes written since the parent', async () => {
    // act
    const m1 = ebs.snapshots.manifest(snaps.r1!)!;
    const m2 = ebs.snapshots.manifest(snaps.r2!)!;
    // assess
    assert.equal(m2.parentId, snaps.r1);
    assert.equal(m1.parentId, undefined);
    assert.equal(
      m1.deltaBytes,
      m1.nonZeroBlocks * 512 * 1024,
      'a first snapshot carries every non-zero block',
    );
    assert.ok(
      m2.deltaBytes > 0 && m2.deltaBytes < m1.deltaBytes / 4,
      `r2 delta ${m2.deltaBytes} vs r1 ${m1.deltaBytes}`,
    );
    assert.ok((m2.writtenBytes ?? 0) > 0, 'block-layer statistics counted the writes of revision 2');
    assert.ok((m1.writtenBytes ?? 0) > (m2.writtenBytes ?? 0));
    assert.ok(m1.blocks.includes(null), 'all-zero blocks are holes');
    assert.equal(m2.blocks.length, (1 * 2 ** 30) / (512 * 1024));
  });

  it('stores each distinct block once and never in plaintext', () => {
    // prepare
    const referenced = new Set(
      [snaps.r1!, snaps.r2!].flatMap((id) => ebs.snapshots.manifest(id)!.blocks.filter((h) => h !== null)),
    );
    // act
    const files = blockFiles(ebs);
    // assess
    assert.equal(files.length, referenced.size);
    for (const file of files)
      assert.equal(readFileSync(file).includes(MARKER), false, `${file} holds plaintext`);
  });

  it('refuses restore to an account without a grant on the customer key, and allows it with one', async () => {
    // act + assess
    await assert.rejects(ebs.images.restore(images.r2!, join(ebs.root, 'member.raw'), MEMBER), {
      name: 'AccessDeniedException',
    });
    await ebs.keys.createGrant(ebs.kmsKeyId, MEMBER, ['Decrypt']);
    await ebs.images.restore(images.r2!, join(ebs.root, 'member.raw'), MEMBER);
    assert.equal(sameBytes(join(ebs.root, 'member.raw'), ebs.volumes.imagePath(volume.volumeId)), true);
  });

  it('emits EBS and EC2 events in the AWS envelope, once per snapshot and image', async () => {
    // act: a retried create and register are no-ops
    const again = await ebs.snapshots.create(volume.volumeId, {
      description: 'r2',
      tags: {},
      clientToken: 'r2',
    });
    const registeredAgain = await register(ebs, snaps.r2!, '2');
    const notifications = ebs.sink
      .ofType('EBS Snapshot Notification')
      .map((e) => SnapshotNotificationEvent.parse(e));
    const amis = ebs.sink.ofType('EC2 AMI State Change').map((e) => AmiStateChangeEvent.parse(e));
    // assess
    assert.equal(again.snapshotId, snaps.r2);
    assert.deepEqual(registeredAgain, { imageId: images.r2, created: false });
    assert.deepEqual(
      notifications.map((n) => n.detail.snapshot_id),
      [`arn:aws:ec2::${REGION}:snapshot/${snaps.r1}`, `arn:aws:ec2::${REGION}:snapshot/${snaps.r2}`],
    );
    // The source volume, as EBS names it (register does not parse it, so it is read from the raw event).
    const raw = ebs.sink.ofType('EBS Snapshot Notification')[0] as
      | { detail?: { source?: string } }
      | undefined;
    assert.equal(raw?.detail?.source, `arn:aws:ec2::${REGION}:volume/${volume.volumeId}`);
    assert.equal(notifications[0]?.account, OWNER);
    assert.deepEqual(
      amis.map((a) => [a.detail.ImageId, a.detail.State]),
      [
        [images.r1, 'pending'],
        [images.r1, 'available'],
        [images.r2, 'pending'],
        [images.r2, 'available'],
      ],
    );
    const image = await ebs.images.get(images.r2!);
    assert.equal(image?.encrypted, true);
    assert.equal(image?.kmsKeyId, ebs.kmsKeyId);
  });

  it('leaves no snapshot that looks complete when it fails midway, and collects its blocks later', async () => {
    // prepare: the block store fails on the third new block
    await revision(ebs, volume, (root) => {
      for (let i = 0; i < 8; i++) writeFileSync(join(root, `crash-${i}`), `${i}`.repeat(1_000_000));
    });
    const before = ebs.snapshots.list().length;
    const store = ebs.snapshots.blocks;
    const put = store.put.bind(store);
    let calls = 0;
    store.put = async (...args) => {
      if (++calls === 3) throw new Error('disk full (injected)');
      return put(...args);
    };
    // act
    try {
      await assert.rejects(
        ebs.snapshots.create(volume.volumeId, { description: 'r3', tags: {}, clientToken: 'r3' }),
        /disk full/,
      );
    } finally {
      store.put = put;
    }
    const failed = SnapshotNotificationEvent.parse(ebs.sink.ofType('EBS Snapshot Notification').at(-1));
    const latest = ebs.snapshots.latestForVolume(volume.volumeId);
    const r3 = await ebs.snapshots.create(volume.volumeId, {
      description: 'r3',
      tags: {},
      clientToken: 'r3',
    });
    await ebs.snapshots.delete(r3.snapshotId);
    // assess
    assert.equal(ebs.snapshots.list().length, before, 'no snapshot left by the failure or after delete');
    assert.equal(latest?.snapshotId, snaps.r2, 'the failed snapshot is not a parent');
    assert.equal(failed.detail.result, 'failed');
    assert.match(failed.detail.cause, /disk full/);
    const referenced = new Set(ebs.snapshots.list().flatMap((m) => m.blocks.filter((h) => h !== null)));
    assert.equal(blockFiles(ebs).length, referenced.size, 'orphan blocks collected');
    await ebs.images.restore(images.r1!, join(ebs.root, 'r1-again.raw'), OWNER);
    assert.equal(sameBytes(join(ebs.root, 'r1-again.raw'), join(ebs.root, 'volume-at-r1.img')), true);
  });

  it('keeps the volume attachable and findable for its stream', async () => {
    // act
    const found = await ebs.volumes.findForStream('web', AZ);
    const again = await newVolume(ebs, 'web-volume');
    // assess
    assert.equal(found?.volumeId, volume.volumeId);
    assert.equal(again.volumeId, volume.volumeId, 'create is idempotent on its client token');
    assert.equal(found?.state, 'available');
    assert.equal(statSync(ebs.volumes.imagePath(volume.volumeId)).size, 2 ** 30);
  });
});

describe('Class: LocalSnapshots on the directory fallback', () => {
  it('snapshots a directory volume as a tar of its tree and restores it', async () => {
    // prepare
    const ebs = localEbs('directory');
    try {
      const volume = await newVolume(ebs, 'dir-volume');
      const attachment = await ebs.volumes.attach(volume.volumeId, INSTANCE);
      assert.equal(attachment.kind, 'directory');
      if (attachment.kind !== 'directory') return;
      mkdirSync(join(attachment.path, 'etc'));
      writeFileSync(join(attachment.path, 'etc', 'hostname'), 'fallback\n');
      await ebs.volumes.detach(volume.volumeId, INSTANCE);
      // act
      const snap = await ebs.snapshots.create(volume.volumeId, {
        description: 'd',
        tags: {},
        clientToken: 'd',
      });
      const out = join(ebs.root, 'restored.tar');
      const restored = await ebs.snapshots.restore(snap.snapshotId, out, OWNER);
      const listing = execFileSync('tar', ['-tf', out], { encoding: 'utf8' });
      // assess
      assert.equal(restored.format, 'tar');
      assert.match(listing, /^\.\/etc\/hostname$/m);
      assert.equal(snap.writtenBytes, undefined, 'no block-layer statistics for a directory');
    } finally {
      ebs.cleanup();
      rmSync(ebs.root, { recursive: true, force: true });
    }
  });

  it('a snapshot taken while its parent is deleted (expire in `dev`) keeps every block it needs', async () => {
    // prepare: revision A on the volume, then the same tree again as B, whose parent A is deleted meanwhile
    const ebs = localEbs('directory');
    try {
      const volume = await newVolume(ebs, 'gc-volume');
      const attachment = await ebs.volumes.attach(volume.volumeId, INSTANCE);
      if (attachment.kind !== 'directory') throw new Error('expected a directory volume');
      const payload = Buffer.alloc(6 * 1024 * 1024);
      for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
      writeFileSync(join(attachment.path, 'payload.bin'), payload);
      await ebs.volumes.detach(volume.volumeId, INSTANCE);
      const a = await ebs.snapshots.create(volume.volumeId, { description: 'a', tags: {}, clientToken: 'a' });
      // act: B starts (and reads its parent), then A's delete collects garbage before B's manifest exists
      const b = ebs.snapshots.create(volume.volumeId, { description: 'b', tags: {}, clientToken: 'b' });
      await ebs.snapshots.delete(a.snapshotId);
      const snap = await b;
      await ebs.snapshots.collectGarbage();
      const out = join(ebs.root, 'restored.tar');
      await ebs.snapshots.restore(snap.snapshotId, out, OWNER);
      const restored = execFileSync('tar', ['-xOf', out, './payload.bin'], { maxBuffer: 16 * 1024 * 1024 });
      // assess
      assert.ok(restored.equals(payload), 'B restores the payload byte for byte');
      assert.equal(ebs.snapshots.manifest(a.snapshotId), undefined, 'A is gone');
    } finally {
      ebs.cleanup();
      rmSync(ebs.root, { recursive: true, force: true });
    }
  });
});
