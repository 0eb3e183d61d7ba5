// The short gauntlet (issue 9): 10 SIGKILLs of the local stack at random moments over every step, with
// restarts, a full data folder, a republished revision and rollbacks killed inside `stemcell rollback`; the
// invariants must hold, no split fleet and no sequence given twice among them. `npm run gauntlet --
// --kills 50` is the long run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runGauntlet } from '../../../bench/gauntlet.ts';

describe('Gauntlet: kill -9 anywhere, fill the disk, publish twice', () => {
  it('ends every release, once, with no duplicate, backwards, corrupt or leaked state after 10 kills', {
    timeout: 900_000,
  }, async () => {
    // act
    const lines: string[] = [];
    const result = await runGauntlet({ kills: 10, seed: 20261201, log: (line) => lines.push(line) });
    // assess
    const context = `${result.line}\n${result.leakDetails.join('\n')}\n${lines.slice(-20).join('\n')}`;
    assert.match(
      result.line,
      /^kills 10: complete \d+, failed-with-reason \d+, stuck 0, duplicate images 0, backwards 0, corrupt 0, leaks 0, split 0, sequence reuse 0, unreported 0$/,
      context,
    );
    assert.ok(result.complete >= 1, context);
    assert.equal(result.duplicateVersions, 0, context);
  });
});
