// The adoption view over in-memory member accounts: per stream, region and account, which image each tagged
// launch template and Auto Scaling group runs, the release it belongs to, the last report, and whether the
// account is on the newest announced release.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AdoptionDeps, adoptionView } from '#core/members/adoption.ts';
import type { Release } from '#ports';
import {
  FakeMembers,
  FakeOrganization,
  FakeReleaseStore,
  OU_A,
  OU_B,
  testConfig,
} from '#test/support/core-fakes.ts';

const EU = 'eu-west-1';
const A1 = '200000000001';
const A2 = '200000000002';
const A3 = '200000000003';

function setup(scope: unknown = 'organization') {
  const deps = {
    config: testConfig({
      streams: {
        'web-base': { regions: [EU], sharing: { organization: true }, subscribers: { scope } },
        'batch-base': { regions: [EU], sharing: { organization: true } },
      },
    }),
    organization: new FakeOrganization([
      { id: A2, ou: OU_B },
      { id: A1, ou: OU_A },
      { id: A3, ou: OU_B },
    ]),
    members: new FakeMembers(),
    releases: new FakeReleaseStore(),
  } satisfies AdoptionDeps;
  return deps;
}

/** A release of web-base announced (or only built) in EU with the given image. */
async function release(
  deps: ReturnType<typeof setup>,
  revision: string,
  imageId: string,
  state: 'announced' | 'available' = 'announced',
  stream = 'web-base',
): Promise<Release> {
  const r = deps.releases.seed(stream, revision, [EU]);
  await deps.releases.updateRegion(r.releaseId, EU, { state, imageId });
  return r;
}

const AMI_1 = 'ami-00000000000000001';
const AMI_2 = 'ami-00000000000000002';

