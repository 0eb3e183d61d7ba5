// makeBootable on plain directories (no device: no bootloader install): what it writes, and what it leaves.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fstab, makeBootable, NoKernelError, newestKernel } from '#builder/boot.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tree(kernels: string[] = []): string {
  const root = mkdtempSync(join(tmpdir(), 'stemcell-boot-'));
  dirs.push(root);
  mkdirSync(join(root, 'etc'));
  mkdirSync(join(root, 'boot'));
  for (const v of kernels) {
    writeFileSync(join(root, 'boot', `vmlinuz-${v}`), 'k');
    writeFileSync(join(root, 'boot', `initrd.img-${v}`), 'i');
  }
  return root;
}
const release = {
  stream: 'web',
  revision: '2026.11.21',
  sequence: 7,
  sha256: 'b'.repeat(64),
  label: 'stemcell-root',
};

describe('Function: makeBootable()', () => {
  it('writes fstab by label, grub.cfg for the newest kernel with a serial console, and the release file', async () => {
    // prepare
    const root = tree(['6.1.0-9-cloud-amd64', '6.1.0-10-cloud-amd64']);
    // act
    const result = await makeBootable(root, { ...release, bootMode: 'legacy-bios' });
    // assess
    const cfg = readFileSync(join(root, 'boot/grub/grub.cfg'), 'utf8');
    assert.equal(result.kernel, '/boot/vmlinuz-6.1.0-10-cloud-amd64');
    assert.match(
      cfg,
      /linux \/boot\/vmlinuz-6\.1\.0-10-cloud-amd64 root=LABEL=stemcell-root ro .*console=ttyS0/,
    );
    assert.match(cfg, /initrd \/boot\/initrd\.img-6\.1\.0-10-cloud-amd64/);
    assert.match(readFileSync(join(root, 'etc/fstab'), 'utf8'), /^LABEL=stemcell-root \/ ext4 /m);
    assert.equal(
      readFileSync(join(root, 'etc/stemcell-release'), 'utf8').split('\n').slice(1).join('\n'),
      `STREAM=web\nREVISION=2026.11.21\nSEQUENCE=7\nSOURCE_SHA256=${'b'.repeat(64)}\n`,
    );
    assert.equal(result.bootloaderInstalled, false, 'no device, no bootloader');
  });

  it('rewrites nothing when nothing changed, and only the release file for a new revision', async () => {
    // prepare
    const root = tree(['6.1.0-10-cloud-amd64']);
    await makeBootable(root, { ...release, bootMode: 'legacy-bios' });
    const cfgInode = statSync(join(root, 'boot/grub/grub.cfg')).mtimeMs;
    // act
    const same = await makeBootable(root, { ...release, bootMode: 'legacy-bios' });
    const next = await makeBootable(root, {
      ...release,
      revision: '2026.11.22',
      sequence: 8,
      bootMode: 'legacy-bios',
    });
    // assess
    assert.deepEqual(same.written, []);
    assert.deepEqual(next.written, ['etc/stemcell-release']);
    assert.equal(statSync(join(root, 'boot/grub/grub.cfg')).mtimeMs, cfgInode);
  });

  it('refuses a bootable stream without a kernel, and accepts one with boot mode none', async () => {
    // prepare
    const root = tree();
    // act + assess
    await assert.rejects(makeBootable(root, { ...release, bootMode: 'legacy-bios' }), NoKernelError);
    await assert.rejects(makeBootable(root, { ...release, bootMode: 'uefi' }), /no kernel in .*needs one/);
    const none = await makeBootable(root, { ...release, bootMode: 'none' });
    assert.equal(none.kernel, undefined);
    assert.match(readFileSync(join(root, 'etc/stemcell-release'), 'utf8'), /REVISION=2026\.11\.21/);
  });
});

describe('Function: fstab()', () => {
  it('replaces the root entry and keeps the other mounts', () => {
    // prepare
    const existing =
      '# UNCONFIGURED FSTAB FOR BASE SYSTEM\n/dev/sda1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults 0 0\n';
    // act
    const out = fstab(existing, 'stemcell-root');
    // assess
    assert.doesNotMatch(out, /UNCONFIGURED|\/dev\/sda1/);
    assert.match(out, /^LABEL=stemcell-root \/ ext4 defaults,noatime,errors=remount-ro 0 1$/m);
    assert.match(out, /^tmpfs \/tmp tmpfs defaults 0 0$/m);
    assert.equal(fstab(out, 'stemcell-root'), out, 'stable: a second pass changes nothing');
  });
});

describe('Function: newestKernel()', () => {
  it('orders versions numerically and tolerates a missing initrd', async () => {
    // prepare
    const root = tree();
    writeFileSync(join(root, 'boot', 'vmlinuz-5.10.0-9-amd64'), 'k');
    writeFileSync(join(root, 'boot', 'vmlinuz-5.10.0-28-amd64'), 'k');
    // act
    const k = await newestKernel(root);
    // assess
    assert.deepEqual(k, { kernel: '/boot/vmlinuz-5.10.0-28-amd64', version: '5.10.0-28-amd64' });
  });
});
