// The status page's cell of an account that refused the image: `refused`, with each template's check and reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Release } from '#ports';
import { cellFor } from '#ui/state.ts';

const release = (accounts: Release['accounts']): Release => ({
  releaseId: 'web#00000001',
  stream: 'web',
  revision: 'r1',
  sequence: 1,
  source: { bucket: 'b', key: 'k', etag: 'e' },
  createdAt: '2026-11-20T10:00:00.000Z',
  uploadedAt: '2026-11-20T10:00:00.000Z',
  regions: { 'eu-west-1': { state: 'announced', updatedAt: '2026-11-20T10:01:00.000Z' } },
  accounts,
});

describe('Function: cellFor()', () => {
  it('shows a refusal over a failed refresh, with its reasons; a move that cleared it shows the outcome', () => {
    // prepare
    const base = { accountId: '200000000001', region: 'eu-west-1', launchTemplates: 2, updatedAt: 'x' };
    const refused = release({
      '200000000001/eu-west-1': {
        ...base,
        outcome: 'updated',
        instanceRefresh: 'failed',
        refused: [
          { launchTemplateId: 'lt-1', launchTemplateName: 'web', check: 'key', reason: 'no grant', at: 'x' },
          { launchTemplateId: 'lt-2', launchTemplateName: 'db', check: 'dry-run', reason: 'SCP', at: 'x' },
        ],
      },
    });
    const cleared = release({ '200000000001/eu-west-1': { ...base, outcome: 'updated', refused: [] } });
    // act
    const a = cellFor(refused, undefined, 0, 'eu-west-1', '200000000001');
    const b = cellFor(cleared, undefined, 0, 'eu-west-1', '200000000001');
    // assess
    assert.equal(a.state, 'refused');
    assert.equal(a.reason, 'web: key: no grant; db: dry-run: SCP');
    assert.equal(b.state, 'updated');
    assert.equal(b.reason, undefined);
  });
});
