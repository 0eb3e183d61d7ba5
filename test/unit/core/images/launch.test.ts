// The launch verdict and what it rests on: which launch templates are checked and as whom, what an instance
// type can boot, and the launch permissions announce sets and reads back. Written for the launch-model
// mutation group; the local launch model itself is under test/unit/local/launch-model.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  defaultInstanceType,
  instanceTypeMismatch,
  instanceTypeTraits,
} from '#core/images/instance-types.ts';
import { checkLaunches } from '#core/images/launch.ts';
import {
  LaunchPermissionError,
  launchPermissionsFor,
  shareAndVerify,
} from '#core/images/launch-permissions.ts';
import type { LaunchModel, LaunchRequest, LaunchVerdict } from '#ports';
import { FakeImages, FakeMembers, FakeOrganization, ORG_ID, OU_A, OU_B } from '#test/support/core-fakes.ts';

/** A launch model that answers from a table and records every request. */
class ScriptedLaunchModel implements LaunchModel {
  requests: LaunchRequest[] = [];
  refuse = new Map<string, string>();
  async check(request: LaunchRequest): Promise<LaunchVerdict> {
    this.requests.push(request);
    const reason = this.refuse.get(`${request.accountId}/${request.imageId}`);
    return reason === undefined ? { launchable: true } : { launchable: false, reason };
  }
}

function withTemplate(members: FakeMembers, account: string, region: string, name: string, stream = 'web') {
  const member = members.forAccount(account, region);
  const template = member.addTemplate(name, stream, `ami-${account.slice(-4)}${name.length}`);
  const v1 = template.versions[0];
  if (v1) v1.instanceType = 't3.micro';
  return { member, template };
}

describe('Function: checkLaunches()', () => {
  it("checks the default version's image and instance type of each tagged template, as its group or the account", async () => {
    // prepare
    const members = new FakeMembers();
    const launch = new ScriptedLaunchModel();
    const a = withTemplate(members, '200000000001', 'eu-west-1', 'web-lt');
    a.member.addGroup('web-asg', a.template);
    a.member.addGroup('db-asg', a.member.addTemplate('db-lt', 'db'));
    const b = withTemplate(members, '200000000002', 'eu-west-1', 'web-lt');
    b.member.addGroup('other-asg', b.member.addTemplate('other', 'db'));
    // the default is version 2, a later version 3 exists: version 2 is what launches
    b.template.versions.push(
      { versionNumber: 2, imageId: 'ami-default', instanceType: 'm6g.large' },
      { versionNumber: 3, imageId: 'ami-latest', instanceType: 't3.micro' },
    );
    b.template.defaultVersionNumber = 2;
    b.template.latestVersionNumber = 3;
    let listedGroups = 0;
    const none = members.forAccount('200000000003', 'eu-west-1');
    none.listAutoScalingGroups = async () => {
      listedGroups++;
      return [];
    };
    // act
    const report = await checkLaunches({ members, launch }, [
      { accountId: '200000000001', region: 'eu-west-1', stream: 'web' },
      { accountId: '200000000002', region: 'eu-west-1', stream: 'web' },
      { accountId: '200000000003', region: 'eu-west-1', stream: 'web' },
    ]);
    // assess
    assert.deepEqual(report, { checked: 2, launchable: 2, failures: [] });
    assert.equal(listedGroups, 0, 'an account without tagged templates is asked nothing more');
    assert.deepEqual(launch.requests, [
      {
        accountId: '200000000001',
        region: 'eu-west-1',
        imageId: a.template.versions[0]?.imageId,
        instanceType: 't3.micro',
        via: 'auto-scaling',
      },
      {
        accountId: '200000000002',
        region: 'eu-west-1',
        imageId: 'ami-default',
        instanceType: 'm6g.large',
        via: 'account',
      },
    ]);
  });

  it('names account, region, template, image and reason of each failure, and counts only the launchable', async () => {
    // prepare
    const members = new FakeMembers();
    const launch = new ScriptedLaunchModel();
    const ok = withTemplate(members, '200000000001', 'us-east-1', 'ok-lt');
    const refused = withTemplate(members, '200000000001', 'us-east-1', 'refused-lt');
    const noImage = withTemplate(members, '200000000001', 'us-east-1', 'noimage-lt');
    delete noImage.template.versions[0]?.imageId;
    const noType = withTemplate(members, '200000000001', 'us-east-1', 'notype-lt');
    delete noType.template.versions[0]?.instanceType;
    const refusedImage = refused.template.versions[0]?.imageId ?? '';
    launch.refuse.set(`200000000001/${refusedImage}`, 'no launch permission');
    // act
    const report = await checkLaunches({ members, launch }, [
      { accountId: '200000000001', region: 'us-east-1', stream: 'web' },
    ]);
    // assess
    assert.equal(report.checked, 4);
    assert.equal(report.launchable, 1);
    assert.deepEqual(report.failures, [
      {
        account: '200000000001',
        region: 'us-east-1',
        launchTemplate: 'refused-lt',
        imageId: refusedImage,
        reason: 'no launch permission',
      },
      {
        account: '200000000001',
        region: 'us-east-1',
        launchTemplate: 'noimage-lt',
        imageId: null,
        reason: 'version 1 names no image',
      },
      {
        account: '200000000001',
        region: 'us-east-1',
        launchTemplate: 'notype-lt',
        imageId: noType.template.versions[0]?.imageId,
        reason: 'version 1 names no instance type',
      },
    ]);
    assert.equal(launch.requests.length, 2, 'a version without image or type is not asked about');
    assert.ok(ok.template);
  });
});

