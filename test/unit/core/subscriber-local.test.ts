// The subscriber against the local member-account adapter (JSON state on disk), the one the demo runs.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyImageReady } from '#core/subscriber.ts';
import type { ImageReady } from '#events/stemcell.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';
import { FakeClock, FakePublisher, RecordingLogger, SHA } from './fakes.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';

function imageReady(sequence: number): ImageReady {
  return {
    version: 1,
    stream: 'web-base',
    revision: `r${sequence}`,
    sequence,
    releaseId: `web-base#${String(sequence).padStart(8, '0')}`,
    region: REGION,
    imageId: `ami-${String(sequence).padStart(17, '0')}`,
    imageName: `stemcell/web-base/r${sequence}`,
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    encrypted: true,
    kmsKeyId: 'k',
    snapshotId: 'snap-1',
    source: { bucket: 'b', key: 'k', etag: 'e', sha256: SHA },
    createdAt: '2026-11-20T10:00:00.000Z',
  };
}

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
