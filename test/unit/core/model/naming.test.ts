// How stemcell spells things on AWS is a contract with every member account and with the releases already
// out there: keys, names, tags, tokens and rule names are pinned here exactly, both ways where they are read
// back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  buildJobDeduplicationId,
  buildQueueName,
  clientToken,
  decodeEventKey,
  expandParameterName,
  InvalidObjectKeyError,
  imageName,
  instanceRefreshTag,
  launchTemplateVersionDescription,
  memberBusArn,
  objectKey,
  parseInstanceRefreshTag,
  parseObjectKey,
  releaseFromTags,
  releaseFromVersionDescription,
  releaseId,
  releaseTags,
  SHA256_METADATA_KEY,
  sequenceFromVersionDescription,
  subscriberRuleName,
  subscriberRuleNumber,
  TAG,
} from '#core/model/naming.ts';

describe('Function: parseObjectKey()', () => {
  it('reads stream and revision from every accepted extension', () => {
    for (const ext of ['.tar', '.tar.gz', '.tar.zst', '.tar.xz']) {
      assert.deepEqual(parseObjectKey(`streams/web-base/2026.11.20${ext}`), {
        stream: 'web-base',
        revision: '2026.11.20',
      });
    }
    assert.deepEqual(parseObjectKey('streams/web/1.2%2B3.tar'), { stream: 'web', revision: '1.2+3' });
  });

  it('refuses other keys, naming the key and what was expected', () => {
    for (const key of [
      'streams/web/r1.zip',
      'uploads/web/r1.tar',
      'streams/web/sub/r1.tar',
      'streams/web/r1.tar.bz2',
      'backup/streams/web/r1.tar',
    ]) {
      assert.throws(
        () => parseObjectKey(key),
        (err: unknown) =>
          err instanceof InvalidObjectKeyError &&
          err.key === key &&
          err.name === 'InvalidObjectKeyError' &&
          err.message ===
            `invalid object key ${JSON.stringify(key)}: expected streams/<stream>/<revision>.tar[.gz|.zst|.xz]`,
      );
    }
  });

  it('refuses a bad stream or revision, saying which', () => {
    assert.throws(
      () => parseObjectKey('streams/Web_Base/r1.tar'),
      /invalid object key "streams\/Web_Base\/r1.tar": stream: ./,
    );
    assert.throws(
      () => parseObjectKey('streams/web/r 1.tar'),
      /invalid object key "streams\/web\/r 1.tar": revision: ./,
    );
  });
});

describe('Function: decodeEventKey()', () => {
  it('decodes percent escapes, keeps plus signs, and leaves a malformed escape as it came', () => {
    assert.equal(decodeEventKey('streams/web/a%3Ab.tar'), 'streams/web/a:b.tar');
    assert.equal(decodeEventKey('streams/web/1+2.tar'), 'streams/web/1+2.tar');
    assert.equal(decodeEventKey('streams/web/100%.tar'), 'streams/web/100%.tar');
  });
});

describe('Function: names', () => {
  it('spells keys, image names, release ids, queues and deduplication ids', () => {
    assert.equal(objectKey('web', 'r1'), 'streams/web/r1.tar.zst');
    assert.equal(objectKey('web', 'r1', '.tar'), 'streams/web/r1.tar');
    assert.equal(imageName('web', 'r1'), 'stemcell/web/r1');
    assert.equal(releaseId('web', 7), 'web#00000007');
    assert.equal(releaseId('web', 123456789), 'web#123456789');
    assert.equal(buildQueueName('eu-west-1'), 'build-eu-west-1.fifo');
    assert.equal(buildJobDeduplicationId('web#00000007', 'eu-west-1'), 'web#00000007:eu-west-1');
    assert.equal(SHA256_METADATA_KEY, 'sha256');
    assert.equal(
      memberBusArn('eu-west-1', '200000000001'),
      'arn:aws:events:eu-west-1:200000000001:event-bus/default',
    );
    assert.equal(
      memberBusArn('eu-west-1', '200000000001', 'stemcell'),
      'arn:aws:events:eu-west-1:200000000001:event-bus/stemcell',
    );
  });

  it('expands every {stream} and {region} in a parameter name', () => {
    assert.equal(
      expandParameterName('/{stream}/{region}/image-id/{stream}/{region}', 'web', 'eu-west-1'),
      '/web/eu-west-1/image-id/web/eu-west-1',
    );
  });
});

describe('Function: releaseTags() / releaseFromTags()', () => {
  const release = { stream: 'web', revision: 'r1', sequence: 3, releaseId: 'web#00000003' };

  it('writes the four release tags and reads them back', () => {
    const tags = releaseTags(release);
    assert.deepEqual(tags, {
      'stemcell:stream': 'web',
      'stemcell:revision': 'r1',
      'stemcell:sequence': '3',
      'stemcell:release': 'web#00000003',
    });
    assert.deepEqual(releaseFromTags({ ...tags, Name: 'x' }), release);
    assert.equal(TAG.region, 'stemcell:region');
    assert.equal(TAG.refresh, 'stemcell:refresh');
    assert.equal(TAG.sha256, 'stemcell:sha256');
  });

  it('reads nothing when any tag is missing or the sequence is not a positive integer', () => {
    const tags = releaseTags(release);
    for (const key of Object.keys(tags)) {
      const { [key]: _dropped, ...rest } = tags;
      assert.equal(releaseFromTags(rest), undefined, `without ${key}`);
    }
    for (const sequence of ['0', '-1', '1.5', 'x', '']) {
      assert.equal(releaseFromTags({ ...tags, [TAG.sequence]: sequence }), undefined, `sequence ${sequence}`);
    }
    assert.deepEqual(releaseFromTags({ ...tags, [TAG.sequence]: '1' })?.sequence, 1);
  });
});

