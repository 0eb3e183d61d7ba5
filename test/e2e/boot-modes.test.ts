// The builder's output boots with the firmware of each boot mode: a demo sample (Debian's cloud kernel, busybox
// init) written onto a GPT disk by openVolume + makeBootable, then booted under qemu (TCG): SeaBIOS for
// x86_64 legacy-bios, OVMF for x86_64 UEFI, AAVMF on `-M virt` for arm64 UEFI. An image without an init is
// the negative case: its kernel panics and the runner says so. Packages come through apt (cached).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Architecture } from '#core/model/types.ts';
import { prepareSampleBoot, type SampleBoot } from '#demo/sample-rootfs.ts';
import { bootUntilMarker } from '#local/qemu.ts';
import { needsRoot } from '#test/integration/volumes/helpers.ts';
import { buildSampleDisk, loopsUnder } from '#test/support/sample-disk.ts';

// Generous: TCG on a shared, loaded machine. The boots themselves take 10-25 s here.
const BOOT_TIMEOUT_MS = 300_000;

describe('Boot modes: the builder writes images that boot under their own firmware', () => {
  const skip = needsRoot();
  let dir: string;
  const boots = new Map<Architecture, SampleBoot>();

  before(async () => {
    if (skip) return;
    dir = mkdtempSync('/var/tmp/stemcell-boot-modes-');
    for (const a of ['x86_64', 'arm64'] as const) boots.set(a, await prepareSampleBoot(a));
  });
  after(() => {
    if (!dir) return;
    assert.deepEqual(loopsUnder(dir), [], 'no loop device left on this test files');
    rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    { architecture: 'x86_64', bootMode: 'legacy-bios', loader: 'GRUB (i386-pc)' },
    { architecture: 'x86_64', bootMode: 'uefi', loader: 'BOOTX64.EFI' },
    { architecture: 'arm64', bootMode: 'uefi', loader: 'BOOTAA64.EFI' },
  ] as const;

  // The three boots run side by side (two cores here): qemu is the slow part.
  it('boots x86_64 legacy-bios, x86_64 UEFI and arm64 UEFI to the login marker', {
    timeout: 15 * 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    // prepare
    const disks = await Promise.all(
      cases.map(async (c) => {
        const name = `${c.architecture.replace('_', '')}-${c.bootMode}`;
        const boot = boots.get(c.architecture);
        assert.ok(boot);
        return { ...c, name, ...(await buildSampleDisk({ dir, name, ...c, boot })) };
      }),
    );
    // act
    const results = await Promise.all(
      disks.map(async (d) => ({
        ...d,
        consoleLog: join(dir, `${d.name}.console.log`),
        result: await bootUntilMarker({
          disk: d.disk,
          architecture: d.architecture,
          bootMode: d.bootMode,
          marker: 'login:',
          consoleLog: join(dir, `${d.name}.console.log`),
          workDir: join(dir, 'work'),
          timeoutMs: BOOT_TIMEOUT_MS,
        }),
      })),
    );
    // assess
    for (const r of results) {
      assert.equal(r.bootloaderInstalled, true, `${r.name}: ${r.loader} installed`);
      assert.ok(
        r.result.passed,
        `${r.name}: ${r.result.passed ? '' : r.result.reason}\n${r.result.lastLines.join('\n')}`,
      );
      t.diagnostic(`${r.name}: login marker after ${r.result.seconds.toFixed(1)} s`);
      const consoleText = readFileSync(r.consoleLog, 'latin1');
      // The init read /etc/stemcell-release of this very image, on this architecture.
      assert.match(
        consoleText,
        new RegExp(
          `stream ${r.name} revision 1 sequence 1 \\(${r.architecture === 'arm64' ? 'aarch64' : 'x86_64'}\\)`,
        ),
      );
      if (r.architecture === 'arm64') assert.match(consoleText, /console \[ttyAMA0\] enabled/);
    }
  });

  it('reports a kernel panic, not a pass, for an image without an init', {
    timeout: 10 * 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    // prepare
    const boot = boots.get('arm64');
    assert.ok(boot);
    const { disk } = await buildSampleDisk({
      dir,
      name: 'noinit',
      architecture: 'arm64',
      bootMode: 'uefi',
      boot,
      withoutInit: true,
    });
    // act
    const result = await bootUntilMarker({
      disk,
      architecture: 'arm64',
      bootMode: 'uefi',
      marker: 'login:',
      consoleLog: join(dir, 'noinit.console.log'),
      workDir: join(dir, 'work-noinit'),
      timeoutMs: BOOT_TIMEOUT_MS,
    });
    // assess
    assert.equal(result.passed, false);
    if (result.passed) return;
    assert.match(result.reason, /Kernel panic - not syncing/);
    assert.ok(result.lastLines.some((l) => /No working init found|Kernel panic/.test(l)));
  });
});
