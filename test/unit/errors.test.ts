// stemcell's errors say whose fault they are, so callers classify them without comparing names, and a wrap keeps
// what it wrapped.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CliError } from '#cli/errors.ts';
import { ConfigError } from '#config/load.ts';
import { ReleaseNotFoundError, UnknownStreamError } from '#core/model/errors.ts';
import { RolloutStateError } from '#core/rollout/rollout.ts';
import { DependencyError, InputError, isInputError, StemcellError } from '#errors';
import { LocalServiceError } from '#local/errors.ts';
import { RejectedArchiveError } from '#unpack/errors.ts';

describe('StemcellError', () => {
  it('input errors are the input’s fault, and named after their class', () => {
    for (const err of [
      new RejectedArchiveError('etc/../x', "path contains a '..' component"),
      new ReleaseNotFoundError('web#00000009', 'release abort'),
      new UnknownStreamError('nope', 'publish'),
      new RolloutStateError('web 1 is complete: nothing to abort'),
      new ConfigError('stemcell.config.yml', ['streams: required']),
    ]) {
      assert.ok(err instanceof InputError, err.name);
      assert.equal(err.fault, 'input');
      assert.equal(isInputError(err), true);
      assert.equal(err.name, err.constructor.name);
    }
  });

  it('a dependency’s failure is not the input’s, whatever its name says', () => {
    const err = new LocalServiceError('ResourceNotFoundException', 'no such bus');
    assert.ok(err instanceof DependencyError);
    assert.equal(isInputError(err), false);
    assert.equal(err.name, 'ResourceNotFoundException');
    const look_alike = Object.assign(new Error('x'), { name: 'ReleaseNotFoundError' });
    assert.equal(isInputError(look_alike), false);
  });

  it('keeps the cause through a wrap', () => {
    const cause = new SyntaxError('bad YAML');
    const config = new ConfigError('f.yml', ['not valid YAML'], { cause });
    const cli = new CliError(config.message, 2, { cause: config });
    assert.equal(cli.cause, config);
    assert.equal(config.cause, cause);
    assert.ok(cli instanceof StemcellError);
  });
});
