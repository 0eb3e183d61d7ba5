// A stream's provenance configuration: `stemcell config check` (loadConfig) refuses a trusted key it cannot read,
// a key that is not P-256, an alias where a key ARN is needed, and `required` with no key — all in one report.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '#config/load.ts';
import { trustedKeyId } from '#core/provenance/verify.ts';
import { KMS_KEY_ARN, pemKeyPair } from '#test/support/provenance-fakes.ts';

function withConfig(
  streams: Record<string, unknown>,
  files: Record<string, string>,
  body: (file: string) => Promise<void>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'stemcell-config-'));
  return (async () => {
    try {
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
      const file = join(dir, 'stemcell.config.yml');
      writeFileSync(file, JSON.stringify({ homeRegion: 'eu-west-1', streams }));
      await body(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
}

const stream = (provenance: unknown) => ({ regions: ['eu-west-1'], provenance });

describe('Configuration: provenance', () => {
  it('reads a PEM file next to the configuration, keeps inline PEMs and KMS key ARNs', async () => {
    const file = pemKeyPair();
    const inline = pemKeyPair();
    await withConfig(
      { web: stream({ trustedKeys: ['release.pub', inline.publicKeyPem, KMS_KEY_ARN] }) },
      { 'release.pub': file.publicKeyPem },
      async (path) => {
        const config = await loadConfig(path);
        const provenance = config.streams.web?.provenance;
        assert.equal(provenance?.required, true, 'required unless said otherwise');
        assert.deepEqual(provenance?.trustedKeys.map(trustedKeyId), [file.keyId, inline.keyId, KMS_KEY_ARN]);
      },
    );
  });

  it('refuses unreadable, non-P-256 and alias keys, and required with no key, naming each field', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({
      type: 'spki',
      format: 'pem',
    });
    await withConfig(
      {
        web: stream({
          trustedKeys: [
            'missing.pub',
            'rsa.pub',
            'notakey.pub',
            'arn:aws:kms:eu-west-1:111111111111:alias/release',
          ],
        }),
        api: stream({ required: true, trustedKeys: [] }),
      },
      { 'rsa.pub': rsa.toString(), 'notakey.pub': 'hello' },
      async (path) => {
        const error = await loadConfig(path).then(
          () => assert.fail('accepted'),
          (err: unknown) => err,
        );
        assert.ok(error instanceof ConfigError);
        const problems = error.problems.join('\n');
        assert.match(
          problems,
          /streams\.web\.provenance\.trustedKeys\[0\]: cannot read missing\.pub: ENOENT/,
        );
        assert.match(
          problems,
          /streams\.web\.provenance\.trustedKeys\[1\]: a rsa public key; signatures are ECDSA P-256/,
        );
        assert.match(
          problems,
          /streams\.web\.provenance\.trustedKeys\[2\]: notakey\.pub holds no PEM public key/,
        );
        assert.match(problems, /streams\.web\.provenance\.trustedKeys\[3\]: .*aliases are not trusted/);
        assert.match(
          problems,
          /streams\.api\.provenance\.trustedKeys: provenance\.required with no trustedKeys/,
        );
        assert.equal(error.problems.length, 5, problems);
      },
    );
  });
});
