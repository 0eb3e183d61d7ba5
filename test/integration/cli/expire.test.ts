// `stemcell expire` over a local data folder: a dry run changes nothing; a real run deprecates the image past
// `keep` and, within the grace period, leaves it registered; with --grace-days 0 it deregisters it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { flowConfig, HOME, releaseOf, startFlow } from '../flow/support.ts';

const STEMCELL = join(import.meta.dirname, '../../../bin/stemcell');

describe('Command: stemcell expire', () => {
  it('dry-runs, deprecates within the grace period, deregisters after it', async () => {
    // prepare: keep 1, two releases
    const options = { accounts: 1, streams: ['web'], keep: 1 };
    const flow = await startFlow(options);
    try {
      await flow.publish('web', 1);
      await flow.publish('web', 2);
      const old = (await releaseOf(flow, 'web', 1)).regions[HOME]?.imageId as string;
      const configFile = join(flow.dir, 'stemcell.config.yml');
      await writeFile(configFile, stringify(flowConfig(options)));
      const expire = (...args: string[]) =>
        spawnSync(STEMCELL, ['expire', '--data', flow.stack.dataDir, '--config', configFile, ...args], {
          encoding: 'utf8',
        });
      const state = async () => (await flow.stack.region(HOME).images.get(old))?.state;
      // act + assess
      const dry = expire('--dry-run', '--grace-days', '0');
      assert.equal(dry.status, 0, dry.stderr);
      assert.match(dry.stdout, new RegExp(`would be deregistered web ${HOME} ${old}`));
      assert.equal(await state(), 'available');
      assert.equal((await flow.stack.region(HOME).images.get(old))?.deprecatedAt, undefined);

      const graceful = expire();
      assert.equal(graceful.status, 0, graceful.stderr);
      assert.match(
        graceful.stdout,
        new RegExp(`deprecated  web ${HOME} ${old} \\(sequence 1\\); deregistered after `),
      );
      assert.equal(await state(), 'available', 'deprecated, not yet deregistered');
      assert.ok((await flow.stack.region(HOME).images.get(old))?.deprecatedAt);

      const now = expire('--grace-days', '0');
      assert.equal(now.status, 0, now.stderr);
      assert.match(now.stdout, new RegExp(`deregistered web ${HOME} ${old}`));
      assert.equal(await state(), 'deregistered');
    } finally {
      await flow.close();
    }
  });
});
