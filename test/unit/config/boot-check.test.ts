import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '#config/load.ts';

const base = (stream: Record<string, unknown>) => ({
  homeRegion: 'eu-west-1',
  streams: { web: { regions: ['eu-west-1'], ...stream } },
});

describe('Function: parseConfig() — bootCheck and architecture', () => {
  it('defaults to the world default mode, marker login: and 180 s', () => {
    // act
    const config = parseConfig(base({}), 'test');
    // assess
    assert.deepEqual(config.streams.web?.bootCheck, {
      marker: 'login:',
      timeoutSeconds: 180,
      allowUnverified: false,
    });
  });

  it('refuses legacy-bios for arm64, naming the field', () => {
    assert.throws(
      () => parseConfig(base({ architecture: 'arm64', bootMode: 'legacy-bios' }), 'test'),
      /streams\.web\.bootMode: arm64 images boot with UEFI only/,
    );
    assert.equal(
      parseConfig(base({ architecture: 'arm64', bootMode: 'uefi' }), 'test').streams.web?.architecture,
      'arm64',
    );
  });

  it('refuses bootCheck none on a stream with instance refresh unless allowUnverified', () => {
    assert.throws(
      () => parseConfig(base({ bootCheck: { mode: 'none' } }), 'test'),
      /streams\.web\.bootCheck\.mode: .*allowUnverified/,
    );
    const unverified = parseConfig(base({ bootCheck: { mode: 'none', allowUnverified: true } }), 'test');
    assert.equal(unverified.streams.web?.bootCheck.mode, 'none');
    const noRefresh = parseConfig(
      base({ bootCheck: { mode: 'none' }, subscribers: { instanceRefresh: false } }),
      'test',
    );
    assert.equal(noRefresh.streams.web?.bootCheck.mode, 'none');
  });
});
