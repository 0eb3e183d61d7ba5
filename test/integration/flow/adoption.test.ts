// `stemcell status --adoption --json` over a local data folder: per account and region, the image each tagged
// launch template's default version names, the images the Auto Scaling group's instances run, and their release;
// `stemcell status --json` carries each release's waves and halt; `stemcell rollback` and `pin` from the CLI.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { ReleaseStatus } from '#cli/commands/status.ts';
import type { AdoptionRow } from '#core/members/adoption.ts';
import { accountId, flowConfig, HOME, OTHER, OU_A, releaseOf, startFlow } from './support.ts';

const run = promisify(execFile);
const ROOT = new URL('../../../', import.meta.url).pathname;
const ROLLOUT = {
  waves: [
    { name: 'canary', ous: [OU_A], bakeMinutes: 0.05 },
    { name: 'rest', bakeMinutes: 0.01 },
  ],
};

describe('Command: stemcell status --adoption / rollback / pin', () => {
  it('lists the image in use per account and region, the halt in --json, and rolls back from the CLI', async () => {
    const flow = await startFlow({ accounts: 2, streams: ['web'], rollout: ROLLOUT });
    const configFile = join(flow.dir, 'stemcell.config.yml');
    await writeFile(
      configFile,
      JSON.stringify(flowConfig({ accounts: 2, streams: ['web'], rollout: ROLLOUT })),
    );
    const cli = async (...args: string[]) =>
      JSON.parse(
        (
          await run(
            join(ROOT, 'bin/stemcell'),
            [...args, '--data', flow.stack.dataDir, '--config', configFile],
            {
              cwd: ROOT,
            },
          )
        ).stdout,
      );
    try {
      // prepare: r1 everywhere, r2 halts in the canary (account 1's refresh fails in the home region)
      await flow.publish('web', 1);
      flow.stack.members.forAccount(accountId(1), HOME).failNextInstanceRefresh('web-asg');
      await flow.publish('web', 2);
      const r1 = await releaseOf(flow, 'web', 1);
      const r2 = await releaseOf(flow, 'web', 2);

      // act
      const adoption = (await cli('status', '--adoption', '--json')).adoption as AdoptionRow[];
      const status = (await cli('status', 'web', '--json')) as ReleaseStatus[];
      // assess: the image in use, per account and region
      const row = (account: string, region: string) =>
        adoption.find((r) => r.accountId === account && r.region === region);
      assert.equal(row(accountId(1), HOME)?.launchTemplates[0]?.imageId, r2.regions[HOME]?.imageId);
      assert.equal(row(accountId(1), HOME)?.launchTemplates[0]?.revision, 'r2');
      // its instance refresh failed: the instances still run revision 1
      assert.deepEqual(
        row(accountId(1), HOME)?.autoScalingGroups[0]?.images.map((i) => i.revision),
        ['r1'],
      );
      assert.equal(row(accountId(2), OTHER)?.launchTemplates[0]?.imageId, r1.regions[OTHER]?.imageId);
      // r2 was announced in the home region (to the canary): the rest is behind there
      assert.equal(row(accountId(2), HOME)?.launchTemplates[0]?.imageId, r1.regions[HOME]?.imageId);
      assert.equal(row(accountId(2), HOME)?.current?.releaseId, r2.releaseId);
      assert.equal(row(accountId(2), HOME)?.current?.adopted, false, 'the rest did not get r2');
      const halted = status.find((r) => r.revision === 'r2');
      assert.equal(halted?.halted?.wave, 'canary');
      assert.match(halted?.halted?.reason ?? '', /instance refresh failed/);
      assert.deepEqual(
        halted?.waves.map((w) => [w.name, w.state]),
        [
          ['canary', 'halted'],
          ['rest', 'pending'],
        ],
      );

      // act 2: roll back to r1 from the CLI (which runs the local stack itself: stop this one first)
      await flow.stack.stop();
      const rolled = await cli('rollback', 'web', '--to', 'r1', '--json');
      assert.equal(rolled.revision, 'r1-rollback-1');
      assert.ok(rolled.sequence > r2.sequence);
      const after = (await cli('status', '--adoption', '--json')).adoption as AdoptionRow[];
      // The management account has no template of the stream: it reported nothing-to-move, and moves nothing.
      const withTemplates = after.filter((r) => r.launchTemplates.length > 0);
      assert.equal(withTemplates.length, 4, '2 member accounts × 2 regions');
      for (const r of withTemplates)
        assert.equal(
          r.launchTemplates[0]?.imageId,
          r1.regions[r.region]?.imageId,
          `${r.accountId} ${r.region}`,
        );
    } finally {
      await flow.close();
    }
  });

  it('works on the data folder alone: it remembers its configuration; status counts, --accounts lists', async () => {
    // prepare: one release to 3 accounts; an instance refresh fails in one of them (home region)
    const flow = await startFlow({ accounts: 3, streams: ['web'] });
    const cli = async (...args: string[]) =>
      (await run(join(ROOT, 'bin/stemcell'), [...args, '--data', flow.stack.dataDir], { cwd: flow.dir }))
        .stdout;
    try {
      flow.stack.members.forAccount(accountId(2), HOME).failNextInstanceRefresh('web-asg');
      await flow.publish('web', 1);
      // act: no --config, and no stemcell.config.yml where it runs
      const adoption = JSON.parse(await cli('status', '--adoption', '--json')).adoption as AdoptionRow[];
      const summary = await cli('status', 'web');
      const every = await cli('status', 'web', '--accounts');
      // assess: the adoption view knows the data folder's accounts
      assert.ok(adoption.some((r) => r.accountId === accountId(1) && r.launchTemplates.length > 0));
      // counts per outcome; only the failure listed
      const home = summary.slice(summary.indexOf(HOME));
      assert.match(
        home,
        /accounts (\d+ not reported \(announced\), )?1 failed, (1 nothing-to-move, )?2 updated/,
      );
      assert.match(home, new RegExp(`${accountId(2)}\\s+failed`));
      assert.doesNotMatch(home.split(OTHER)[0] ?? '', new RegExp(`${accountId(1)}\\s+updated`));
      assert.match(every, new RegExp(`${accountId(1)}\\s+updated`));
    } finally {
      await flow.close();
    }
  });
});
