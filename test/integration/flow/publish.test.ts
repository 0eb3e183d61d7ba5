// Fault 5 of issue 9: publishing a revision again with other content must never destroy the original tarball.
// `stemcell publish` refuses (exit 2, both sha256s named); an upload that reaches the bucket anyway (another
// client, AWS) is kept as a new object version, refused by ingest, recorded on the release and told as
// "Release Rejected", and the release still builds from the original version.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { objectKey } from '#core/model/naming.ts';
import { LocalObjectStore } from '#local/object-store.ts';
import { flowConfig, HOME, OTHER, sampleBody, stackOver } from './support.ts';

const config = flowConfig({ streams: ['web'], accounts: 2 });

function stemcell(args: string[]) {
  return spawnSync(process.execPath, ['src/cli/main.ts', ...args], { encoding: 'utf8' });
}

describe('Flow: publishing a revision twice', () => {
  it('stemcell publish refuses other content for a published revision, exit 2 naming both sha256s', {
    timeout: 120_000,
  }, async () => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-publish-'));
    const configFile = join(dir, 'stemcell.config.yml');
    writeFileSync(configFile, JSON.stringify(config));
    const data = join(dir, 'data');
    const first = await sampleBody(dir, 'web', 1);
    const other = await sampleBody(dir, 'web', 2);
    const publish = (tarball: string) =>
      stemcell([
        'publish',
        tarball,
        '--stream',
        'web',
        '--revision',
        'r1',
        '--data',
        data,
        '--config',
        configFile,
      ]);
    try {
      // act
      const published = publish(first.tarball);
      const refused = publish(other.tarball);
      const again = publish(first.tarball);
      // assess
      assert.equal(published.status, 0, published.stderr);
      assert.equal(refused.status, 2, refused.stdout + refused.stderr);
      assert.match(refused.stderr, new RegExp(`sha256 ${first.sha256}.*sha256 ${other.sha256}`));
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /already published/);
      const store = new LocalObjectStore(join(data, 'objects'), {
        bucket: config.bucket,
        accountId: '200000000000',
        region: HOME,
      });
      const { body } = await store.get(objectKey('web', 'r1'));
      assert.ok(Buffer.from(await text(body), 'latin1').length > 0);
      assert.equal(store.versions(objectKey('web', 'r1')).length, 1, 'nothing was overwritten');
      const held = await readFile(join(data, 'objects', 'objects', config.bucket, objectKey('web', 'r1')));
      assert.ok(held.equals(first.body), 'the original tarball is intact');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the original as an object version when other content arrives anyway, and rejects the upload', {
    timeout: 120_000,
  }, async () => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-publish-'));
    const stack = stackOver(join(dir, 'data'), config);
    const rejected: Array<Record<string, unknown>> = [];
    stack.centralBus.addRule(
      'test-rejected',
      { source: ['stemcell'], 'detail-type': ['Release Rejected'] },
      (e) => {
        rejected.push(e.detail as Record<string, unknown>);
      },
    );
    try {
      await stack.start();
      const first = await sampleBody(dir, 'web', 1);
      const other = await sampleBody(dir, 'web', 2);
      const key = objectKey('web', 'r1');
      await stack.publish(key, first.body, { sha256: first.sha256 });
      // act: the second upload lands before the first release built (its jobs read the original by version)
      await stack.publish(key, other.body, { sha256: other.sha256 });
      await stack.settle();
      await stack.publish(key, other.body, { sha256: other.sha256 }); // the same refused content again
      await stack.settle();
      // assess
      const versions = stack.objects.versions(key);
      assert.equal(versions.length, 3);
      const [release, ...more] = await stack.releases.list('web');
      assert.equal(more.length, 0);
      assert.equal(release?.source.sha256, first.sha256);
      for (const region of [HOME, OTHER])
        assert.equal(release?.regions[region]?.state, 'announced', JSON.stringify(release?.regions));
      assert.equal(release?.rejections?.length, 1, 'one per refused content, however often it arrives');
      assert.match(
        release?.rejections?.[0]?.reason ?? '',
        /already published .* differs: publish it as a new revision/,
      );
      assert.equal(rejected.length, 1);
      assert.equal((rejected[0]?.existing as { sha256?: string } | undefined)?.sha256, first.sha256);
      assert.equal((rejected[0]?.rejected as { sha256?: string } | undefined)?.sha256, other.sha256);
      const status = stemcell(['status', 'web', '--data', join(dir, 'data')]);
      assert.match(status.stdout, /rejected upload streams\/web\/r1\.tar\.zst/);
    } finally {
      await stack.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
