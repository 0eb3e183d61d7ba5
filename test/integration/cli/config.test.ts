// `stemcell config check` and --config handling, through the real command line.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const STEMCELL = join(import.meta.dirname, '../../../bin/stemcell');

const TOO_WIDE = `homeRegion: eu-west-1
streams:
  web-base:
    regions: [eu-west-1]
    sharing: { ous: [ou-prod-11111111] }
    subscribers: { scope: { ous: [ou-prod-11111111, ou-devx-22222222] } }
  batch-base:
    regions: [eu-west-1]
    sharing: { organization: false }
`;
const FINE = `homeRegion: eu-west-1
streams:
  web-base:
    regions: [eu-west-1]
    subscribers: { scope: { ous: [ou-prod-11111111] } }
`;

describe('Command: stemcell config check', () => {
  it('exits 2 with one line per problem naming stream and field, and 0 on a valid file', async (t) => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'wide.yml'), TOO_WIDE);
    await writeFile(join(dir, 'fine.yml'), FINE);
    // act
    const wide = spawnSync(STEMCELL, ['config', 'check', '--config', join(dir, 'wide.yml')], {
      encoding: 'utf8',
    });
    const fine = spawnSync(STEMCELL, ['config', 'check', '--config', join(dir, 'fine.yml')], {
      encoding: 'utf8',
    });
    // assess
    assert.equal(wide.status, 2, wide.stderr);
    const lines = wide.stderr.trim().split('\n');
    assert.equal(lines.length, 2, wide.stderr);
    assert.match(
      lines[0] ?? '',
      /streams\.web-base\.subscribers\.scope: accounts under ou-devx-22222222 would be told about images they cannot launch/,
    );
    assert.match(
      lines[1] ?? '',
      /streams\.batch-base\.subscribers\.scope: every account of the organization/,
    );
    assert.equal(fine.status, 0, fine.stderr);
    assert.match(fine.stdout, /web-base: regions eu-west-1; shared with ou-prod-11111111/);
  });

  it('refuses an unknown --config path instead of falling back to the demo configuration', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-config-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const missing = join(dir, 'nope.yml');
    const check = spawnSync(STEMCELL, ['config', 'check', '--config', missing], { encoding: 'utf8' });
    const publish = spawnSync(
      STEMCELL,
      ['publish', join(dir, 'x.tar'), '--stream', 'web-base', '--config', missing, '--data', dir],
      { encoding: 'utf8' },
    );
    assert.equal(check.status, 2);
    assert.match(check.stderr, /cannot read/);
    assert.equal(publish.status, 2, publish.stderr);
    assert.match(publish.stderr, /--config .*nope\.yml: no such file/);
    assert.doesNotMatch(publish.stderr, /demo configuration/);
  });
});
