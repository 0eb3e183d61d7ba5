// An account's launch settings, locally: Allowed AMIs per region, an SCP denying launches account-wide; kept on
// disk across instances, each account's its own.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LocalAccountSettings } from '#local/account-settings.ts';

describe('Class: LocalAccountSettings', () => {
  it('keeps Allowed AMIs per account and region, and a launch denial per account, across instances', (t) => {
    // prepare
    const root = mkdtempSync(join(tmpdir(), 'stemcell-account-settings-'));
    t.after(() => rmSync(root, { recursive: true, force: true }));
    const settings = new LocalAccountSettings(root);
    const enabled = { state: 'enabled' as const, criteria: [{ imageProviders: ['111111111111'] }] };
    // act
    settings.setAllowedImages('222222222222', 'eu-west-1', enabled);
    settings.denyLaunches('222222222222', 'p-deny');
    const again = new LocalAccountSettings(root);
    // assess
    assert.deepEqual(again.allowedImages('222222222222', 'eu-west-1'), enabled);
    assert.deepEqual(again.allowedImages('222222222222', 'us-east-1'), { state: 'disabled', criteria: [] });
    assert.deepEqual(again.allowedImages('333333333333', 'eu-west-1'), { state: 'disabled', criteria: [] });
    assert.equal(again.launchDenial('222222222222'), 'p-deny');
    assert.equal(again.launchDenial('333333333333'), undefined);
    again.denyLaunches('222222222222', undefined);
    assert.equal(settings.launchDenial('222222222222'), undefined);
    assert.throws(() => settings.launchDenial('../etc'), /not 12 digits/);
  });
});
