// expire's rules beyond the main path (expire.test.ts): which streams and images it looks at, who is asked
// whether an image is in use, what stays protected, how the grace period reads an existing deprecation, and
// what the result and the log tell the operator. Each case is what an account or the operator would see.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ExpireDeps } from '#core/deps.ts';
import { expireImages } from '#core/images/expire.ts';
import { releaseId, releaseTags, TAG } from '#core/model/naming.ts';
import type { MemberAccount } from '#ports';
import {
  AttributeLogger,
  FakeClock,
  FakeImaging,
  FakeMembers,
  FakeOrganization,
  OU_A,
  OU_B,
  testConfig,
} from '#test/support/core-fakes.ts';

const REGION = 'eu-west-1';
const NOW = '2026-12-01T00:00:00.000Z';
const HOUR = 3_600_000;

type Streams = Record<string, Record<string, unknown>>;

function setup(streams: Streams = { 'web-base': { regions: [REGION], keep: 1 } }) {
  const imaging = new FakeImaging();
  const members = new FakeMembers();
  const asked: string[] = [];
  const organization = new FakeOrganization([
    { id: '200000000002', ou: OU_B },
    { id: '200000000001', ou: OU_A },
    { id: '200000000003', ou: 'ou-ab12-cccccccc' },
  ]);
  const deps = {
    config: testConfig({ streams }),
    clock: new FakeClock(NOW),
    logger: new AttributeLogger(),
    imaging: imaging.of,
    organization,
    members: {
      forAccount: (accountId: string, region: string) => {
        asked.push(accountId);
        return members.forAccount(accountId, region);
      },
    },
  } satisfies ExpireDeps;
  return { deps, imaging, members, asked };
}

/** Registers sequences 1..n of a stream in a region; returns the images by sequence. */
async function register(imaging: FakeImaging, n: number, stream = 'web-base', region = REGION) {
  const out: Array<{ imageId: string; snapshotId: string }> = [];
  const { images, snapshots } = imaging.of(region);
  for (let sequence = 1; sequence <= n; sequence++) {
    const tags = releaseTags({
      stream,
      revision: `r${sequence}`,
      sequence,
      releaseId: releaseId(stream, sequence),
    });
    const { snapshotId } = await snapshots.create('vol-1', { description: '', tags, clientToken: '' });
    const { imageId } = await images.register({
      name: `stemcell/${stream}/r${sequence}`,
      description: '',
      snapshotId,
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      rootDeviceName: '/dev/xvda',
      tags,
      clientToken: '',
    });
    out.push({ imageId, snapshotId });
  }
  return out;
}

const id = (images: Array<{ imageId: string }>, sequence: number) => images[sequence - 1]?.imageId as string;

