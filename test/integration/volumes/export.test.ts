// `stemcell export`: a local image restored to a raw disk through the command line, on the data-folder layout
// the local stack uses (keys in <data>/kms, EBS state in ebsStateDir(<data>, <region>)).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openVolume } from '#builder/device.ts';
import { createLocalEbs } from '#local/ebs.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { ebsStateDir } from '#local/volumes.ts';
import { AZ, INSTANCE, MEMBER, needsRoot, OWNER, REGION, RecordingSink } from './helpers.ts';

const skip = needsRoot();
const data = skip ? '' : mkdtempSync(join('/var/tmp', 'stemcell-export-'));
after(() => {
  if (data) rmSync(data, { recursive: true, force: true });
});

function stemcell(args: string[]) {
  return spawnSync(process.execPath, ['src/cli/main.ts', ...args], { encoding: 'utf8' });
}

describe('Command: stemcell export', { skip }, () => {
  it('writes the image as a raw disk equal to the volume it was taken from, for the owner only', async () => {
    // prepare: one snapshotted, registered volume in the data folder
    const keys = new LocalKeyService(join(data, 'kms'), { accountId: OWNER, region: REGION });
    const { keyId } = keys.createKey({ alias: 'alias/stemcell' });
    const dir = ebsStateDir(data, REGION);
    const sink = new RecordingSink();
    const { volumes, snapshots, images } = createLocalEbs({
      dir,
      region: REGION,
      accountId: OWNER,
      keys,
      events: sink,
      backend: 'block',
    });
    const volume = await volumes.create({
      stream: 'web',
      availabilityZone: AZ,
      sizeGiB: 1,
      kmsKeyId: keyId,
      tags: {},
      clientToken: 'v',
    });
    const attachment = await volumes.attach(volume.volumeId, INSTANCE);
    try {
      if (attachment.kind !== 'block') throw new Error('expected a block attachment');
      const opened = await openVolume(attachment.devicePath, { bootMode: 'none', log: () => {} });
      try {
        writeFileSync(join(opened.root, 'hello'), 'exported\n');
        await opened.quiesce();
      } finally {
        await opened.close();
      }
    } finally {
      await volumes.detach(volume.volumeId, INSTANCE);
    }
    const snap = await snapshots.create(volume.volumeId, { description: '', tags: {}, clientToken: 's' });
    const { imageId } = await images.register({
      name: 'stemcell/web/1',
      description: '',
      snapshotId: snap.snapshotId,
      architecture: 'x86_64',
      bootMode: 'none',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: 'i',
    });
    const out = join(data, 'out.raw');

    // act
    const ok = stemcell(['export', imageId, out, '--data', data]);
    const denied = stemcell([
      'export',
      imageId,
      join(data, 'member.raw'),
      '--data',
      data,
      '--account',
      MEMBER,
    ]);
    const unknown = stemcell(['export', 'ami-0123456789abcdef0', out, '--data', data]);

    // assess
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, new RegExp(`exported ${imageId}`));
    execFileSync('cmp', ['--quiet', out, volumes.imagePath(volume.volumeId)]);
    assert.equal(denied.status, 1);
    assert.match(denied.stderr, new RegExp(`account ${MEMBER} may not use the image's key`));
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /not found/);
  });
});
