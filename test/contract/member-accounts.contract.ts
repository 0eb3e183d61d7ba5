// Behavioural contract of MemberAccounts (EC2 launch templates, Auto Scaling, SSM in a member account).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MemberAccounts } from '#ports';

export const MEMBER_FIXTURE = {
  accountId: '100000000001',
  region: 'eu-west-1',
  launchTemplate: { name: 'web-servers', stream: 'web', imageId: 'ami-0000000000000000a' },
  untaggedTemplate: { name: 'not-opted-in', imageId: 'ami-0000000000000000b' },
  autoScalingGroup: 'web-asg',
} as const;

export type MemberAccountsFactory = (fixture: typeof MEMBER_FIXTURE) => Promise<{
  members: MemberAccounts;
  /** Reads an SSM parameter back (the port has no getter). */
  readParameter: (name: string) => Promise<string | undefined>;
  cleanup?: () => Promise<void>;
}>;

export function memberAccountsContract(name: string, factory: MemberAccountsFactory): void {
  const f = MEMBER_FIXTURE;
  describe(`Contract: MemberAccounts (${name})`, () => {
    it('lists only launch templates tagged for the stream, and moves one to a new default version', async () => {
      const { members, cleanup } = await factory(f);
      try {
        const account = members.forAccount(f.accountId, f.region);
        // act
        const [lt, ...rest] = await account.listLaunchTemplates('stemcell:stream', 'web');
        assert.ok(lt);
        const current = await account.getLaunchTemplateVersion(lt.launchTemplateId, lt.defaultVersionNumber);
        const created = await account.createLaunchTemplateVersion(lt.launchTemplateId, {
          sourceVersion: lt.defaultVersionNumber,
          imageId: 'ami-0000000000000000c',
          versionDescription: 'stemcell stream=web sequence=2 release=web#00000002',
          clientToken: 'web#00000002/lt',
        });
        const retried = await account.createLaunchTemplateVersion(lt.launchTemplateId, {
          sourceVersion: lt.defaultVersionNumber,
          imageId: 'ami-0000000000000000c',
          versionDescription: 'stemcell stream=web sequence=2 release=web#00000002',
          clientToken: 'web#00000002/lt',
        });
        await account.setDefaultVersion(lt.launchTemplateId, created.versionNumber);
        const [after] = await account.listLaunchTemplates('stemcell:stream', 'web');
        const stored = await account.getLaunchTemplateVersion(lt.launchTemplateId, created.versionNumber);
        // assess
        assert.deepEqual(rest, []);
        assert.equal(lt.launchTemplateName, f.launchTemplate.name);
        assert.equal(lt.tags['stemcell:stream'], 'web');
        assert.equal(current.imageId, f.launchTemplate.imageId);
        assert.equal(created.versionNumber, lt.latestVersionNumber + 1);
        assert.equal(
          retried.versionNumber,
          created.versionNumber,
          'a retried client token makes no second version',
        );
        assert.equal(after?.defaultVersionNumber, created.versionNumber);
        assert.equal(after?.latestVersionNumber, created.versionNumber);
        assert.equal(stored.imageId, 'ami-0000000000000000c');
        assert.equal(stored.versionDescription, 'stemcell stream=web sequence=2 release=web#00000002');
        const all = await account.listLaunchTemplateVersions(lt.launchTemplateId);
        assert.deepEqual(
          all.map((v) => [v.versionNumber, v.imageId]),
          [
            [lt.defaultVersionNumber, f.launchTemplate.imageId],
            [created.versionNumber, 'ami-0000000000000000c'],
          ],
          'every version, oldest first',
        );
      } finally {
        await cleanup?.();
      }
    });

    it('writes the image parameter', async () => {
      const { members, readParameter, cleanup } = await factory(f);
      try {
        // act
        await members
          .forAccount(f.accountId, f.region)
          .putParameter('/stemcell/web/eu-west-1', 'ami-0000000000000000c');
        await members
          .forAccount(f.accountId, f.region)
          .putParameter('/stemcell/web/eu-west-1', 'ami-0000000000000000d');
        // assess
        assert.equal(await readParameter('/stemcell/web/eu-west-1'), 'ami-0000000000000000d');
      } finally {
        await cleanup?.();
      }
    });

    it('finds tagged Auto Scaling groups and starts one instance refresh at a time', async () => {
      const { members, cleanup } = await factory(f);
      try {
        const account = members.forAccount(f.accountId, f.region);
        // act
        const groups = await account.listAutoScalingGroups('stemcell:stream', 'web');
        const before = await account.instanceRefreshInProgress(f.autoScalingGroup);
        const refresh = await account.startInstanceRefresh(f.autoScalingGroup);
        const during = await account.instanceRefreshInProgress(f.autoScalingGroup);
        // assess
        assert.deepEqual(
          groups.map((g) => g.name),
          [f.autoScalingGroup],
        );
        assert.equal(before, false);
        assert.ok(refresh.instanceRefreshId);
        assert.equal(during, true);
        assert.deepEqual(await account.listAutoScalingGroups('stemcell:stream', 'nothing'), []);
      } finally {
        await cleanup?.();
      }
    });

    it('tags an Auto Scaling group, keeping its other tags, and overwrites a tag it sets again', async () => {
      const { members, cleanup } = await factory(f);
      try {
        const account = members.forAccount(f.accountId, f.region);
        const [before] = await account.listAutoScalingGroups('stemcell:stream', 'web');
        // act
        await account.tagAutoScalingGroup(f.autoScalingGroup, {
          'stemcell:instance-refresh': 'a lt-01:2 r2',
        });
        await account.tagAutoScalingGroup(f.autoScalingGroup, {
          'stemcell:instance-refresh': 'b lt-01:3 r3',
        });
        const [after] = await account.listAutoScalingGroups('stemcell:stream', 'web');
        // assess
        assert.ok(before);
        assert.equal(after?.name, f.autoScalingGroup);
        assert.deepEqual(after?.tags, { ...before.tags, 'stemcell:instance-refresh': 'b lt-01:3 r3' });
      } finally {
        await cleanup?.();
      }
    });
  });
}
