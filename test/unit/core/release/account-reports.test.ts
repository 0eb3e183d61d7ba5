// What the release records of a member account's reports: the best outcome seen (updated > already-current >
// skipped-older > refused = nothing-to-move, the later of two equals), the templates counted once each, and
// the templates the account refused to move with why, until a report that moved one clears it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { recordLaunchTemplateUpdate } from '#core/release/account-reports.ts';
import { sample } from '#events/samples/index.ts';
import { type LaunchTemplateUpdated, LaunchTemplateUpdatedDetail } from '#events/stemcell.ts';
import type { AccountRecord } from '#ports';
import { AttributeLogger, FakeReleaseStore } from '#test/support/core-fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';
const T0 = '2026-11-20T10:00:00.000Z';
const T1 = '2026-11-20T10:01:00.000Z';
const T2 = '2026-11-20T10:02:00.000Z';
const WEB = { launchTemplateId: 'lt-0web', launchTemplateName: 'web', versionNumber: 3 };
const API = { launchTemplateId: 'lt-0api', launchTemplateName: 'api', versionNumber: 7 };
const NOT_LAUNCHABLE = { check: 'dry-run', reason: 'UnauthorizedOperation' } as const;

async function account() {
  const releases = new FakeReleaseStore();
  const { release } = await releases.create({
    stream: 'web-base',
    revision: 'r1',
    regions: [REGION],
    source: { bucket: 'b', key: 'streams/web-base/r1.tar.zst', etag: 'e' },
    uploadedAt: T0,
  } as never);
  const deps = { releases, logger: new AttributeLogger() };
  const base = sample<{ detail: LaunchTemplateUpdated }>('stemcell-launch-template-updated').detail;
  const report = (changes: Record<string, unknown>): LaunchTemplateUpdated => {
    const { refusal: _, refresh: __, ...rest } = base;
    return LaunchTemplateUpdatedDetail.parse({
      ...rest,
      stream: 'web-base',
      revision: 'r1',
      sequence: release.sequence,
      releaseId: release.releaseId,
      accountId: ACCOUNT,
      region: REGION,
      ...WEB,
      instanceRefresh: 'not-requested',
      updatedAt: T1,
      ...changes,
    });
  };
  const nothingToMove = (changes: Record<string, unknown> = {}) => {
    const {
      launchTemplateId: _,
      launchTemplateName: __,
      versionNumber: ___,
      ...detail
    } = report({
      outcome: 'nothing-to-move',
      ...changes,
    });
    return LaunchTemplateUpdatedDetail.parse(detail);
  };
  const record = async (...reports: LaunchTemplateUpdated[]): Promise<AccountRecord | undefined> => {
    let last: AccountRecord | undefined;
    for (const r of reports) last = await recordLaunchTemplateUpdate(deps, r);
    const stored = (await releases.get(release.releaseId))?.accounts[`${ACCOUNT}/${REGION}`];
    assert.deepEqual(stored, last, 'the returned record is the one stored');
    return last;
  };
  return { report, nothingToMove, record };
}

describe('Function: recordLaunchTemplateUpdate() — the outcome an account keeps', () => {
  const cases: [string[], string][] = [
    [['updated', 'skipped-older'], 'updated'],
    [['already-current', 'updated'], 'updated'],
    [['skipped-older', 'already-current'], 'already-current'],
    [['nothing-to-move', 'skipped-older'], 'skipped-older'],
    [['refused', 'skipped-older'], 'skipped-older'],
    [['skipped-older', 'refused'], 'skipped-older'],
    // Equals: the later report's word stands.
    [['refused', 'nothing-to-move'], 'nothing-to-move'],
    [['nothing-to-move', 'refused'], 'refused'],
  ];
  for (const [outcomes, kept] of cases)
    it(`${outcomes.join(' then ')} keeps ${kept}`, async () => {
      const a = await account();
      const reports = outcomes.map((outcome, i) =>
        outcome === 'nothing-to-move'
          ? a.nothingToMove({ updatedAt: i === 0 ? T1 : T2 })
          : a.report({
              outcome,
              updatedAt: i === 0 ? T1 : T2,
              ...(outcome === 'refused' ? { refusal: NOT_LAUNCHABLE } : {}),
            }),
      );
      const record = await a.record(...reports);
      assert.equal(record?.outcome, kept);
    });
});

