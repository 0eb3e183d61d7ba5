import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { agentConfigFromEnv, buildMessageHandler } from '#builder/agent.ts';
import { fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

/** Every variable the agent needs. */
const baseEnv = {
  STEMCELL_HOME_REGION: 'eu-west-1',
  STEMCELL_BUILD_QUEUE_URL: 'https://sqs/q.fifo',
  STEMCELL_TABLE: 't',
  STEMCELL_BUCKET: 'b',
  STEMCELL_BUS_NAME: 'stemcell',
  STEMCELL_KMS_KEY_ID: 'k',
};

describe('Function: agentConfigFromEnv()', () => {
  it('names the missing variable', () => {
    // act + assess
    assert.throws(
      () => agentConfigFromEnv({ STEMCELL_HOME_REGION: 'eu-west-1' }),
      /STEMCELL_BUILD_QUEUE_URL is not set/,
    );
  });

  it('refuses a nonsensical receive count', () => {
    const env = { ...baseEnv, STEMCELL_MAX_RECEIVE_COUNT: '0' };
    assert.throws(() => agentConfigFromEnv(env), /STEMCELL_MAX_RECEIVE_COUNT/);
    assert.equal(agentConfigFromEnv({ ...env, STEMCELL_MAX_RECEIVE_COUNT: '4' }).maxReceiveCount, 4);
  });

  it('needs no Availability Zone: builders may run in any AZ of the region', () => {
    // act + assess
    assert.equal(agentConfigFromEnv(baseEnv).stateDir, '/var/lib/stemcell');
  });
});

describe('Function: buildMessageHandler()', () => {
  const prepare = (tarball: Buffer, failVolumes: boolean) =>
    fakeBuilder({
      tarball,
      ...(failVolumes
        ? {
            findVolume: async () => {
              throw new Error('RequestLimitExceeded');
            },
          }
        : {}),
    });

  it('returns a failed job to the queue, and reports "Build Failed" on the last attempt only', async () => {
    // prepare
    const t = await prepare(new TarBuilder().file('etc/x', 'x').build(), true);
    try {
      const handle = buildMessageHandler(t.deps, 3, () => {});
      // act + assess: attempt 1 throws (message returns), nothing published
      await assert.rejects(handle(t.message(1)), /RequestLimitExceeded/);
      assert.equal(t.published.length, 0);
      // the last attempt still throws (the redrive policy moves it to the DLQ) and reports it
      await assert.rejects(handle(t.message(3)), /RequestLimitExceeded/);
      assert.equal(t.published.length, 1);
      assert.equal(t.published[0]?.detailType, 'Build Failed');
      assert.equal((await t.releases.get(t.releaseId))?.regions['eu-west-1']?.state, 'failed');
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });

  it('acknowledges a rejected archive at once: retrying cannot help', async () => {
    // prepare
    const t = await prepare(new TarBuilder().file('../../etc/passwd', 'x').build(), false);
    try {
      // act
      await buildMessageHandler(t.deps, 3, () => {})(t.message(1));
      // assess
      assert.equal(t.published.length, 1);
      assert.match(
        String((t.published[0]?.detail as { reason?: string } | undefined)?.reason),
        /^rejected: /,
      );
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});
