import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { agentConfigFromEnv, buildMessageHandler } from '#builder/agent.ts';
import type { BuilderDeps } from '#builder/worker.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import type { BusEvent, QueueMessage } from '#ports';
import { TarBuilder } from '#test/support/tar-builder.ts';

describe('Function: agentConfigFromEnv()', () => {
  it('names the missing variable', () => {
    // act + assess
    assert.throws(
      () => agentConfigFromEnv({ STEMCELL_HOME_REGION: 'eu-west-1' }),
      /STEMCELL_BUILD_QUEUE_URL is not set/,
    );
  });

  it('refuses a nonsensical receive count', () => {
    const env = {
      STEMCELL_HOME_REGION: 'eu-west-1',
      STEMCELL_BUILD_QUEUE_URL: 'https://sqs/q.fifo',
      STEMCELL_TABLE: 't',
      STEMCELL_BUCKET: 'b',
      STEMCELL_BUS_NAME: 'stemcell',
      STEMCELL_KMS_KEY_ID: 'k',
      STEMCELL_MAX_RECEIVE_COUNT: '0',
    };
    assert.throws(() => agentConfigFromEnv(env), /STEMCELL_MAX_RECEIVE_COUNT/);
    assert.equal(agentConfigFromEnv({ ...env, STEMCELL_MAX_RECEIVE_COUNT: '4' }).maxReceiveCount, 4);
  });
});

describe('Function: buildMessageHandler()', () => {
  async function prepare(tarball: Buffer, failVolumes: boolean) {
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-agent-'));
    const releases = new LocalReleaseStore(join(dir, 'releases'));
    const source = { bucket: 'b', key: 'streams/web/r1.tar', etag: 'e1' };
    const { release } = await releases.create({
      stream: 'web',
      revision: 'r1',
      source,
      regions: ['eu-west-1'],
      uploadedAt: new Date().toISOString(),
    });
    const published: BusEvent[] = [];
    const root = join(dir, 'root');
    await mkdir(root);
    const deps = {
      region: 'eu-west-1',
      availabilityZone: 'eu-west-1a',
      instanceId: 'i-1',
      kmsKeyId: 'k',
      releases,
      publisher: { publish: async (events: BusEvent[]) => void published.push(...events) },
      objects: { bucket: 'b', get: async () => ({ object: {}, body: Readable.from([tarball]) }) },
      volumes: {
        findForStream: async () => {
          if (failVolumes) throw new Error('RequestLimitExceeded');
          return { volumeId: 'vol-1', sizeGiB: 1 };
        },
        attach: async () => ({ kind: 'directory', path: root }),
        detach: async () => {},
      },
      workspace: {
        open: async () => ({
          root,
          fresh: true,
          makeBootable: async () => {},
          quiesce: async () => {},
          close: async () => {},
        }),
      },
      snapshots: { create: async () => ({ snapshotId: 'snap-1' }) },
      manifestPath: () => join(dir, 'manifest.json'),
      clock: { now: () => new Date() },
    } as unknown as BuilderDeps;
    const message = (receiveCount: number): QueueMessage => ({
      messageId: 'm',
      receiptHandle: 'r',
      groupId: 'web',
      receiveCount,
      body: JSON.stringify({
        version: 1,
        releaseId: release.releaseId,
        stream: 'web',
        revision: 'r1',
        sequence: release.sequence,
        region: 'eu-west-1',
        architecture: 'x86_64',
        bootMode: 'none',
        volumeSizeGiB: 1,
        source,
      }),
    });
    return { dir, deps, published, message, releases, releaseId: release.releaseId };
  }

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
