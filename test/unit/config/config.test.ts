import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, parseConfig } from '#config/load.ts';

const valid = {
  homeRegion: 'eu-west-1',
  streams: { web: { regions: ['eu-west-1'] } },
};

function problems(raw: unknown): string[] {
  try {
    parseConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems;
  }
  assert.fail('expected the configuration to be refused');
}

describe('Function: parseConfig()', () => {
  it('fills defaults for a minimal stream', () => {
    // act
    const config = parseConfig(valid);
    // assess
    const web = config.streams.web;
    assert.equal(web?.bootMode, 'legacy-bios');
    assert.equal(web?.keep, 3);
    assert.equal(web?.subscribers.scope, 'organization');
    assert.equal(config.kmsKeyId, 'alias/stemcell');
  });

  it('names the field at fault and what is wrong with it', () => {
    // act + assess
    assert.deepEqual(problems({ ...valid, streams: { web: { regions: ['mars-1'] } } }), [
      'streams.web.regions[0]: not a region name such as eu-west-1',
    ]);
    assert.match(
      problems({ ...valid, streams: { web: { regions: ['eu-west-1'], keep: 0 } } })[0] ?? '',
      /^streams\.web\.keep: /,
    );
    assert.match(
      problems({ ...valid, streams: { web: { regions: ['eu-west-1'], bootmode: 'uefi' } } })[0] ?? '',
      /^streams\.web: .*bootmode/,
    );
    assert.match(
      problems({ homeRegion: 'eu-west-1', streams: {} })[0] ?? '',
      /^streams: define at least one stream/,
    );
    assert.deepEqual(problems({ ...valid, streams: { Web_Base: { regions: ['eu-west-1'] } } }), [
      'streams.Web_Base: not a valid name: stream names are [a-z0-9][a-z0-9-]{0,62}',
    ]);
  });

  it('cross-checks the local organization: unknown OUs, accounts and streams', () => {
    // prepare
    const local = {
      organizationId: 'o-abcdefghij',
      managementAccountId: '111111111111',
      ous: [{ id: 'ou-ab12-11111111', name: 'prod' }],
      accounts: [{ id: '222222222222', name: 'a', ou: 'ou-ab12-99999999' }],
      launchTemplates: [{ account: '333333333333', region: 'eu-west-1', stream: 'nope', name: 'lt' }],
    };
    // act
    const found = problems({ ...valid, local });
    // assess
    assert.deepEqual(found, [
      'local.accounts[0].ou: unknown OU ou-ab12-99999999',
      'local.launchTemplates[0].account: unknown account 333333333333',
      'local.launchTemplates[0].stream: unknown stream nope',
    ]);
  });
});

describe('Function: loadConfig()', () => {
  it('names the file when it is missing or not YAML, and loads the example', async () => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-config-'));
    try {
      await writeFile(join(dir, 'bad.yml'), 'streams: [unclosed');
      // act + assess
      await assert.rejects(
        loadConfig(join(dir, 'missing.yml')),
        /missing\.yml: invalid configuration\n {2}- cannot read/,
      );
      await assert.rejects(
        loadConfig(join(dir, 'bad.yml')),
        /bad\.yml: invalid configuration\n {2}- not valid YAML/,
      );
      const example = await loadConfig('stemcell.config.example.yml');
      assert.deepEqual(Object.keys(example.streams), ['web-base']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Function: parseConfig() — sharing follows the audience', () => {
  const OU_PROD = 'ou-prod-11111111';
  const OU_DEV = 'ou-devx-22222222';
  const stream = (extra: Record<string, unknown>) => ({
    ...valid,
    streams: { 'web-base': { regions: ['eu-west-1'], ...extra } },
  });

  it('derives sharing from the subscriber scope when the stream sets none', () => {
    assert.deepEqual(parseConfig(stream({})).streams['web-base']?.sharing, { organization: true, ous: [] });
    assert.deepEqual(
      parseConfig(stream({ subscribers: { scope: { ous: [OU_PROD] } } })).streams['web-base']?.sharing,
      { organization: false, ous: [OU_PROD] },
    );
  });

  it('keeps sharing set wider than the scope', () => {
    const config = parseConfig(
      stream({ sharing: { organization: true }, subscribers: { scope: { ous: [OU_PROD] } } }),
    );
    assert.equal(config.streams['web-base']?.sharing.organization, true);
  });

  it('refuses a scope wider than the sharing, one line per OU not reached, naming stream and field', () => {
    assert.deepEqual(
      problems(stream({ sharing: { ous: [OU_PROD] }, subscribers: { scope: { ous: [OU_PROD, OU_DEV] } } })),
      [
        `streams.web-base.subscribers.scope: accounts under ${OU_DEV} would be told about images they cannot launch (sharing: ${OU_PROD}); add ${OU_DEV} to sharing.ous or drop it from the scope`,
      ],
    );
    assert.match(
      problems(stream({ sharing: { organization: false } }))[0] ?? '',
      /^streams\.web-base\.subscribers\.scope: every account of the organization would be told about images shared only with nobody/,
    );
  });

  it('counts the organization root in sharing.ous as the whole organization', () => {
    assert.doesNotThrow(() => parseConfig(stream({ sharing: { ous: ['r-ab12'] } })));
  });
});
