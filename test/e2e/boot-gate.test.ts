// The boot gate in the whole local flow, with real boots under qemu: revision 1 of an arm64 UEFI stream boots
// and moves the launch templates; revision 2 has no init, its kernel panics, and the release ends in
// "Build Failed" with reason `boot: …`, no launch template moved, the image kept but deprecated and tagged, and
// the console log kept where `stemcell status` says. Sample kernels come through apt (cached).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { formatRelease } from '#cli/commands/status.ts';
import { parseConfig } from '#config/load.ts';
import { objectKey } from '#core/model/naming.ts';
import { BOOT_CHECK_TAG } from '#core/release/boot-gate.ts';
import { buildSampleTarball, prepareSampleBoot, type SampleBoot } from '#demo/sample-rootfs.ts';
import { LocalStack } from '#local/stack.ts';
import { needsRoot } from '#test/integration/volumes/helpers.ts';
import { loopsUnder } from '#test/support/sample-disk.ts';

const REGION = 'eu-west-1';
const ACCOUNT = '300000000001';
const STREAM = 'arm-app';

function config() {
  return parseConfig(
    {
      homeRegion: REGION,
      bucket: 'stemcell-gate-tarballs',
      streams: {
        [STREAM]: {
          regions: [REGION],
          architecture: 'arm64',
          bootMode: 'uefi',
          volumeSizeGiB: 1,
          sharing: { organization: true },
          // Generous: TCG on a loaded machine; the panic is seen long before.
          bootCheck: { mode: 'qemu', timeoutSeconds: 600 },
        },
      },
      local: {
        organizationId: 'o-gate0000001',
        managementAccountId: '300000000000',
        ous: [{ id: 'ou-gate-11111111', name: 'all' }],
        accounts: [{ id: ACCOUNT, name: 'app', ou: 'ou-gate-11111111' }],
        launchTemplates: [
          { account: ACCOUNT, region: REGION, stream: STREAM, name: 'app-lt', autoScalingGroup: 'app-asg' },
        ],
      },
    },
    'boot gate test',
  );
}

describe('Boot gate: no image is announced before it has booted', () => {
  const skip = needsRoot();
  let dir: string;
  let boot: SampleBoot;
  let stack: LocalStack | undefined;
  const events: Array<{ detailType: string; detail: Record<string, unknown> }> = [];

  before(async () => {
    if (skip) return;
    dir = mkdtempSync('/var/tmp/stemcell-boot-gate-');
    boot = await prepareSampleBoot('arm64');
  });
  after(async () => {
    await stack?.stop();
    if (!dir) return;
    assert.deepEqual(loopsUnder(dir), [], 'no loop device left on this test files');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a revision whose kernel panics ends in Build Failed "boot: …" and moves no launch template', {
    timeout: 20 * 60_000,
  }, async (t) => {
    if (skip) return t.skip(skip);
    // prepare
    stack = new LocalStack({
      dataDir: join(dir, 'data'),
      config: config(),
      volumeBackend: 'block',
      log: () => {},
    });
    stack.centralBus.addRule('test-capture', { source: ['stemcell'] }, async (e) => {
      events.push({ detailType: e['detail-type'], detail: e.detail as Record<string, unknown> });
    });
    await stack.start();
    const publish = async (revision: number, withoutInit: boolean) => {
      const tarball = await buildSampleTarball(join(dir, 'work'), join(dir, `r${revision}.tar.zst`), {
        stream: STREAM,
        revision,
        withKernel: true,
        boot,
        files: 40,
        ...(withoutInit ? { withoutInit } : {}),
      });
      const body = await readFile(tarball);
      await stack?.publish(objectKey(STREAM, `r${revision}`), body, {
        sha256: createHash('sha256').update(body).digest('hex'),
      });
      await stack?.settle();
    };
    const defaultImage = () => {
      const member = stack?.members.forAccount(ACCOUNT, REGION);
      const template = member?.launchTemplateByName('app-lt');
      return template && member?.defaultImageId(template.launchTemplateId);
    };

    // act
    await publish(1, false);
    const afterGood = defaultImage();
    await publish(2, true);

    // assess: revision 1 booted, was announced, and the launch template follows it
    const [r1, r2] = ['r1', 'r2'].map((rev) =>
      stack?.releases.list(STREAM).then((l) => l.find((r) => r.revision === rev)),
    );
    const good = (await r1)?.regions[REGION];
    assert.equal(good?.state, 'announced');
    assert.equal(good?.bootCheck?.passed, true);
    assert.equal(afterGood, good?.imageId);
    t.diagnostic(`arm64 UEFI boot to the marker: ${good?.bootCheck?.seconds?.toFixed(1)} s`);

    // revision 2: failed at the gate, nothing announced, nothing moved
    const bad = (await r2)?.regions[REGION];
    assert.equal(bad?.state, 'failed');
    assert.match(bad?.reason ?? '', /^boot: Kernel panic - not syncing/);
    assert.match(bad?.reason ?? '', /last console lines:/);
    const failed = events.filter((e) => e.detailType === 'Build Failed');
    assert.equal(failed.length, 1);
    assert.match(String(failed[0]?.detail.reason), /^boot: /);
    assert.equal(failed[0]?.detail.revision, 'r2');
    const ready = events.filter((e) => e.detailType === 'Image Ready').map((e) => e.detail.revision);
    assert.deepEqual(ready, ['r1'], 'Image Ready for revision 1 only');
    assert.equal(defaultImage(), good?.imageId, 'the launch template did not move');

    // the image is kept for a look, deprecated, tagged with why; the console log is where status says
    const image = await stack.region(REGION).images.get(bad?.imageId ?? '');
    assert.equal(image?.state, 'available');
    assert.ok(image?.deprecatedAt);
    assert.match(image?.tags[BOOT_CHECK_TAG] ?? '', /^boot: Kernel panic/);
    const consoleLog = bad?.bootCheck?.consoleLog ?? '';
    assert.ok(existsSync(consoleLog), `console log kept at ${consoleLog}`);
    assert.match(readFileSync(consoleLog, 'latin1'), /No working init found/);
    const release2 = await r2;
    assert.ok(release2);
    assert.ok(formatRelease(release2).includes(`console log: ${consoleLog}`));
  });
});