describe('Function: adoptionView()', () => {
  it('names the image and release of each template and group, and whether the account is on the newest', async () => {
    // prepare
    const deps = setup();
    const r1 = await release(deps, 'r1', AMI_1);
    const r2 = await release(deps, 'r2', AMI_2);
    await release(deps, 'r3', 'ami-00000000000000003', 'available');
    const a1 = deps.members.forAccount(A1, EU);
    const web = a1.addTemplate('web', 'web-base', AMI_2);
    a1.addTemplate('other', 'batch-base', AMI_1);
    a1.addGroup('web-asg', web);
    Object.assign(a1, { runningImages: async () => [AMI_1, AMI_2] });
    const a2 = deps.members.forAccount(A2, EU);
    a2.addTemplate('web', 'web-base', AMI_2);
    a2.addTemplate('api', 'web-base', AMI_1);
    // act
    const rows = await adoptionView(deps, 'web-base');
    // assess
    assert.deepEqual(rows, [
      {
        stream: 'web-base',
        region: EU,
        accountId: A1,
        launchTemplates: [
          {
            imageId: AMI_2,
            releaseId: r2.releaseId,
            revision: 'r2',
            sequence: 2,
            launchTemplateId: `lt-${A1}-web`,
            name: 'web',
            defaultVersion: 1,
          },
        ],
        autoScalingGroups: [
          {
            name: 'web-asg',
            images: [
              { imageId: AMI_1, releaseId: r1.releaseId, revision: 'r1', sequence: 1 },
              { imageId: AMI_2, releaseId: r2.releaseId, revision: 'r2', sequence: 2 },
            ],
          },
        ],
        current: { releaseId: r2.releaseId, imageId: AMI_2, adopted: true },
      },
      {
        stream: 'web-base',
        region: EU,
        accountId: A2,
        launchTemplates: [
          {
            imageId: AMI_2,
            releaseId: r2.releaseId,
            revision: 'r2',
            sequence: 2,
            launchTemplateId: `lt-${A2}-web`,
            name: 'web',
            defaultVersion: 1,
          },
          {
            imageId: AMI_1,
            releaseId: r1.releaseId,
            revision: 'r1',
            sequence: 1,
            launchTemplateId: `lt-${A2}-api`,
            name: 'api',
            defaultVersion: 1,
          },
        ],
        autoScalingGroups: [],
        current: { releaseId: r2.releaseId, imageId: AMI_2, adopted: false },
      },
    ]);
  });

  it('reads the sequence of an image it does not know from the version description, and names none without', async () => {
    // prepare
    const deps = setup();
    const a1 = deps.members.forAccount(A1, EU);
    a1.addTemplate(
      'old',
      'web-base',
      'ami-0000000000000000f',
      'stemcell stream=web-base sequence=7 revision=x',
    );
    a1.addTemplate(
      'foreign',
      'web-base',
      'ami-0000000000000000e',
      'stemcell stream=batch-base sequence=8 revision=x',
    );
    const bare = a1.addTemplate('bare', 'web-base');
    delete (bare.versions[0] as { imageId?: string }).imageId;
    a1.addGroup('plain', bare);
    // act
    const [row] = await adoptionView(deps, 'web-base');
    // assess
    assert.deepEqual(
      row?.launchTemplates.map((t) => [t.name, t.imageId, t.sequence, t.releaseId]),
      [
        ['old', 'ami-0000000000000000f', 7, undefined],
        ['foreign', 'ami-0000000000000000e', undefined, undefined],
        ['bare', '-', undefined, undefined],
      ],
    );
    assert.ok(!('sequence' in (row?.launchTemplates[1] ?? {})), 'no sequence key when none is known');
    assert.deepEqual(row?.autoScalingGroups, [{ name: 'plain', images: [] }]);
    assert.equal(row?.current, undefined, 'no release announced in the region');
  });

  it('says the newest report of an account, even without templates, and leaves out accounts with nothing', async () => {
    // prepare
    const deps = setup();
    const r1 = await release(deps, 'r1', AMI_1);
    const r2 = await release(deps, 'r2', AMI_2);
    await deps.releases.recordAccount(r1.releaseId, {
      accountId: A3,
      region: EU,
      outcome: 'updated',
      launchTemplates: 1,
      updatedAt: '2026-11-20T10:00:00.000Z',
      instanceRefresh: 'succeeded',
    });
    await deps.releases.recordAccount(r2.releaseId, {
      accountId: A3,
      region: EU,
      outcome: 'already-current',
      launchTemplates: 0,
      updatedAt: '2026-11-21T10:00:00.000Z',
    });
    await deps.releases.recordAccount(r1.releaseId, {
      accountId: A2,
      region: EU,
      outcome: 'updated',
      launchTemplates: 1,
      updatedAt: '2026-11-20T11:00:00.000Z',
      instanceRefresh: 'failed',
    });
    // act
    const rows = await adoptionView(deps, 'web-base');
    // assess
    assert.deepEqual(
      rows.map((r) => [r.accountId, r.lastReport, r.current]),
      [
        [
          A2,
          {
            releaseId: r1.releaseId,
            outcome: 'updated',
            instanceRefresh: 'failed',
            at: '2026-11-20T11:00:00.000Z',
          },
          { releaseId: r2.releaseId, imageId: AMI_2, adopted: false },
        ],
        [
          A3,
          { releaseId: r2.releaseId, outcome: 'already-current', at: '2026-11-21T10:00:00.000Z' },
          { releaseId: r2.releaseId, imageId: AMI_2, adopted: false },
        ],
      ],
    );
  });

  it('names the newest release that holds an image (a rollback names itself)', async () => {
    // prepare
    const deps = setup();
    await release(deps, 'r1', AMI_1);
    await release(deps, 'r2', AMI_2);
    const back = await release(deps, 'r1-rollback-1', AMI_1);
    deps.members.forAccount(A1, EU).addTemplate('web', 'web-base', AMI_1);
    // act
    const [row] = await adoptionView(deps, 'web-base');
    // assess
    assert.equal(row?.launchTemplates[0]?.releaseId, back.releaseId);
    assert.equal(row?.launchTemplates[0]?.sequence, 3);
    assert.deepEqual(row?.current, { releaseId: back.releaseId, imageId: AMI_1, adopted: true });
  });

  it('covers every stream in name order when none is named, and refuses an unknown one', async () => {
    // prepare
    const deps = setup();
    const a1 = deps.members.forAccount(A1, EU);
    a1.addTemplate('web', 'web-base', AMI_1);
    a1.addTemplate('batch', 'batch-base', AMI_1);
    // act
    const rows = await adoptionView(deps);
    // assess
    assert.deepEqual(
      rows.map((r) => [r.stream, r.launchTemplates.map((t) => t.name)]),
      [
        ['batch-base', ['batch']],
        ['web-base', ['web']],
      ],
    );
    await assert.rejects(adoptionView(deps, 'nope'), /adoption: unknown stream "nope"/);
  });

  it('keeps to the accounts of the stream scope OUs', async () => {
    // prepare
    const deps = setup({ ous: [OU_B] });
    for (const id of [A1, A2, A3]) deps.members.forAccount(id, EU).addTemplate('web', 'web-base', AMI_1);
    // act
    const rows = await adoptionView(deps, 'web-base');
    // assess
    assert.deepEqual(
      rows.map((r) => r.accountId),
      [A2, A3],
    );
  });

  it('is not on the newest release while an account has no template, only groups', async () => {
    // prepare
    const deps = setup();
    await release(deps, 'r1', AMI_1);
    const a1 = deps.members.forAccount(A1, EU);
    const t = a1.addTemplate('web', 'batch-base', AMI_1);
    t.tags['stemcell:stream'] = 'batch-base';
    a1.groups.push({
      name: 'asg',
      launchTemplateId: t.launchTemplateId,
      tags: { 'stemcell:stream': 'web-base' },
      refreshing: false,
      refreshes: 0,
    });
    // act
    const [row] = await adoptionView(deps, 'web-base');
    // assess
    assert.equal(row?.launchTemplates.length, 0);
    assert.equal(row?.current?.adopted, false);
  });
});