describe('Function: launchTemplateVersionDescription() / sequenceFromVersionDescription()', () => {
  it('records the release and reads its sequence back for the same stream only', () => {
    const description = launchTemplateVersionDescription({
      stream: 'web',
      sequence: 12,
      releaseId: 'web#00000012',
    });
    assert.equal(description, 'stemcell stream=web sequence=12 release=web#00000012');
    assert.equal(sequenceFromVersionDescription(description, 'web'), 12);
    assert.equal(sequenceFromVersionDescription(description, 'db'), undefined);
    assert.equal(sequenceFromVersionDescription('hand-made version', 'web'), undefined);
    assert.equal(sequenceFromVersionDescription(`note: ${description}`, 'web'), undefined);
    assert.equal(sequenceFromVersionDescription('', 'web'), undefined);
    assert.equal(sequenceFromVersionDescription(undefined, 'web'), undefined);
  });
});

describe('Function: clientToken()', () => {
  it('is a deterministic 64-character token that tells its parts apart', () => {
    const token = clientToken('register', 'web#00000001', 'eu-west-1');
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal(clientToken('register', 'web#00000001', 'eu-west-1'), token);
    assert.notEqual(clientToken('register', 'web#00000001', 'us-east-1'), token);
    assert.notEqual(clientToken('ab', 'c'), clientToken('a', 'bc'));
  });
});

describe('Function: subscriberRuleName() / subscriberRuleNumber()', () => {
  it('numbers rules from 1 and reads back only its own names', () => {
    assert.equal(subscriberRuleName(3), 'stemcell-subscribers-3');
    assert.equal(subscriberRuleNumber('stemcell-subscribers-3'), 3);
    for (const name of [
      'stemcell-subscribers-0',
      'stemcell-subscribers--1',
      'stemcell-subscribers-1.5',
      'stemcell-subscribers-x',
      'other-3',
      'xstemcell-subscribers-3',
      // Another team's rule whose name is as long as the prefix: its tail must not be read as a number.
      'stemcell-forwarders-12',
    ]) {
      assert.equal(subscriberRuleNumber(name), undefined, name);
    }
  });
});

describe('Function: releaseFromVersionDescription()', () => {
  it('reads back the whole release a version description names, and nothing from any other text', () => {
    const description = launchTemplateVersionDescription({
      stream: 'web-base',
      sequence: 120,
      releaseId: 'web-base#00000120',
    });
    assert.deepEqual(releaseFromVersionDescription(description), {
      stream: 'web-base',
      sequence: 120,
      releaseId: 'web-base#00000120',
    });
    for (const other of [
      `note: ${description}`,
      `${description} (edited by hand)`,
      'stemcell stream=web-base sequence=12a release=web-base#00000012',
      'stemcell stream=web base sequence=12 release=web-base#00000012',
      'stemcell stream=web-base sequence=12 release=web base',
      'stemcell stream= sequence=12 release=r',
      '',
      undefined,
    ]) {
      assert.equal(releaseFromVersionDescription(other), undefined, String(other));
    }
  });
});

describe('Function: instanceRefreshTag() / parseInstanceRefreshTag()', () => {
  it('writes the refresh, template version and revision the subscriber started, and reads them back', () => {
    const tag = {
      instanceRefreshId: '08b91cf7-8fa6-48af-b6a6-d227f40f1b9b',
      launchTemplateId: 'lt-0a20c965061f64abc',
      versionNumber: 17,
      revision: '2026.11.20+build.3',
    };
    const value = instanceRefreshTag(tag);
    assert.equal(value, '08b91cf7-8fa6-48af-b6a6-d227f40f1b9b lt-0a20c965061f64abc:17 2026.11.20+build.3');
    assert.deepEqual(parseInstanceRefreshTag(value), tag);
  });

  it('reads nothing from a value it did not write: another tool, version 0, or extra text either side', () => {
    for (const other of [
      'r-1 lt-0a20c965061f64abc:0 r1',
      'r-1 lt-0a20c965061f64abc:07 r1',
      'r-1 lt-0a20c965061f64abc:x r1',
      'r-1 0a20c965061f64abc:3 r1',
      'r-1 lt-:3 r1',
      'r-1 lt-0a20 c965:3 r1',
      'note r-1 lt-0a20c965061f64abc:3 r1',
      'r-1 lt-0a20c965061f64abc:3 r1 more',
      'r-1 lt-0a20c965061f64abc:3',
      '',
      undefined,
    ]) {
      assert.equal(parseInstanceRefreshTag(other), undefined, String(other));
    }
  });
});