describe('Function: recordLaunchTemplateUpdate() — templates counted', () => {
  it('counts each moved template, not the account with nothing to move, not a refresh end', async () => {
    const a = await account();
    assert.equal((await a.record(a.nothingToMove()))?.launchTemplates, 0);
    const moved = await a.record(
      a.report({ outcome: 'updated', instanceRefresh: 'started' }),
      a.report({ outcome: 'updated', ...API, instanceRefresh: 'started' }),
      a.report({
        outcome: 'updated',
        instanceRefresh: 'succeeded',
        refresh: { autoScalingGroupName: 'web-asg', instanceRefreshId: 'r-1' },
        updatedAt: T2,
      }),
    );
    assert.equal(moved?.launchTemplates, 2);
    assert.equal(moved?.instanceRefresh, 'succeeded');
    assert.equal(moved?.updatedAt, T2);
  });

  it('keeps the latest report time and the worst refresh outcome whatever order the reports come in', async () => {
    const a = await account();
    const record = await a.record(
      a.report({ outcome: 'updated', instanceRefresh: 'failed', updatedAt: T2 }),
      a.report({ outcome: 'updated', ...API, instanceRefresh: 'started', updatedAt: T1 }),
    );
    assert.equal(record?.updatedAt, T2);
    assert.equal(record?.instanceRefresh, 'failed');
  });

  it('writes no refusal list for an account that refused nothing', async () => {
    const a = await account();
    const record = await a.record(a.report({ outcome: 'updated' }));
    assert.deepEqual(record, {
      accountId: ACCOUNT,
      region: REGION,
      outcome: 'updated',
      launchTemplates: 1,
      updatedAt: T1,
      instanceRefresh: 'not-requested',
    });
  });
});

describe('Function: recordLaunchTemplateUpdate() — refused templates', () => {
  const refused = (a: Awaited<ReturnType<typeof account>>, changes: Record<string, unknown> = {}) =>
    a.report({ outcome: 'refused', refusal: NOT_LAUNCHABLE, ...changes });

  it('keeps each refused template with its check, its reason and when', async () => {
    const a = await account();
    const record = await a.record(
      refused(a),
      refused(a, { ...API, refusal: { check: 'key', reason: 'no grant' } }),
    );
    assert.deepEqual(record?.refused, [
      { ...pick(WEB), check: 'dry-run', reason: 'UnauthorizedOperation', at: T1 },
      { ...pick(API), check: 'key', reason: 'no grant', at: T1 },
    ]);
  });

  it('a move of one template clears its refusal and leaves the other', async () => {
    const a = await account();
    const record = await a.record(
      refused(a),
      refused(a, API),
      a.report({ outcome: 'updated', updatedAt: T2 }),
    );
    assert.deepEqual(
      record?.refused?.map((r) => r.launchTemplateName),
      ['api'],
    );
  });

  it('an already-current template clears its refusal too; skipped-older and nothing-to-move do not', async () => {
    const current = await account();
    assert.equal(
      (await current.record(refused(current), current.report({ outcome: 'already-current', updatedAt: T2 })))
        ?.refused,
      undefined,
    );
    const skipped = await account();
    assert.equal(
      (await skipped.record(refused(skipped), skipped.report({ outcome: 'skipped-older', updatedAt: T2 })))
        ?.refused?.length,
      1,
    );
    const nothing = await account();
    assert.equal(
      (await nothing.record(refused(nothing), nothing.nothingToMove({ updatedAt: T2 })))?.refused?.length,
      1,
    );
  });

  it('a later refusal of the same template replaces it; one of the same moment too; an older one does not', async () => {
    const a = await account();
    const later = await a.record(
      refused(a),
      refused(a, { refusal: { check: 'instance-type', reason: 'not offered' }, updatedAt: T2 }),
    );
    assert.deepEqual(
      later?.refused?.map((r) => [r.check, r.at]),
      [['instance-type', T2]],
    );
    const same = await account();
    const sameMoment = await same.record(
      refused(same),
      refused(same, { refusal: { check: 'key', reason: 'x' } }),
    );
    assert.deepEqual(
      sameMoment?.refused?.map((r) => r.check),
      ['key'],
    );
    const old = await account();
    const older = await old.record(
      refused(old, { updatedAt: T2 }),
      refused(old, { refusal: { check: 'image', reason: 'gone' }, updatedAt: T0 }),
    );
    assert.deepEqual(
      older?.refused?.map((r) => [r.check, r.at]),
      [['dry-run', T2]],
    );
  });

  it("an older refusal of another template is kept beside a newer one's", async () => {
    const a = await account();
    const record = await a.record(refused(a, { updatedAt: T2 }), refused(a, { ...API, updatedAt: T0 }));
    assert.deepEqual(
      record?.refused?.map((r) => [r.launchTemplateName, r.at]),
      [
        ['web', T2],
        ['api', T0],
      ],
    );
  });

  it('an older move does not clear a newer refusal', async () => {
    const a = await account();
    const record = await a.record(
      refused(a, { updatedAt: T2 }),
      a.report({ outcome: 'updated', updatedAt: T0 }),
    );
    assert.equal(record?.refused?.length, 1);
  });
});

describe('Function: recordLaunchTemplateUpdate() — an unknown release', () => {
  it('records nothing and says so', async () => {
    const releases = new FakeReleaseStore();
    const logger = new AttributeLogger();
    const base = sample<{ detail: LaunchTemplateUpdated }>('stemcell-launch-template-updated').detail;
    const result = await recordLaunchTemplateUpdate(
      { releases, logger },
      { ...base, releaseId: 'web-base#00000099' },
    );
    assert.equal(result, undefined);
    assert.match(JSON.stringify(logger), /unknown release/);
  });
});

function pick(t: typeof WEB) {
  return { launchTemplateId: t.launchTemplateId, launchTemplateName: t.launchTemplateName };
}
