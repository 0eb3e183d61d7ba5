// Proof that what stemcell builds boots: a real Debian (kernel, systemd, serial getty), revision 1 then
// revision 2 applied onto ONE loop volume through the builder's pieces, snapshotted and registered; the
// revision-2 image is exported to a raw disk and booted under qemu (software emulation) to its login prompt.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openVolume } from '#builder/device.ts';
import { imageName } from '#core/naming.ts';
import { AmiStateChangeEvent, SnapshotNotificationEvent } from '#events/aws.ts';
import type { SnapshotInfo } from '#ports';
import {
  AZ,
  INSTANCE,
  type LocalEbs,
  localEbs,
  needsRoot,
  OWNER,
} from '#test/integration/volumes/helpers.ts';
import { ensureDebianTarballs } from '#test/support/debian.ts';
import { applyTarball } from '#unpack/index.ts';

// Generous: TCG on a shared machine, where eight test suites may run at once (an idle boot takes ~30 s).
const BOOT_TIMEOUT_MS = 900_000;
const STREAM = 'debian';

/** Boots a raw disk under qemu (TCG) and resolves with the console once a login prompt shows. */
function bootToLogin(disk: string, timeoutMs: number): Promise<{ console: string; ms: number }> {
  const started = Date.now();
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-m', '1024', '-nographic', '-monitor', 'none', '-serial', 'stdio', '-no-reboot'],
      // -snapshot: the guest's writes go to a throw-away overlay, the exported image stays as built.
      ...['-drive', `file=${disk},format=raw,if=virtio`, '-snapshot'],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      qemu.kill('SIGKILL');
      reject(
        new Error(
          `no login prompt within ${timeoutMs / 1000} s; console ended with:\n${output.slice(-3000)}`,
        ),
      );
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString('latin1');
      if (/\blogin: *$/m.test(output)) {
        clearTimeout(timer);
        qemu.kill('SIGKILL');
        resolve({ console: output, ms: Date.now() - started });
      }
    };
    qemu.stdout.on('data', onData);
    qemu.stderr.on('data', onData);
    qemu.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    qemu.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') return;
      clearTimeout(timer);
      reject(new Error(`qemu exited (${code ?? signal}) before a login prompt:\n${output.slice(-3000)}`));
    });
  });
}