describe('Function: instanceTypeTraits()', () => {
  it('knows Xen-era x86, Nitro x86 and Graviton families, and nothing else', () => {
    // act + assess
    assert.deepEqual(instanceTypeTraits('t2.micro'), { architecture: 'x86_64', bootModes: ['legacy-bios'] });
    assert.deepEqual(instanceTypeTraits('c4.large'), { architecture: 'x86_64', bootModes: ['legacy-bios'] });
    assert.deepEqual(instanceTypeTraits('m7i.2xlarge'), {
      architecture: 'x86_64',
      bootModes: ['legacy-bios', 'uefi'],
    });
    assert.deepEqual(instanceTypeTraits('t3a.nano'), {
      architecture: 'x86_64',
      bootModes: ['legacy-bios', 'uefi'],
    });
    assert.deepEqual(instanceTypeTraits('r8g.medium'), { architecture: 'arm64', bootModes: ['uefi'] });
    assert.deepEqual(instanceTypeTraits('t4g.micro'), { architecture: 'arm64', bootModes: ['uefi'] });
    const families = {
      'legacy-bios': ['t2', 'm4', 'c4', 'r4'],
      nitro: [
        't3',
        't3a',
        'm5',
        'm5a',
        'm6i',
        'm6a',
        'm7i',
        'm7a',
        'c5',
        'c5a',
        'c6i',
        'c6a',
        'c7i',
        'c7a',
        'r5',
        'r6i',
        'r7i',
      ],
      graviton: ['t4g', 'm6g', 'm7g', 'm8g', 'c6g', 'c7g', 'c8g', 'r6g', 'r7g', 'r8g'],
    };
    for (const f of families['legacy-bios'])
      assert.deepEqual(
        instanceTypeTraits(`${f}.large`),
        { architecture: 'x86_64', bootModes: ['legacy-bios'] },
        f,
      );
    for (const f of families.nitro)
      assert.deepEqual(
        instanceTypeTraits(`${f}.large`),
        { architecture: 'x86_64', bootModes: ['legacy-bios', 'uefi'] },
        f,
      );
    for (const f of families.graviton)
      assert.deepEqual(instanceTypeTraits(`${f}.large`), { architecture: 'arm64', bootModes: ['uefi'] }, f);
    for (const unknown of [
      '1t3.micro',
      ' t3.micro',
      'p5.48xlarge',
      't3',
      't3.',
      '.micro',
      'T3.micro',
      'xt3.micro',
      't3.micro.x',
      '',
    ])
      assert.equal(instanceTypeTraits(unknown), undefined, unknown);
  });
});

describe('Function: defaultInstanceType()', () => {
  it('is a Graviton micro for arm64 and a Nitro micro for x86_64', () => {
    // act + assess
    assert.equal(defaultInstanceType('arm64'), 't4g.micro');
    assert.equal(defaultInstanceType('x86_64'), 't3.micro');
  });
});

describe('Function: instanceTypeMismatch()', () => {
  it('accepts what the type can boot, and an image without a boot mode on an architecture that fits', () => {
    // act + assess
    assert.equal(instanceTypeMismatch('t3.micro', { architecture: 'x86_64', bootMode: 'uefi' }), undefined);
    assert.equal(
      instanceTypeMismatch('t2.micro', { architecture: 'x86_64', bootMode: 'legacy-bios' }),
      undefined,
    );
    assert.equal(instanceTypeMismatch('t4g.micro', { architecture: 'arm64', bootMode: 'uefi' }), undefined);
    assert.equal(instanceTypeMismatch('t2.micro', { architecture: 'x86_64', bootMode: 'none' }), undefined);
    assert.equal(instanceTypeMismatch('t4g.micro', { architecture: 'arm64', bootMode: 'none' }), undefined);
  });

  it('names the type and what does not fit', () => {
    // act + assess
    assert.equal(
      instanceTypeMismatch('x9.large', { architecture: 'x86_64', bootMode: 'uefi' }),
      'instance type x9.large is unknown to the launch model',
    );
    assert.equal(
      instanceTypeMismatch('t4g.micro', { architecture: 'x86_64', bootMode: 'none' }),
      'instance type t4g.micro is arm64, the image is x86_64',
    );
    assert.equal(
      instanceTypeMismatch('t2.micro', { architecture: 'x86_64', bootMode: 'uefi' }),
      'instance type t2.micro boots legacy-bios, the image needs uefi',
    );
    assert.equal(
      instanceTypeMismatch('t4g.micro', { architecture: 'arm64', bootMode: 'legacy-bios' }),
      'instance type t4g.micro boots uefi, the image needs legacy-bios',
    );
    assert.equal(
      instanceTypeMismatch('m5.large', { architecture: 'arm64', bootMode: 'uefi' }),
      'instance type m5.large is x86_64, the image is arm64',
    );
  });
});

