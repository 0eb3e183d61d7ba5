// Proof that what stemcell builds boots: real Debian trees, revision 1 then revision 2 applied onto ONE loop
// volume per stream through the builder's pieces, snapshotted and registered; each revision-2 image is exported
// to a raw disk and booted under qemu (software emulation) with the firmware of its boot mode to its login
// prompt: x86_64 legacy-bios (SeaBIOS) and x86_64 UEFI (OVMF) from the same mmdebstrap tree (systemd, serial
// getty), arm64 UEFI (AAVMF, qemu-system-aarch64 -M virt) from an arm64 tree extracted by mmdebstrap on this
// x86_64 machine (test/support/debian.ts). The boots run side by side, at most one per core.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openVolume } from '#builder/device.ts';
import { imageName } from '#core/model/naming.ts';
import type { Architecture, BootMode } from '#core/model/types.ts';
import { AmiStateChangeEvent, SnapshotNotificationEvent } from '#events/aws.ts';
import { bootUntilMarker } from '#local/qemu.ts';
import type { SnapshotInfo } from '#ports';
import {
  AZ,
  INSTANCE,
  type LocalEbs,
  localEbs,
  needsRoot,
  OWNER,
} from '#test/integration/volumes/helpers.ts';
import {
  type DebianTarballs,
  ensureDebianArm64Tarballs,
  ensureDebianTarballs,
} from '#test/support/debian.ts';
import { applyTarball } from '#unpack/index.ts';

// Generous: TCG on a shared machine, where other suites run at once (an idle boot takes ~30 s).
const BOOT_TIMEOUT_MS = 900_000;

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

interface Case {
  stream: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'>;
  tarballs: () => Promise<DebianTarballs>;
  /** What the console shows once this tree is up, besides the login prompt. */
  console: RegExp;
}

const CASES: Case[] = [
  {
    stream: 'debian-bios',
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    tarballs: ensureDebianTarballs,
    console: /Debian GNU\/Linux 12 stemcell ttyS0/,
  },
  {
    stream: 'debian-uefi',
    architecture: 'x86_64',
    bootMode: 'uefi',
    tarballs: ensureDebianTarballs,
    console: /Debian GNU\/Linux 12 stemcell ttyS0/,
  },
  {
    stream: 'debian-arm64',
    architecture: 'arm64',
    bootMode: 'uefi',
    tarballs: ensureDebianArm64Tarballs,
    // The init read the booted image's own /etc/stemcell-release, on an aarch64 CPU.
    console: /Debian GNU\/Linux 12 \(bookworm\) \(aarch64\): stemcell stream debian-arm64 revision 2/,
  },
];

interface Built {
  c: Case;
  rev1: { snapshot: SnapshotInfo; fresh: boolean };
  rev2: { snapshot: SnapshotInfo; fresh: boolean };
  disk: string;
  release: string;
}

/** Runs `fn` over `items`, at most `limit` at once. */
async function bounded<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