/** Reads one file out of the root partition of a raw disk image, without mounting it. */
function readFromImage(disk: string, rootStartSector: number, path: string): string {
  const loop = execFileSync(
    'losetup',
    ['--find', '--show', '--read-only', '--offset', String(rootStartSector * 512), disk],
    {
      encoding: 'utf8',
    },
  ).trim();
  try {
    return execFileSync('debugfs', ['-R', `cat ${path}`, loop], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } finally {
    execFileSync('losetup', ['--detach', loop]);
  }
}

describe('Boot: a Debian stream built revision by revision onto one volume', () => {
  const skip = needsRoot();
  let ebs: LocalEbs;
  let tarballs: { rev1: string; rev2: string };

  before(async () => {
    if (skip) return;
    tarballs = await ensureDebianTarballs();
    ebs = localEbs('block');
  });
  after(() => ebs?.cleanup());

  it('boots the exported revision-2 image to a login prompt on the serial console', {
    timeout: 30 * 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    // prepare: one volume for the stream
    const volume = await ebs.volumes.create({
      stream: STREAM,
      availabilityZone: AZ,
      sizeGiB: 2,
      kmsKeyId: ebs.kmsKeyId,
      tags: { 'stemcell:stream': STREAM },
      clientToken: `volume-${STREAM}`,
    });
    const mountPoint = join(ebs.root, 'mnt', volume.volumeId);
    const manifestPath = join(ebs.root, 'manifests', `${volume.volumeId}.json`);
    mkdirSync(join(ebs.root, 'manifests'), { recursive: true });

    // act: revision 1, then revision 2, each applied, made bootable, quiesced, snapshotted and registered
    const built: Array<{ snapshot: SnapshotInfo; imageId: string; fresh: boolean; rootStart: number }> = [];
    for (const [sequence, tarball] of [tarballs.rev1, tarballs.rev2].entries()) {
      const revision = String(sequence + 1);
      const attachment = await ebs.volumes.attach(volume.volumeId, INSTANCE);
      assert.equal(attachment.kind, 'block');
      let fresh = false;
      let rootStart = 0;
      try {
        if (attachment.kind !== 'block') throw new Error('expected a block attachment');
        const opened = await openVolume(attachment.devicePath, { bootMode: 'legacy-bios', mountPoint });
        try {
          fresh = opened.fresh;
          rootStart = opened.layout?.root.start ?? 0;
          const stats = await applyTarball(createReadStream(tarball), opened.root, { manifestPath });
          await opened.makeBootable({
            stream: STREAM,
            revision,
            sequence: sequence + 1,
            sha256: stats.inputSha256,
          });
          await opened.quiesce();
        } finally {
          await opened.close();
        }
      } finally {
        await ebs.volumes.detach(volume.volumeId, INSTANCE);
      }
      const snapshot = await ebs.snapshots.create(volume.volumeId, {
        description: `${STREAM} ${revision}`,
        tags: { 'stemcell:stream': STREAM, 'stemcell:revision': revision },
        clientToken: `${STREAM}:${revision}`,
      });
      const { imageId } = await ebs.images.register({
        name: imageName(STREAM, revision),
        description: `${STREAM} ${revision}`,
        snapshotId: snapshot.snapshotId,
        architecture: 'x86_64',
        bootMode: 'legacy-bios',
        rootDeviceName: '/dev/xvda',
        tags: { 'stemcell:stream': STREAM, 'stemcell:revision': revision },
        clientToken: `${STREAM}:${revision}`,
      });
      built.push({ snapshot, imageId, fresh, rootStart });
    }
    const [rev1, rev2] = built;
    assert.ok(rev1 && rev2);
    const disk = join(ebs.root, 'rev2.raw');
    await ebs.images.restore(rev2.imageId, disk, OWNER);
    const release = readFromImage(disk, rev2.rootStart, '/etc/stemcell-release');
    const boot = await bootToLogin(disk, BOOT_TIMEOUT_MS);
    t.diagnostic(
      `rev1 delta ${mib(rev1.snapshot.deltaBytes)} written ${mib(rev1.snapshot.writtenBytes)}; ` +
        `rev2 delta ${mib(rev2.snapshot.deltaBytes)} written ${mib(rev2.snapshot.writtenBytes)}; ` +
        `login prompt after ${(boot.ms / 1000).toFixed(0)} s`,
    );

    // assess: one filesystem, reused; an incremental second snapshot; the right release inside; it boots
    assert.equal(rev1.fresh, true, 'revision 1 creates the filesystem');
    assert.equal(rev2.fresh, false, 'revision 2 reuses it');
    assert.ok(
      (rev2.snapshot.deltaBytes ?? 0) < (rev1.snapshot.deltaBytes ?? 0) / 4,
      'revision 2 is incremental',
    );
    assert.match(release, /^REVISION=2$/m);
    assert.match(release, /^STREAM=debian$/m);
    assert.match(boot.console, /Debian GNU\/Linux/);
    assert.match(boot.console, /login: *$/m);
    const notifications = ebs.sink
      .ofType('EBS Snapshot Notification')
      .map((e) => SnapshotNotificationEvent.parse(e));
    assert.deepEqual(
      notifications.map((n) => n.detail.result),
      ['succeeded', 'succeeded'],
    );
    const amiStates = ebs.sink
      .ofType('EC2 AMI State Change')
      .map((e) => AmiStateChangeEvent.parse(e).detail.State);
    assert.deepEqual(amiStates, ['pending', 'available', 'pending', 'available']);
  });
});

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '?' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
