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
  it('publishes 4 streams × 2 revisions, boots every bootable image, rolls out in waves, halts a failing revision, rolls back, and moves every launch template', {
    // Ten qemu boots under TCG on a shared machine: minutes, not seconds.
    timeout: 25 * 60_000,
  }, async () => {
    // prepare
    const data = await mkdtemp(join(tmpdir(), 'stemcell-demo-e2e-'));
    try {
      // act
      // A failing demo exits 3 but still prints its JSON: keep it, so the assertions below say what went wrong.
      const { stdout, stderr, code } = await run(
        'bin/stemcell',
        ['demo', '--json', '--data', join(data, 'd')],
        {
          maxBuffer: 16 * 1024 * 1024,
        },
      ).then(
        (out) => ({ ...out, code: 0 }),
        (error: { stdout?: string; stderr?: string; code?: number }) => ({
          stdout: error.stdout ?? '',
          stderr: error.stderr ?? '',
          code: error.code ?? -1,
        }),
      );
      assert.ok(
        stdout.trim().startsWith('{'),
        `demo printed no JSON (exit ${code}):\n${stderr.slice(-4000)}`,
      );
      const result = JSON.parse(stdout);

      // assess
      assert.equal(result.volumeBackend, root ? 'block' : 'directory');
      // 4 streams × 2 revisions, then web-base's revision 3 (halted) and its rollback; web-base and batch-base
      // in 2 regions, web-uefi and arm-base in one.
      assert.equal(
        result.releases.length,
        16,
        'web-base r1 r2 r3 and the rollback, batch-base r1 r2 (2 regions); web-uefi, arm-base r1 r2 (1 region)',
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
        bootCheck?: { mode: string; passed: boolean; marker: string; seconds?: number };
        halted: { wave: string; reason: string; accounts: { accountId: string; region: string }[] } | null;
        rollbackOf?: string;
      };
      const rows = result.releases as Row[];
      const r3 = rows.filter((r) => r.revision === '2026.11.23');
      const rolledBack = rows.filter((r) => r.rollbackOf === '2026.11.22');
      // A halted release announces nowhere else: a region of revision 3 whose boot check finished after the halt
      // is held at `available`, booted but never announced. Which region that is depends on the boot race.
      const held = new Set<string>(result.heldByHalt);
      for (const row of rows) {
        if (r3.includes(row) && held.has(row.region)) {
          assert.equal(row.state, 'available', JSON.stringify(row));
          assert.equal(
            row.accountsUpdated,
            0,
            `${row.region}: held back, so no account got revision 3 there`,
          );
          continue;
        }
        assert.equal(row.state, 'announced', JSON.stringify(row));
        assert.match(row.imageId, /^ami-[0-9a-f]{17}$/);
        if (!r3.includes(row)) assert.equal(row.accountsUpdated, row.accountsInScope, JSON.stringify(row));
        if (!rolledBack.includes(row)) assert.ok((row.snapshotDeltaBytes ?? 0) > 0);
      }
      // Every bootable image was announced after its boot under qemu: BIOS, UEFI and arm64 UEFI.
      const booted = rows.filter((r) => r.stream !== 'batch-base');
      for (const row of booted) {
        assert.equal(row.bootCheck?.mode, 'qemu', `${row.stream} ${row.region}`);
        assert.equal(row.bootCheck?.passed, true, `${row.stream} ${row.region}`);
        assert.equal(row.bootCheck?.marker, 'login:');
        assert.ok((row.bootCheck?.seconds ?? 0) > 0);
      }
      assert.deepEqual([...new Set(booted.map((r) => r.stream))].sort(), [
        'arm-base',
        'web-base',
        'web-uefi',
      ]);
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
        if (!held.has(row.region))
          assert.equal(row.accountsUpdated, canary.length, 'only the canary got revision 3');
      }
      // The failing account's region was announced (that is where the refresh failed), so it is never held.
      assert.ok(!held.has('us-east-1'), `held: ${[...held]}`);
      assert.ok(
        [...held].every((region) => r3.some((r) => r.region === region)),
        `held regions are revision 3's: ${[...held]}`,
      );
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
      assert.equal(result.launchTemplates.checked, 30);
      assert.deepEqual(result.launchTemplates.failed, []);
      assert.ok(result.launch.checked > 0);
      assert.equal(result.launch.checked, result.launchTemplates.checked, 'every tagged launch template');
      assert.equal(result.launch.launchable, result.launch.checked, JSON.stringify(result.launch.failures));
      assert.deepEqual(result.launch.failures, []);
      assert.equal(result.accountsUpdated, result.accountsInScope);
      assert.equal(result.accountsInScope, 6);
      assert.match(stderr, /launchable \(6\/6 accounts updated\)/);
      assert.deepEqual(result.deadLetters, []);
      assert.equal(result.ok, true);
      assert.equal(code, 0, 'the demo exits 0 when every check holds');
      const { stdout: loops } = await run('losetup', ['-a']).catch(() => ({ stdout: '' }));
      assert.ok(!loops.includes(data), `no loop device left on the demo's volumes:\n${loops}`);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });
});