describe('Boot: Debian streams built revision by revision onto one volume each', () => {
  const skip = needsRoot();
  let ebs: LocalEbs;

  before(async () => {
    if (skip) return;
    ebs = localEbs('block');
  });
  after(() => ebs?.cleanup());

  /** Revision 1 then 2 of one stream onto its volume, each registered; revision 2 exported to a raw disk. */
  async function buildStream(c: Case): Promise<Built> {
    const tarballs = await c.tarballs();
    const volume = await ebs.volumes.create({
      stream: c.stream,
      availabilityZone: AZ,
      sizeGiB: 2,
      kmsKeyId: ebs.kmsKeyId,
      tags: { 'stemcell:stream': c.stream },
      clientToken: `volume-${c.stream}`,
    });
    const mountPoint = join(ebs.root, 'mnt', volume.volumeId);
    const manifestPath = join(ebs.root, 'manifests', `${volume.volumeId}.json`);
    mkdirSync(join(ebs.root, 'manifests'), { recursive: true });
    const built: Array<{ snapshot: SnapshotInfo; imageId: string; fresh: boolean; rootStart: number }> = [];
    for (const [sequence, tarball] of [tarballs.rev1, tarballs.rev2].entries()) {
      const revision = String(sequence + 1);
      const attachment = await ebs.volumes.attach(volume.volumeId, INSTANCE);
      assert.equal(attachment.kind, 'block');
      let fresh = false;
      let rootStart = 0;
      try {
        if (attachment.kind !== 'block') throw new Error('expected a block attachment');
        const opened = await openVolume(attachment.devicePath, {
          bootMode: c.bootMode,
          architecture: c.architecture,
          mountPoint,
        });
        try {
          fresh = opened.fresh;
          rootStart = opened.layout?.root.start ?? 0;
          const stats = await applyTarball(createReadStream(tarball), opened.root, { manifestPath });
          await opened.makeBootable({
            stream: c.stream,
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
        description: `${c.stream} ${revision}`,
        tags: { 'stemcell:stream': c.stream, 'stemcell:revision': revision },
        clientToken: `${c.stream}:${revision}`,
      });
      const { imageId } = await ebs.images.register({
        name: imageName(c.stream, revision),
        description: `${c.stream} ${revision}`,
        snapshotId: snapshot.snapshotId,
        architecture: c.architecture,
        bootMode: c.bootMode,
        rootDeviceName: '/dev/xvda',
        tags: { 'stemcell:stream': c.stream, 'stemcell:revision': revision },
        clientToken: `${c.stream}:${revision}`,
      });
      built.push({ snapshot, imageId, fresh, rootStart });
    }
    const [rev1, rev2] = built;
    assert.ok(rev1 && rev2);
    const disk = join(ebs.root, `${c.stream}-rev2.raw`);
    await ebs.images.restore(rev2.imageId, disk, OWNER);
    const release = readFromImage(disk, rev2.rootStart, '/etc/stemcell-release');
    return { c, rev1, rev2, disk, release };
  }

  it('boots the exported revision-2 image of x86_64 BIOS, x86_64 UEFI and arm64 UEFI to a login prompt', {
    timeout: 45 * 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    // prepare: the streams are built one after the other (loop devices, mounts); the boots are the slow part
    const streams: Built[] = [];
    for (const c of CASES) streams.push(await buildStream(c));

    // act: boot the three side by side, bounded by the machine's cores
    const boots = await bounded(streams, Math.max(1, availableParallelism()), async (b) => {
      const consoleLog = join(ebs.root, `${b.c.stream}.console.log`);
      const result = await bootUntilMarker({
        disk: b.disk,
        architecture: b.c.architecture,
        bootMode: b.c.bootMode,
        marker: 'login:',
        consoleLog,
        workDir: join(ebs.root, `work-${b.c.stream}`),
        memoryMiB: 1024,
        timeoutMs: BOOT_TIMEOUT_MS,
      });
      return { ...b, result, console: readFileSync(consoleLog, 'latin1') };
    });

    // assess: per stream, one filesystem reused; an incremental second snapshot; the right release; it boots
    for (const b of boots) {
      const name = `${b.c.stream} (${b.c.architecture} ${b.c.bootMode})`;
      assert.ok(
        b.result.passed,
        `${name}: ${b.result.passed ? '' : b.result.reason}\n${b.result.lastLines.join('\n')}`,
      );
      t.diagnostic(
        `${name}: rev1 delta ${mib(b.rev1.snapshot.deltaBytes)}, rev2 delta ${mib(b.rev2.snapshot.deltaBytes)}; ` +
          `login prompt after ${b.result.seconds.toFixed(1)} s`,
      );
      assert.equal(b.rev1.fresh, true, `${name}: revision 1 creates the filesystem`);
      assert.equal(b.rev2.fresh, false, `${name}: revision 2 reuses it`);
      assert.ok(
        (b.rev2.snapshot.deltaBytes ?? 0) < (b.rev1.snapshot.deltaBytes ?? 0) / 4,
        `${name}: revision 2 is incremental`,
      );
      assert.match(b.release, /^REVISION=2$/m);
      assert.match(b.release, new RegExp(`^STREAM=${b.c.stream}$`, 'm'));
      assert.match(b.console, b.c.console, name);
      assert.match(b.console, /login: *$/m, name);
      if (b.c.architecture === 'arm64') assert.match(b.console, /console \[ttyAMA0\] enabled/);
    }
    const notifications = ebs.sink
      .ofType('EBS Snapshot Notification')
      .map((e) => SnapshotNotificationEvent.parse(e));
    assert.deepEqual(
      notifications.map((n) => n.detail.result),
      CASES.flatMap(() => ['succeeded', 'succeeded']),
    );
    const amiStates = ebs.sink
      .ofType('EC2 AMI State Change')
      .map((e) => AmiStateChangeEvent.parse(e).detail.State);
    assert.deepEqual(
      amiStates,
      CASES.flatMap(() => ['pending', 'available', 'pending', 'available']),
    );
  });
});

function mib(bytes: number | undefined): string {
  return bytes === undefined ? '?' : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
