// The README's first command: `stemcell demo` runs the whole local flow and exits 0 only when every member
// account can launch from each of its tagged launch templates (through the launch model), and they default to
// the newest images.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = process.getuid?.() === 0;

describe('Command: stemcell demo', () => {
  it('publishes 2 streams × 2 revisions to 2 regions and moves every launch template', {
    timeout: 600_000,
  }, async () => {
    // prepare
    const data = await mkdtemp(join(tmpdir(), 'stemcell-demo-e2e-'));
    try {
      // act
      const { stdout, stderr } = await run('bin/stemcell', ['demo', '--json', '--data', join(data, 'd')], {
        maxBuffer: 16 * 1024 * 1024,
      });
      const result = JSON.parse(stdout);

      // assess
      assert.equal(result.ok, true);
      assert.equal(result.volumeBackend, root ? 'block' : 'directory');
      assert.equal(result.releases.length, 8, '2 streams × 2 revisions × 2 regions');
      for (const row of result.releases) {
        assert.equal(row.state, 'announced');
        assert.match(row.imageId, /^ami-[0-9a-f]{17}$/);
        assert.equal(row.accountsUpdated, row.accountsInScope);
        assert.ok(row.snapshotDeltaBytes > 0);
      }
      const web = result.releases.filter((r: { stream: string }) => r.stream === 'web-base');
      assert.deepEqual(
        web.map((r: { accountsInScope: number }) => r.accountsInScope),
        [6, 6, 6, 6],
        'web-base goes to all 6 accounts',
      );
      // The incremental promise: revision 2's snapshot carries far less than revision 1's.
      for (const region of ['eu-west-1', 'us-east-1']) {
        const [r1, r2] = ['2026.11.21', '2026.11.22'].map(
          (rev) =>
            web.find((r: { revision: string; region: string }) => r.revision === rev && r.region === region)
              .snapshotDeltaBytes,
        );
        assert.ok(r2 < r1, `${region}: revision 2 delta ${r2} < revision 1 delta ${r1}`);
      }
      assert.equal(result.launchTemplates.checked, 18);
      assert.deepEqual(result.launchTemplates.failed, []);
      assert.ok(result.launch.checked > 0);
      assert.equal(result.launch.checked, result.launchTemplates.checked, 'every tagged launch template');
      assert.equal(result.launch.launchable, result.launch.checked, JSON.stringify(result.launch.failures));
      assert.deepEqual(result.launch.failures, []);
      assert.equal(result.accountsUpdated, result.accountsInScope);
      assert.equal(result.accountsInScope, 6);
      assert.match(stderr, /launchable \(6\/6 accounts updated\)/);
      assert.deepEqual(result.deadLetters, []);
      const { stdout: loops } = await run('losetup', ['-a']).catch(() => ({ stdout: '' }));
      assert.ok(!loops.includes(data), `no loop device left on the demo's volumes:\n${loops}`);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
});
