// Rollout waves: how waves are resolved from the configuration, when a wave is healthy, the member rule that
// targets a wave's accounts, and the Scheduler expression of a bake timer.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { atExpression } from '#aws/bake-timer.ts';
import { ConfigError, parseConfig } from '#config/load.ts';
import { resolveWaves, timerName, waveHealth } from '#core/rollout/rollout.ts';
import { testEventPattern } from '#local/event-pattern.ts';
import { LocalOrganizationDirectory } from '#local/organization.ts';
import type { LocalReleaseStore } from '#local/release-store.ts';
import type { Release, WaveRecord } from '#ports';
import { loadCfnYaml } from '#test/support/cfn.ts';

const OU_CANARY = 'ou-cana-11111111';
const OU_REST = 'ou-rest-22222222';

function config(rollout: unknown, scope: unknown = 'organization') {
  return parseConfig(
    {
      homeRegion: 'eu-west-1',
      streams: { web: { regions: ['eu-west-1', 'us-east-1'], subscribers: { scope }, rollout } },
      local: {
        organizationId: 'o-test000001',
        managementAccountId: '300000000000',
        ous: [
          { id: OU_CANARY, name: 'canary' },
          { id: OU_REST, name: 'rest' },
        ],
        accounts: [
          { id: '300000000001', name: 'c1', ou: OU_CANARY },
          { id: '300000000002', name: 'r1', ou: OU_REST },
          { id: '300000000003', name: 'r2', ou: OU_REST },
        ],
      },
    },
    'test',
  );
}

