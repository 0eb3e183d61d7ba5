// Failure 4 of issue 21: `stemcell dev` killed with SIGKILL in the middle of a release (right after the first
// member account applied its "Image Ready": STEMCELL_KILL_AT, src/local/kill-points.ts), then started again.
// The restarted `dev` must report the end of that release, which was in flight when it started — before the
// fix it marked every release present at start as already seen, and never said a word about it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { realSleep } from '#local/clock.ts';
import { flowConfig, sampleBody } from '../flow/support.ts';

const STEMCELL = join(import.meta.dirname, '../../../bin/stemcell');

function dev(data: string, configFile: string, env: Record<string, string> = {}) {
  const child = spawn(STEMCELL, ['dev', '--data', data, '--config', configFile, '--volumes', 'directory'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  return { child, exited, output: () => output };
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await realSleep(100);
  }
  return check();
}

describe('Command: stemcell dev restarted in the middle of a release', () => {
  it('reports the end of the release that was in flight when it started', { timeout: 300_000 }, async () => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-dev-restart-'));
    const data = join(dir, 'data');
    const configFile = join(dir, 'stemcell.config.yml');
    await writeFile(configFile, stringify(flowConfig({ accounts: 2, streams: ['web'] })));
    const { tarball } = await sampleBody(dir, 'web', 1);
    let running: ChildProcess | undefined;
    try {
      const first = dev(data, configFile, { STEMCELL_KILL_AT: 'subscriber:applied' });
      running = first.child;
      assert.ok(await until(() => /stemcell dev: watching/.test(first.output()), 60_000), first.output());
      const published = spawnSync(
        STEMCELL,
        ['publish', tarball, '--stream', 'web', '--revision', 'r1', '--data', data, '--config', configFile],
        { encoding: 'utf8' },
      );
      assert.equal(published.status, 0, published.stderr);
      // act: killed mid-release, then started again
      const killed = await first.exited;
      assert.equal(killed.signal, 'SIGKILL', first.output());
      assert.match(first.output(), /kill point subscriber:applied: SIGKILL/);
      assert.doesNotMatch(first.output(), /release web#00000001 (complete|failed)/);
      const second = dev(data, configFile);
      running = second.child;
      const reported = await until(() => /release web#00000001 complete/.test(second.output()), 120_000);
      second.child.kill('SIGINT');
      await second.exited;
      running = undefined;
      // assess
      assert.ok(reported, second.output());
      assert.match(
        second.output(),
        /release web#00000001 complete:\n[^[]*eu-west-1 +announced[^[]*us-east-1 +announced/,
      );
    } finally {
      running?.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });
});