describe('Function: expireImages()', () => {
  it('with streams given, touches only those streams', async () => {
    // prepare: two streams, three images each, keep 1
    const { deps, imaging } = setup({
      'web-base': { regions: [REGION], keep: 1 },
      'db-base': { regions: [REGION], keep: 1 },
    });
    const web = await register(imaging, 3, 'web-base');
    const db = await register(imaging, 3, 'db-base');
    // act
    const result = await expireImages(deps, { graceMs: 0, streams: ['db-base'] });
    // assess
    assert.deepEqual(imaging.of(REGION).images.deregistered.sort(), [id(db, 1), id(db, 2)].sort());
    assert.ok(!result.expired.some((e) => e.stream === 'web-base'), `${id(web, 1)} stays`);
  });

  it('refuses a stream that is not configured, naming it, and changes nothing', async () => {
    // prepare
    const { deps, imaging } = setup();
    await register(imaging, 3);
    // act + assess
    await assert.rejects(expireImages(deps, { graceMs: 0, streams: ['nope'] }), /unknown stream "nope"/);
    assert.deepEqual(imaging.of(REGION).images.deprecated, []);
  });

  it('leaves alone an image tagged for the stream that is no stemcell release, and does not count it', async () => {
    // prepare: sequences 1 and 2, then a hand-made image carrying only the stream tag
    const { deps, imaging } = setup();
    const ours = await register(imaging, 2);
    const { imageId: handMade } = await imaging.of(REGION).images.register({
      name: 'by-hand',
      description: '',
      snapshotId: 'snap-by-hand',
      architecture: 'x86_64',
      bootMode: 'legacy-bios',
      rootDeviceName: '/dev/xvda',
      tags: { [TAG.stream]: 'web-base' },
      clientToken: '',
    });
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess: only sequence 1 goes; sequence 2 is the one kept, not the hand-made image
    assert.deepEqual(imaging.of(REGION).images.deregistered, [id(ours, 1)]);
    assert.ok(!imaging.of(REGION).images.deprecated.includes(handMade));
    assert.deepEqual(
      result.expired.map((e) => [e.sequence, e.action]),
      [[1, 'deregistered']],
    );
  });

  it('does not count an image deregistered by hand among the newest it keeps', async () => {
    // prepare: keep 2; the newest (3) was deregistered by hand
    const { deps, imaging } = setup({ 'web-base': { regions: [REGION], keep: 2 } });
    const ours = await register(imaging, 3);
    await imaging.of(REGION).images.deregister(id(ours, 3));
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess: 1 and 2 are the two newest registered images; nothing goes
    assert.deepEqual(result.expired, []);
    assert.deepEqual(imaging.of(REGION).images.deregistered, [id(ours, 3)]);
  });

  it('keeps every protected image with its reason, and retires the others', async () => {
    // prepare: keep 1; 1 is what a rollback points at, 2 the pinned revision
    const { deps, imaging } = setup();
    const ours = await register(imaging, 4);
    const reasons = new Map([
      [id(ours, 1), 'rollback target'],
      [id(ours, 2), 'pinned'],
    ]);
    const asked: string[] = [];
    const protectedImages = async (stream: string, region: string) => {
      asked.push(`${stream}/${region}`);
      return reasons;
    };
    // act
    const result = await expireImages({ ...deps, protectedImages }, { graceMs: 0 });
    // assess
    assert.deepEqual(imaging.of(REGION).images.deregistered, [id(ours, 3)]);
    assert.deepEqual(asked, [`web-base/${REGION}`]);
    assert.deepEqual(
      (result.keptProtected ?? []).sort((a, b) => a.reason.localeCompare(b.reason)),
      [
        { stream: 'web-base', region: REGION, imageId: id(ours, 2), reason: 'pinned' },
        { stream: 'web-base', region: REGION, imageId: id(ours, 1), reason: 'rollback target' },
      ],
    );
  });

  it('lists every use of a kept image, sorted, with each account that can launch it', async () => {
    // prepare: in account 2, sequence 1 is the default of a tagged template, of a group, and of an instance;
    // in account 1, an instance of it
    const { deps, imaging, members } = setup();
    const ours = await register(imaging, 2);
    const two = members.forAccount('200000000002', REGION);
    const template = two.addTemplate('web', 'web-base', id(ours, 1));
    two.addGroup('web-asg', template, false);
    two.instanceImages = [id(ours, 1)];
    members.forAccount('200000000001', REGION).instanceImages = [id(ours, 1)];
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(imaging.of(REGION).images.deregistered, []);
    assert.deepEqual(result.keptInUse, [
      {
        stream: 'web-base',
        region: REGION,
        imageId: id(ours, 1),
        accounts: ['200000000001', '200000000002'],
        uses: [
          '200000000001 instance',
          `200000000002 asg web-asg → ${template.launchTemplateId} $Default`,
          '200000000002 instance',
          '200000000002 launch template web default',
        ],
      },
    ]);
  });

  it('reads a group that names no launch-template version as using the default version', async () => {
    // prepare: an adapter that leaves launchTemplateVersion out, as a group made without one comes back
    const { deps, imaging, members } = setup();
    const ours = await register(imaging, 2);
    const account = members.forAccount('200000000001', REGION);
    const template = account.addTemplate('plain', 'not-stemcell', id(ours, 1));
    template.tags = {};
    account.addGroup('asg', template, false);
    const listed = account.listAutoScalingGroups.bind(account);
    (account as MemberAccount).listAutoScalingGroups = async (...args) =>
      (await listed(...args)).map(({ launchTemplateVersion: _v, ...g }) => g);
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(imaging.of(REGION).images.deregistered, []);
    assert.deepEqual(result.keptInUse[0]?.uses, [
      `200000000001 asg asg → ${template.launchTemplateId} $Default`,
    ]);
  });

  it('passes over a group whose launch template was deleted: nothing launches from it', async () => {
    // prepare: the group's template is gone (EC2 answers InvalidLaunchTemplateId.NotFound)
    const { deps, imaging, members } = setup();
    const ours = await register(imaging, 3);
    const account = members.forAccount('200000000001', REGION);
    const template = account.addTemplate('gone', 'not-stemcell', id(ours, 1));
    template.tags = {};
    account.addGroup('asg', template, false);
    account.templates = [];
    account.listLaunchTemplateVersions = async (launchTemplateId: string) => {
      throw Object.assign(
        new Error(`The specified launch template, with template ID ${launchTemplateId}, does not exist.`),
        {
          name: 'InvalidLaunchTemplateId.NotFound',
        },
      );
    };
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(imaging.of(REGION).images.deregistered.sort(), [id(ours, 1), id(ours, 2)].sort());
    assert.deepEqual(result.keptInUse, []);
  });

  it('fails, naming the template and the account, and retires nothing, when it cannot read what a group launches', async () => {
    // prepare: the group launches sequence 1; reading its template's versions is throttled
    const { deps, imaging, members } = setup();
    const ours = await register(imaging, 3);
    const account = members.forAccount('200000000001', REGION);
    const template = account.addTemplate('web', 'not-stemcell', id(ours, 1));
    template.tags = {};
    account.addGroup('asg', template, false);
    account.listLaunchTemplateVersions = async () => {
      throw Object.assign(new Error('Rate exceeded'), { name: 'RequestLimitExceeded' });
    };
    // act + assess: the error names what could not be read, and keeps EC2's error as its cause
    await assert.rejects(expireImages(deps, { graceMs: 0 }), (err: Error) => {
      assert.match(
        err.message,
        new RegExp(`launch template ${template.launchTemplateId} in 200000000001/${REGION}: Rate exceeded`),
      );
      assert.equal((err.cause as Error | undefined)?.name, 'RequestLimitExceeded');
      return true;
    });
    assert.deepEqual(imaging.of(REGION).images.deprecated, []);
    assert.deepEqual(imaging.of(REGION).images.deregistered, []);
  });

  it('asks every account of the organization when the scope is the organization and the images are shared with its root', async () => {
    // prepare: sharing with the root reaches every account, whatever OU it is in
    const { deps, imaging, asked } = setup({
      'web-base': { regions: [REGION], keep: 1, sharing: { organization: false, ous: ['r-ab12'] } },
    });
    await register(imaging, 2);
    // act
    await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(asked, ['200000000001', '200000000002', '200000000003']);
  });

  it('keeps the image of the version a group names, and of the default version of a tagged template', async () => {
    // prepare: keep 1 of 6. A group pinned to version 2 of a template whose versions 1 and 3 hold other images;
    // a tagged template moved to version 2 (its version 1 holds an older image nothing else uses)
    const { deps, imaging, members } = setup();
    const ours = await register(imaging, 6);
    const account = members.forAccount('200000000001', REGION);
    const pinned = account.addTemplate('pinned', 'not-stemcell', id(ours, 1));
    pinned.tags = {};
    for (const [n, sequence] of [
      [2, 2],
      [3, 3],
    ] as const) {
      await account.createLaunchTemplateVersion(pinned.launchTemplateId, {
        sourceVersion: 1,
        imageId: id(ours, sequence),
        versionDescription: `v${n}`,
        clientToken: `pinned-${n}`,
      });
    }
    await account.setDefaultVersion(pinned.launchTemplateId, 3);
    account.addGroup('asg', pinned, false, '2');
    const tagged = account.addTemplate('web', 'web-base', id(ours, 4));
    await account.createLaunchTemplateVersion(tagged.launchTemplateId, {
      sourceVersion: 1,
      imageId: id(ours, 5),
      versionDescription: 'moved',
      clientToken: 'web-2',
    });
    await account.setDefaultVersion(tagged.launchTemplateId, 2);
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess: 2 (the group's version) and 5 (the tagged default) stay; 1, 3 and 4 go
    assert.deepEqual(
      imaging.of(REGION).images.deregistered.sort(),
      [id(ours, 1), id(ours, 3), id(ours, 4)].sort(),
    );
    assert.deepEqual(Object.fromEntries(result.keptInUse.map((k) => [k.imageId, k.uses])), {
      [id(ours, 2)]: [`200000000001 asg asg → ${pinned.launchTemplateId} 2`],
      [id(ours, 5)]: ['200000000001 launch template web default'],
    });
  });

  it('asks the accounts of the scope and of the sharing, and no other account', async () => {
    // prepare: scope OU A, shared with OU A and OU B; account 3 is in neither
    const { deps, imaging, asked } = setup({
      'web-base': {
        regions: [REGION],
        keep: 1,
        subscribers: { scope: { ous: [OU_A] } },
        sharing: { organization: false, ous: [OU_A, OU_B] },
      },
    });
    await register(imaging, 2);
    // act
    await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(asked, ['200000000001', '200000000002']);
  });

  it('asks every account of the organization when the images are shared with it, whatever the scope', async () => {
    // prepare
    const { deps, imaging, asked } = setup({
      'web-base': {
        regions: [REGION],
        keep: 1,
        subscribers: { scope: { ous: [OU_A] } },
        sharing: { organization: true },
      },
    });
    await register(imaging, 2);
    // act
    await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(asked, ['200000000001', '200000000002', '200000000003']);
  });

  it('asks the accounts of the scoped OUs when the stream sets no sharing', async () => {
    // prepare: scope OU B; sharing defaults to exactly the scope
    const { deps, imaging, asked } = setup({
      'web-base': { regions: [REGION], keep: 1, subscribers: { scope: { ous: [OU_B] } } },
    });
    await register(imaging, 2);
    // act
    await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(asked, ['200000000002']);
  });

  it('a second run at the same instant reports the deprecated image as waiting, with its date', async () => {
    // prepare
    const { deps, imaging } = setup();
    const ours = await register(imaging, 2);
    await expireImages(deps, { graceMs: 2 * HOUR });
    // act
    const again = await expireImages(deps, { graceMs: 2 * HOUR });
    deps.clock.advance(HOUR);
    const later = await expireImages(deps, { graceMs: 2 * HOUR });
    // assess: the grace period runs from the first deprecation, not from each run
    assert.deepEqual(again.expired, []);
    const due = '2026-12-01T02:00:00.000Z';
    assert.deepEqual(again.waiting, [
      { stream: 'web-base', region: REGION, imageId: id(ours, 1), deregisterAfter: due },
    ]);
    assert.deepEqual(later.waiting, [
      { stream: 'web-base', region: REGION, imageId: id(ours, 1), deregisterAfter: due },
    ]);
    assert.deepEqual(imaging.of(REGION).images.deprecated, [id(ours, 1)]);
  });

  it('treats a deprecation set for a future date as none: deprecates now and starts the grace period now', async () => {
    // prepare: someone scheduled the deprecation of sequence 1 a day ahead
    const { deps, imaging } = setup();
    const ours = await register(imaging, 2);
    const image = imaging.of(REGION).images.images.get(id(ours, 1));
    assert.ok(image);
    image.deprecatedAt = '2026-12-02T00:00:00.000Z';
    // act
    const result = await expireImages(deps, { graceMs: HOUR });
    // assess
    assert.deepEqual(result.expired, [
      {
        stream: 'web-base',
        region: REGION,
        imageId: id(ours, 1),
        sequence: 1,
        action: 'deprecated',
        deregisterAfter: '2026-12-01T01:00:00.000Z',
      },
    ]);
    assert.equal(image.deprecatedAt, NOW);
    assert.deepEqual(result.waiting, []);
  });

  it("deletes exactly the expired image's snapshot and says so, and logs each expiry", async () => {
    // prepare
    const { deps, imaging } = setup();
    const ours = await register(imaging, 2);
    // act
    const result = await expireImages(deps, { graceMs: 0 });
    // assess
    assert.deepEqual(imaging.of(REGION).snapshots.deleted, [ours[0]?.snapshotId]);
    assert.deepEqual(result.expired, [
      {
        stream: 'web-base',
        region: REGION,
        imageId: id(ours, 1),
        sequence: 1,
        action: 'deregistered',
        snapshotDeleted: ours[0]?.snapshotId,
      },
    ]);
    assert.deepEqual(deps.logger.of('image expired'), {
      stream: 'web-base',
      region: REGION,
      imageId: id(ours, 1),
      sequence: 1,
    });
  });

  it('in a dry run logs what would expire, and says it would', async () => {
    // prepare
    const { deps, imaging } = setup();
    const ours = await register(imaging, 2);
    // act
    const result = await expireImages(deps, { graceMs: 0, dryRun: true });
    // assess
    assert.deepEqual(
      deps.logger.lines.map((l) => l.message),
      ['image would expire'],
    );
    assert.equal(result.expired[0]?.imageId, id(ours, 1));
    assert.deepEqual(imaging.of(REGION).snapshots.deleted, []);
  });
});
