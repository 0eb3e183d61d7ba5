// A revision that no longer fits its stream's volume grows the volume, partition and filesystem, and lands.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '#config/load.ts';
import { LocalStack } from '#local/stack.ts';
import { chooseVolumeBackend } from '#local/volumes.ts';

const run = promisify(execFile);
const blockVolumes = chooseVolumeBackend('auto', () => {}) === 'block';

describe('Flow: volume growth', () => {
  it('grows a 1 GiB volume when a 1.1 GiB revision does not fit, with a log line', {
    skip: blockVolumes ? false : 'needs root and loop devices (block volumes)',
    timeout: 300_000,
  }, async () => {
    // prepare: 1.1 GiB of content that does not compress away
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-grow-'));
    const tree = join(dir, 'tree', 'data');
    await mkdir(tree, { recursive: true });
    const block = randomBytes(1 << 20);
    for (let i = 0; i < 1150; i++) {
      await writeFile(join(tree, `f${i}`), Buffer.concat([randomBytes(4096), block.subarray(4096)]));
    }
    const tarball = join(dir, 'big.tar.zst');
    await run('tar', ['--zstd', '-C', join(dir, 'tree'), '-cf', tarball, '.']);
    await rm(join(dir, 'tree'), { recursive: true });
    const config = parseConfig({
      homeRegion: 'eu-west-1',
      streams: { big: { regions: ['eu-west-1'], bootMode: 'none', volumeSizeGiB: 1 } },
      local: {
        organizationId: 'o-grow000001',
        managementAccountId: '100000000000',
        ous: [{ id: 'ou-ab12-11111111', name: 'x' }],
        accounts: [{ id: '100000000001', name: 'a', ou: 'ou-ab12-11111111' }],
      },
    });
    const logs: string[] = [];
    const stack = new LocalStack({ dataDir: join(dir, 'data'), config, log: (line) => logs.push(line) });
    try {
      await stack.start();
      // act
      await stack.publish('streams/big/r1.tar.zst', createReadStream(tarball));
      await stack.settle();
      // assess
      const [release] = await stack.releases.list('big');
      assert.equal(release?.regions['eu-west-1']?.state, 'announced', JSON.stringify(release?.regions));
      const [volume] = stack.region('eu-west-1').volumes.list();
      assert.equal(volume?.sizeGiB, 2);
      assert.match(logs.join('\n'), /r1 does not fit in 1 GiB; growing to 2 GiB/);
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