describe('Function: launchPermissionsFor()', () => {
  it("names the organization's ARN when sharing with it, and each OU's ARN", async () => {
    // prepare
    const organization = new FakeOrganization();
    // act
    const both = await launchPermissionsFor({ organization: true, ous: [OU_A, OU_B] }, organization);
    const ousOnly = await launchPermissionsFor({ organization: false, ous: [OU_B] }, organization);
    // assess
    assert.deepEqual(both, {
      organizationArns: [`arn:aws:organizations::111111111111:organization/${ORG_ID}`],
      ouArns: [
        `arn:aws:organizations::111111111111:ou/${ORG_ID}/${OU_A}`,
        `arn:aws:organizations::111111111111:ou/${ORG_ID}/${OU_B}`,
      ],
    });
    assert.deepEqual(ousOnly, {
      organizationArns: [],
      ouArns: [`arn:aws:organizations::111111111111:ou/${ORG_ID}/${OU_B}`],
    });
  });
});

describe('Function: shareAndVerify()', () => {
  async function imageIn(images: FakeImages) {
    const { imageId } = await images.register({
      name: 'stemcell/web/r1',
      description: 'r1',
      snapshotId: 'snap-1',
      architecture: 'x86_64',
      bootMode: 'uefi',
      rootDeviceName: '/dev/xvda',
      tags: {},
      clientToken: 't',
    });
    return imageId;
  }
  const ORG = `arn:aws:organizations::111111111111:organization/${ORG_ID}`;
  const OU = `arn:aws:organizations::111111111111:ou/${ORG_ID}/${OU_A}`;

  it('shares and returns once the image carries every permission', async () => {
    // prepare
    const images = new FakeImages('eu-west-1');
    const imageId = await imageIn(images);
    // act
    await shareAndVerify(images, imageId, 'eu-west-1', { organizationArns: [ORG], ouArns: [OU] });
    // assess
    assert.deepEqual(images.shares, [{ imageId, organizationArns: [ORG], ouArns: [OU] }]);
    assert.deepEqual(images.images.get(imageId)?.sharedWith.ouArns, [OU]);
  });

  it('shares with OUs only when only OUs are wanted', async () => {
    // prepare
    const images = new FakeImages('eu-west-1');
    const imageId = await imageIn(images);
    // act
    await shareAndVerify(images, imageId, 'eu-west-1', { organizationArns: [], ouArns: [OU] });
    // assess
    assert.equal(images.shares.length, 1);
  });

  it('shares nothing when no permission is wanted', async () => {
    // prepare
    const images = new FakeImages('eu-west-1');
    const imageId = await imageIn(images);
    images.dropShares = true;
    // act
    await shareAndVerify(images, imageId, 'eu-west-1', { organizationArns: [], ouArns: [] });
    // assess
    assert.deepEqual(images.shares, []);
  });

  it('refuses, naming image, region and every missing permission, when the share did not stick', async () => {
    // prepare
    const images = new FakeImages('eu-west-1');
    const imageId = await imageIn(images);
    images.dropShares = true;
    // act + assess
    await assert.rejects(
      shareAndVerify(images, imageId, 'eu-west-1', { organizationArns: [ORG], ouArns: [OU] }),
      (err: unknown) =>
        err instanceof LaunchPermissionError &&
        err.name === 'LaunchPermissionError' &&
        err.imageId === imageId &&
        err.missing.join() === [ORG, OU].join() &&
        err.message ===
          `image ${imageId} in eu-west-1: launch permissions ${ORG}, ${OU} were set but are not on the image; refusing to announce`,
    );
  });

  it('refuses when the image is gone after the share', async () => {
    // prepare
    const images = new FakeImages('eu-west-1');
    // act + assess
    await assert.rejects(
      shareAndVerify(images, 'ami-00000000000000404', 'eu-west-1', { organizationArns: [], ouArns: [OU] }),
      (err: unknown) => err instanceof LaunchPermissionError && err.missing.join() === OU,
    );
  });

  it('names only the permission that is missing', async () => {
    // prepare: the organization was shared before, the OU does not stick
    const images = new FakeImages('eu-west-1');
    const imageId = await imageIn(images);
    const image = images.images.get(imageId);
    if (image) image.sharedWith.organizationArns = [ORG];
    images.dropShares = true;
    // act + assess
    await assert.rejects(
      shareAndVerify(images, imageId, 'eu-west-1', { organizationArns: [ORG], ouArns: [OU] }),
      (err: unknown) => err instanceof LaunchPermissionError && err.missing.join() === OU,
    );
  });
});