async function waves(rollout: unknown, scope?: unknown) {
  const dir = await mkdtemp(join(tmpdir(), 'stemcell-rollout-'));
  try {
    const cfg = config(rollout, scope);
    const organization = new LocalOrganizationDirectory(dir, cfg.local as never);
    return (await resolveWaves({ config: cfg, organization }, 'web'))?.map((w) => [w.name, w.accounts]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('Function: resolveWaves()', () => {
  it('splits the scope by OU and account, the last wave taking everything else, no account twice', async () => {
    // act
    const result = await waves({
      waves: [
        { name: 'one-box', accounts: ['300000000002'], bakeMinutes: 5 },
        { name: 'canary', ous: [OU_CANARY, OU_REST], accounts: ['300000000002'], bakeMinutes: 30 },
        { name: 'rest', bakeMinutes: 60 },
      ],
    });
    // assess
    assert.deepEqual(result, [
      ['one-box', ['300000000002']],
      ['canary', ['300000000001', '300000000003']],
      ['rest', ['300000000000']],
    ]);
  });

  it('keeps to the subscriber scope, and without rollout there are no waves', async () => {
    const scoped = await waves(
      { waves: [{ name: 'all', accounts: ['300000000001', '300000000002'], bakeMinutes: 1 }] },
      { ous: [OU_REST] },
    );
    assert.deepEqual(scoped, [['all', ['300000000002']]]);
    assert.equal(await waves(undefined), undefined);
  });
});

describe('Config: rollout', () => {
  it('refuses an everything-else wave before the last, duplicate names and unknown OUs, naming the field', () => {
    const bad = (rollout: unknown) => () => config(rollout);
    assert.throws(
      bad({
        waves: [
          { name: 'all', bakeMinutes: 1 },
          { name: 'late', ous: [OU_REST], bakeMinutes: 1 },
        ],
      }),
      (err: Error) =>
        err instanceof ConfigError && /rollout\.waves\[0\].*only the last wave/s.test(err.message),
    );
    assert.throws(
      bad({
        waves: [
          { name: 'a', ous: [OU_REST], bakeMinutes: 1 },
          { name: 'a', bakeMinutes: 1 },
        ],
      }),
      /duplicate wave a/,
    );
    assert.throws(bad({ waves: [{ name: 'a', ous: ['ou-nope-99999999'], bakeMinutes: 1 }] }), /unknown OU/);
  });
});

describe('Function: waveHealth()', () => {
  const wave: WaveRecord = {
    name: 'canary',
    accounts: ['300000000001', '300000000002'],
    bakeMinutes: 1,
    state: 'baking',
    announcedAt: {},
  };
  const account = (accountId: string, region: string, instanceRefresh?: string) => ({
    accountId,
    region,
    outcome: 'updated' as const,
    launchTemplates: 1,
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...(instanceRefresh ? { instanceRefresh } : {}),
  });
  const release = (sequence: number, accounts: ReturnType<typeof account>[]): Release => ({
    releaseId: `web#0000000${sequence}`,
    stream: 'web',
    revision: `r${sequence}`,
    sequence,
    source: { bucket: 'b', key: 'k', etag: 'e' },
    createdAt: '2026-01-01T00:00:00.000Z',
    uploadedAt: '2026-01-01T00:00:00.000Z',
    regions: { 'eu-west-1': { state: 'announced', updatedAt: '2026-01-01T00:00:00.000Z' } },
    accounts: Object.fromEntries(accounts.map((a) => [`${a.accountId}/${a.region}`, a])),
  });
  const releases = (...list: Release[]) => ({ list: async () => list }) as unknown as LocalReleaseStore;

  it('is healthy when the reports carry no failed refresh, and silence of a non-follower is no fault', async () => {
    const current = release(1, [account('300000000001', 'eu-west-1', 'succeeded')]);
    assert.deepEqual(await waveHealth({ releases: releases(current) }, current, wave), {
      healthy: true,
      accounts: [],
    });
  });

  it('is unhealthy on a failed or rolled-back refresh, naming the accounts', async () => {
    for (const outcome of ['failed', 'rolled-back', 'cancelled']) {
      const current = release(1, [
        account('300000000001', 'eu-west-1', outcome),
        account('300000000002', 'eu-west-1', 'succeeded'),
      ]);
      const health = await waveHealth({ releases: releases(current) }, current, wave);
      assert.equal(health.healthy, false, outcome);
      assert.deepEqual(health.accounts, [{ accountId: '300000000001', region: 'eu-west-1' }]);
    }
  });

  it('is unhealthy when an account that reported for an earlier release stays silent', async () => {
    const earlier = release(1, [account('300000000002', 'eu-west-1')]);
    const current = release(2, [account('300000000001', 'eu-west-1', 'succeeded')]);
    const health = await waveHealth({ releases: releases(earlier, current) }, current, wave);
    assert.equal(health.healthy, false);
    assert.match(health.reason ?? '', /no "Launch Template Updated" report .* 300000000002 in eu-west-1/);
  });

  it('is unhealthy while the wave alarm is not OK', async () => {
    const current = release(1, []);
    const alarmArn = 'arn:aws:cloudwatch:eu-west-1:300000000000:alarm:canary-5xx';
    const states = { value: 'ALARM' as 'OK' | 'ALARM' };
    const alarms = { state: async () => states.value };
    const health = await waveHealth({ releases: releases(current), alarms }, current, { ...wave, alarmArn });
    assert.match(health.reason ?? '', /canary-5xx is ALARM/);
    states.value = 'OK';
    assert.equal(
      (await waveHealth({ releases: releases(current), alarms }, current, { ...wave, alarmArn })).healthy,
      true,
    );
  });
});

describe('Template: infra/member.yml Image Ready rule', () => {
  it('matches an Image Ready without audience, or one whose audience lists the account, and no other', () => {
    // prepare: the rule as CloudFormation resolves it in account 300000000001
    const rule = loadCfnYaml(new URL('../../../../infra/member.yml', import.meta.url).pathname).Resources
      .ImageReadyRule?.Properties?.EventPattern;
    const pattern = JSON.parse(JSON.stringify(rule).replaceAll('{"Ref":"AWS::AccountId"}', '"300000000001"'));
    const event = (audience?: string[]) => ({
      source: 'stemcell',
      'detail-type': 'Image Ready',
      detail: { stream: 'web', ...(audience ? { audience } : {}) },
    });
    // act + assess
    assert.equal(testEventPattern(pattern, event()), true);
    assert.equal(testEventPattern(pattern, event(['300000000009', '300000000001'])), true);
    assert.equal(testEventPattern(pattern, event(['300000000002'])), false);
  });
});

describe('Function: atExpression()', () => {
  it('is a UTC at() expression rounded up to the second, never early', () => {
    assert.equal(atExpression(new Date('2026-11-20T10:00:00.000Z')), 'at(2026-11-20T10:00:00)');
    assert.equal(atExpression(new Date('2026-11-20T10:00:00.001Z')), 'at(2026-11-20T10:00:01)');
  });
  it('names timers within Scheduler limits', () => {
    assert.match(timerName('web-base#00000042', 1), /^[0-9a-zA-Z-_.]{1,64}$/);
  });
});
