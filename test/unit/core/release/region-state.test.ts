// The release's per-region state machine: one table, and every write through it. Each pair of states is tried
// against a real conditional write, so a table entry that is dropped or added shows here, and the diagram in
// docs/architecture.md is the table's own rendering.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  mayMove,
  moveRegion,
  NOT_FINAL,
  REGION_STATES,
  TRANSITIONS,
  transitionTable,
} from '#core/release/region-state.ts';
import type { RegionState } from '#ports';
import { FakeReleaseStore } from '#test/support/core-fakes.ts';

const AT = '2026-11-20T10:00:00.000Z';

async function regionIn(state: RegionState) {
  const releases = new FakeReleaseStore();
  const { release } = await releases.create({
    stream: 'web',
    revision: 'r1',
    source: { bucket: 'b', key: 'streams/web/r1.tar', etag: 'e' },
    regions: ['eu-west-1'],
    uploadedAt: AT,
  });
  await releases.updateRegion(release.releaseId, 'eu-west-1', { state });
  return { releases, releaseId: release.releaseId };
}

describe('the region state machine', () => {
  it('never leaves a final state, except a failed region rebuilt by `release resume`', () => {
    assert.deepEqual(
      REGION_STATES.filter((to) => mayMove('announced', to)),
      [],
    );
    assert.deepEqual(
      REGION_STATES.filter((to) => mayMove('failed', to)),
      ['building'],
    );
    assert.deepEqual(NOT_FINAL, [
      'queued',
      'building',
      'snapshotting',
      'registering',
      'available',
      'booting',
    ]);
  });

  it('never goes back to an earlier build step once the image exists', () => {
    for (const from of ['registering', 'available', 'booting'] as const)
      for (const to of ['queued', 'building', 'snapshotting'] as const)
        assert.equal(mayMove(from, to), false, `${from} → ${to}`);
  });

  for (const from of REGION_STATES)
    for (const to of REGION_STATES)
      it(`moveRegion ${from} → ${to}: ${TRANSITIONS[to].includes(from) ? 'moves' : 'refused, nothing written'}`, async () => {
        const { releases, releaseId } = await regionIn(from);
        const moved = await moveRegion(releases, releaseId, 'eu-west-1', { state: to, updatedAt: AT });
        assert.equal(moved, TRANSITIONS[to].includes(from));
        const record = (await releases.get(releaseId))?.regions['eu-west-1'];
        assert.equal(record?.state, moved ? to : from);
      });

  it('updates a region in place only in the state the caller names', async () => {
    const { releases, releaseId } = await regionIn('booting');
    assert.equal(await moveRegion(releases, releaseId, 'eu-west-1', { reason: 'x' }, 'available'), false);
    assert.equal(await moveRegion(releases, releaseId, 'eu-west-1', { reason: 'y' }, 'booting'), true);
    assert.equal((await releases.get(releaseId))?.regions['eu-west-1']?.reason, 'y');
  });

  it('docs/architecture.md shows the table as it is', () => {
    const doc = readFileSync(new URL('../../../../docs/architecture.md', import.meta.url), 'utf8');
    const shown = doc.match(
      /<!-- region-states:begin -->\n```\n([\s\S]*?)\n```\n<!-- region-states:end -->/,
    )?.[1];
    assert.equal(shown, transitionTable(), 'regenerate the block from transitionTable()');
  });
});
