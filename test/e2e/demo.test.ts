// The README's first command: `stemcell demo` runs the whole local flow and exits 0 only when every member
// account can launch from each of its tagged launch templates (through the launch model), and they default to
// the newest images; and when revision 3 of web-base halted in its canary wave and the rollback took every
// account back to revision 2's images.
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
  it('publishes 2 streams × 2 revisions to 2 regions in waves, halts a failing revision, rolls back, and moves every launch template', {
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
      // 2 streams × 2 revisions, then web-base's revision 3 (halted) and its rollback, each in 2 regions.
      assert.equal(
        result.releases.length,
        12,
        'web-base r1 r2 r3 and the rollback, batch-base r1 r2; 2 regions',
      );
      type Row = {
        stream: string;
        revision: string;
        sequence: number;
        region: string;
        state: string;
        imageId: string;
        accountsUpdated: number;
        accountsInScope: number;
        snapshotDeltaBytes?: number;
        waves: { name: string; state: string; accounts: string[] }[];
        halted: { wave: string; reason: string; accounts: { accountId: string; region: string }[] } | null;
        rollbackOf?: string;
      };
      const rows = result.releases as Row[];
      const r3 = rows.filter((r) => r.revision === '2026.11.23');
      const rolledBack = rows.filter((r) => r.rollbackOf === '2026.11.22');
      for (const row of rows) {
        assert.equal(row.state, 'announced');
        assert.match(row.imageId, /^ami-[0-9a-f]{17}$/);
        if (!r3.includes(row)) assert.equal(row.accountsUpdated, row.accountsInScope, JSON.stringify(row));
        if (!rolledBack.includes(row)) assert.ok((row.snapshotDeltaBytes ?? 0) > 0);
      }
      const web = rows.filter((r) => r.stream === 'web-base');
      assert.deepEqual(
        web.map((r) => r.accountsInScope),
        [6, 6, 6, 6, 6, 6, 6, 6],
        'web-base goes to all 6 accounts',
      );
      // The incremental promise: revision 2's snapshot carries far less than revision 1's.
      for (const region of ['eu-west-1', 'us-east-1']) {
        const delta = (rev: string) =>
          web.find((r) => r.revision === rev && r.region === region)?.snapshotDeltaBytes ?? 0;
        const [r1, r2] = [delta('2026.11.21'), delta('2026.11.22')];
        assert.ok(r2 < r1, `${region}: revision 2 delta ${r2} < revision 1 delta ${r1}`);
      }
      // Waves: web-base's ordinary revisions went canary (the development OU) first, then the rest.
      const canary = ['100000000004', '100000000005', '100000000006'];
      for (const row of web.filter((r) => r.revision === '2026.11.22')) {
        assert.deepEqual(
          row.waves.map((w) => [w.name, w.state]),
          [
            ['canary', 'healthy'],
            ['rest', 'healthy'],
          ],
        );
        assert.deepEqual(row.waves[0]?.accounts, canary);
      }
      // Revision 3 halted in the canary: one account's instance refresh failed; no account of the rest moved.
      assert.equal(r3.length, 2);
      for (const row of r3) {
        assert.deepEqual(
          row.waves.map((w) => [w.name, w.state]),
          [
            ['canary', 'halted'],
            ['rest', 'pending'],
          ],
        );
        assert.equal(row.halted?.wave, 'canary');
        assert.match(row.halted?.reason ?? '', /instance refresh failed/);
        assert.deepEqual(row.halted?.accounts, [{ accountId: '100000000005', region: 'us-east-1' }]);
        assert.equal(row.accountsUpdated, canary.length, 'only the canary got revision 3');
      }
      assert.equal(result.halted?.wave, 'canary');
      assert.deepEqual(result.movedPastHalt, []);
      // The rollback: a new release with a higher sequence, on revision 2's images, that every account follows.
      assert.equal(rolledBack.length, 2);
      for (const row of rolledBack) {
        const r2 = web.find((r) => r.revision === '2026.11.22' && r.region === row.region);
        const halted = r3.find((r) => r.region === row.region);
        assert.equal(row.imageId, r2?.imageId, `${row.region}: the rollback points at revision 2's image`);
        assert.ok(row.sequence > (halted?.sequence ?? Infinity), 'a higher sequence than revision 3');
        assert.equal(row.accountsUpdated, row.accountsInScope);
      }
      assert.equal(result.rollback?.to, '2026.11.22');
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
