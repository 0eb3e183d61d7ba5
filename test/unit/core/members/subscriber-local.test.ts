// The subscriber against the local member-account adapter (JSON state on disk), the one the demo runs.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyImageReady } from '#core/members/subscriber.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';
import { FakeClock, FakePublisher, imageReadyDetail, RecordingLogger } from '#test/support/core-fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';

const imageReady = (sequence: number) => imageReadyDetail(sequence, 'web-base', REGION);

describe('Function: applyImageReady() with LocalMemberAccounts', () => {
  it('moves forward, ignores repeats and late older events, refreshes once', async (t) => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-subscriber-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const clock = new FakeClock();
    const members = new LocalMemberAccounts(dir, { clock });
    const template = members.createLaunchTemplate(ACCOUNT, REGION, {
      name: 'web',
      imageId: 'ami-00000000000000000',
      tags: { 'stemcell:stream': 'web-base' },
    });
    members.createAutoScalingGroup(ACCOUNT, REGION, {
      name: 'web-asg',
      launchTemplateId: template.launchTemplateId,
      tags: { 'stemcell:stream': 'web-base', 'stemcell:refresh': 'true' },
    });
    const deps = {
      accountId: ACCOUNT,
      members,
      centralBus: 'stemcell',
      events: new FakePublisher(),
      settings: () => ({ instanceRefresh: true, ssmParameter: '/stemcell/{stream}/{region}' }),
      clock,
      logger: new RecordingLogger(),
    };
    const account = members.forAccount(ACCOUNT, REGION);
    const defaultImage = async () => {
      const [lt] = await account.listLaunchTemplates('stemcell:stream', 'web-base');
      assert.ok(lt);
      return {
        version: lt.defaultVersionNumber,
        latest: lt.latestVersionNumber,
        image: (await account.getLaunchTemplateVersion(lt.launchTemplateId, lt.defaultVersionNumber)).imageId,
      };
    };
    // act
    const first = await applyImageReady(deps, imageReady(2));
    const repeat = await applyImageReady(deps, imageReady(2));
    const older = await applyImageReady(deps, imageReady(1));
    // assess
    assert.equal(first.templates[0]?.outcome, 'updated');
    // The local refresh ends at once (instanceRefreshSeconds 0): the describe at report time says so.
    assert.equal(first.templates[0]?.instanceRefresh, 'succeeded');
    assert.equal(repeat.templates[0]?.outcome, 'already-current');
    assert.equal(older.templates[0]?.outcome, 'skipped-older');
    assert.deepEqual(await defaultImage(), { version: 2, latest: 2, image: imageReady(2).imageId });
  });
});
