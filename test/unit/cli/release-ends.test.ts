// `stemcell dev` tells each release's end once. A release whose record says complete while its accounts are
// still answering (a kill landed between the completion and the last report) has not ended for the user: the
// next run tells it when the last account answers, not never.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ReleaseEnd, releaseEnd, releaseEndReporter } from '#cli/release-ends.ts';
import type { AccountRecord, Release } from '#ports';
import { flowConfig } from '../../integration/flow/support.ts';

const config = flowConfig({ accounts: 2, streams: ['web'] });
const REGIONS = ['us-east-1', 'eu-west-1'];

function account(accountId: string, region: string): AccountRecord {
  return {
    accountId,
    region,
    outcome: 'updated',
    launchTemplates: 1,
    updatedAt: new Date().toISOString(),
  };
}

function release(options: { completedAt?: string; answered: string[]; failed?: string }): Release {
  const accounts: Record<string, AccountRecord> = {};
  for (const id of options.answered)
    for (const region of REGIONS) accounts[`${id}/${region}`] = account(id, region);
  return {
    releaseId: 'web#00000001',
    stream: 'web',
    revision: 'r1',
    sequence: 1,
    createdAt: new Date().toISOString(),
    source: { bucket: 'b', key: 'streams/web/r1.tar.zst' },
    regions: Object.fromEntries(
      REGIONS.map((region) => [
        region,
        region === options.failed
          ? { state: 'failed', updatedAt: new Date().toISOString(), reason: 'disk full' }
          : { state: 'announced', updatedAt: new Date().toISOString(), imageId: `ami-${region}` },
      ]),
    ),
    accounts,
    ...(options.completedAt ? { completedAt: options.completedAt } : {}),
  } as Release;
}

function store(...states: Release[]) {
  let now = 0;
  return {
    advance: () => {
      now = Math.min(now + 1, states.length - 1);
    },
    list: async () => [states[now] as Release],
  };
}

describe('Release ends told by stemcell dev', () => {
  it('tells a release complete on record but with accounts still to answer when the run started', async () => {
    // prepare
    const completedAt = new Date().toISOString();
    const releases = store(
      release({ completedAt, answered: ['200000000001'] }),
      release({ completedAt, answered: ['200000000001', '200000000002'] }),
    );
    const told: ReleaseEnd[] = [];
    // act
    const poll = await releaseEndReporter(releases, config, (end) => told.push(end));
    await poll();
    const beforeLastAnswer = told.length;
    releases.advance();
    await poll();
    await poll();
    // assess
    assert.equal(beforeLastAnswer, 0);
    assert.deepEqual(
      told.map((t) => t.outcome),
      ['complete'],
    );
    assert.match(told[0]?.line ?? '', /^release web#00000001 complete:\n/);
  });

  it('does not tell again a release whose end could already be told when the run started', async () => {
    // prepare
    const completed = store(
      release({ completedAt: new Date().toISOString(), answered: ['200000000001', '200000000002'] }),
    );
    const failed = store(release({ answered: [], failed: 'eu-west-1' }));
    const told: ReleaseEnd[] = [];
    // act
    await (await releaseEndReporter(completed, config, (end) => told.push(end)))();
    await (await releaseEndReporter(failed, config, (end) => told.push(end)))();
    // assess
    assert.deepEqual(told, []);
  });

  it('says a failed release with each failed region and its reason', () => {
    const end = releaseEnd(config, release({ answered: [], failed: 'eu-west-1' }), Date.now());
    assert.equal(end?.outcome, 'failed');
    assert.equal(end?.line, 'release web#00000001 failed in eu-west-1: disk full');
  });

  it('waits for every account in scope, then a minute after completion tells it anyway', () => {
    const completedAt = new Date(Date.now() - 30_000).toISOString();
    const partial = release({ completedAt, answered: ['200000000001'] });
    assert.equal(releaseEnd(config, partial, Date.now()), undefined);
    assert.equal(releaseEnd(config, partial, Date.now() + 31_000)?.outcome, 'complete');
  });
});
