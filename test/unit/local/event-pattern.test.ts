import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileEventPattern, testEventPattern } from '#local/event-pattern.ts';

const event = {
  version: '0',
  id: '6a7e8feb-b491-4cf7-a9f1-bf3703467718',
  'detail-type': 'Image Ready',
  source: 'stemcell',
  account: '111122223333',
  time: '2026-11-21T10:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:ec2:eu-west-1::image/ami-1', 'arn:aws:ec2:eu-west-1::snapshot/snap-1'],
  detail: {
    stream: 'web-base',
    revision: '2026.11.21',
    sequence: 7,
    encrypted: true,
    kmsKeyId: null,
    empty: '',
    none: [],
    fileName: 'Root.PNG',
    sourceIp: '10.0.3.17',
    tags: ['blue', 'green'],
    images: [
      { region: 'eu-west-1', imageId: 'ami-1' },
      { region: 'us-east-1', imageId: 'ami-2' },
    ],
    source: { bucket: 'tarballs', key: 'streams/web-base/2026.11.21.tar.zst' },
  },
};

function matches(pattern: object): boolean {
  return testEventPattern(pattern, event);
}

describe('Function: compileEventPattern()', () => {
  describe('exact match', () => {
    it('matches equal strings, numbers, booleans and null, and nested objects', () => {
      // act + assess
      assert.equal(matches({ source: ['stemcell'], 'detail-type': ['Image Ready'] }), true);
      assert.equal(matches({ detail: { sequence: [7], encrypted: [true], kmsKeyId: [null] } }), true);
      assert.equal(matches({ detail: { source: { bucket: ['tarballs'] } } }), true);
      assert.equal(matches({ detail: { empty: [''] } }), true);
    });
    it('refuses other values, other types and absent fields', () => {
      assert.equal(matches({ source: ['aws.s3'] }), false);
      assert.equal(matches({ detail: { sequence: ['7'] } }), false);
      assert.equal(matches({ detail: { encrypted: ['true'] } }), false);
      assert.equal(matches({ detail: { missing: [null] } }), false);
      assert.equal(matches({ detail: { source: { bucket: ['other'] } } }), false);
      assert.equal(matches({ detail: { absent: { bucket: ['tarballs'] } } }), false);
    });
    it('ANDs fields and ORs values of one field', () => {
      assert.equal(matches({ source: ['x', 'stemcell'], region: ['eu-west-1'] }), true);
      assert.equal(matches({ source: ['stemcell'], region: ['us-east-1'] }), false);
    });
  });

  describe('arrays in events', () => {
    it('matches when any element of an event array matches', () => {
      assert.equal(matches({ detail: { tags: ['green'] } }), true);
      assert.equal(matches({ resources: [{ suffix: 'snap-1' }] }), true);
      assert.equal(matches({ detail: { tags: ['red'] } }), false);
    });
    it('matches arrays of objects element by element, never across elements', () => {
      assert.equal(matches({ detail: { images: { region: ['us-east-1'], imageId: ['ami-2'] } } }), true);
      assert.equal(matches({ detail: { images: { region: ['us-east-1'], imageId: ['ami-1'] } } }), false);
    });
  });

  describe('prefix and suffix', () => {
    it('matches string beginnings and endings, optionally ignoring case', () => {
      assert.equal(matches({ detail: { revision: [{ prefix: '2026.' }] } }), true);
      assert.equal(matches({ detail: { fileName: [{ suffix: '.PNG' }] } }), true);
      assert.equal(matches({ detail: { fileName: [{ suffix: { 'equals-ignore-case': '.png' } }] } }), true);
      assert.equal(matches({ detail: { fileName: [{ prefix: { 'equals-ignore-case': 'root' } }] } }), true);
    });
    it('refuses other beginnings and endings, case differences and non-strings', () => {
      assert.equal(matches({ detail: { revision: [{ prefix: '2025.' }] } }), false);
      assert.equal(matches({ detail: { fileName: [{ suffix: '.png' }] } }), false);
      assert.equal(matches({ detail: { fileName: [{ prefix: { 'equals-ignore-case': 'boot' } }] } }), false);
      assert.equal(matches({ detail: { sequence: [{ prefix: '7' }] } }), false);
    });
  });

  describe('equals-ignore-case', () => {
    it('matches regardless of case and refuses other strings', () => {
      assert.equal(matches({ 'detail-type': [{ 'equals-ignore-case': 'image ready' }] }), true);
      assert.equal(matches({ 'detail-type': [{ 'equals-ignore-case': 'image readyx' }] }), false);
    });
  });

  describe('wildcard', () => {
    it('matches * runs anywhere in the string', () => {
      assert.equal(matches({ detail: { source: { key: [{ wildcard: 'streams/*/*.tar.zst' }] } } }), true);
      assert.equal(matches({ detail: { source: { key: [{ wildcard: 'streams/web-*' }] } } }), true);
    });
    it('refuses strings that do not fit and treats escaped \\* literally', () => {
      assert.equal(matches({ detail: { source: { key: [{ wildcard: 'streams/*.tar.gz' }] } } }), false);
      assert.equal(testEventPattern({ k: [{ wildcard: 'a\\*b' }] }, { k: 'a*b' }), true);
      assert.equal(testEventPattern({ k: [{ wildcard: 'a\\*b' }] }, { k: 'axxb' }), false);
    });
    it('rejects consecutive wildcards', () => {
      assert.throws(() => compileEventPattern({ k: [{ wildcard: 'a**b' }] }), {
        name: 'InvalidEventPatternException',
      });
    });
  });

  describe('anything-but', () => {
    it('matches values other than a single value or a list', () => {
      assert.equal(matches({ region: [{ 'anything-but': 'us-east-1' }] }), true);
      assert.equal(matches({ region: [{ 'anything-but': ['us-east-1', 'us-west-2'] }] }), true);
      assert.equal(matches({ detail: { sequence: [{ 'anything-but': [1, 2, 3] }] } }), true);
    });
    it('refuses the listed values and absent fields', () => {
      assert.equal(matches({ region: [{ 'anything-but': 'eu-west-1' }] }), false);
      assert.equal(matches({ region: [{ 'anything-but': ['us-east-1', 'eu-west-1'] }] }), false);
      assert.equal(matches({ detail: { sequence: [{ 'anything-but': [7] }] } }), false);
      assert.equal(matches({ detail: { missing: [{ 'anything-but': 'x' }] } }), false);
    });
    it('supports prefix, suffix, equals-ignore-case and wildcard inside', () => {
      assert.equal(matches({ region: [{ 'anything-but': { prefix: 'us-' } }] }), true);
      assert.equal(matches({ region: [{ 'anything-but': { prefix: 'eu-' } }] }), false);
      assert.equal(matches({ detail: { fileName: [{ 'anything-but': { suffix: '.jpg' } }] } }), true);
      assert.equal(matches({ detail: { fileName: [{ 'anything-but': { suffix: '.PNG' } }] } }), false);
      assert.equal(matches({ source: [{ 'anything-but': { 'equals-ignore-case': ['AWS.S3'] } }] }), true);
      assert.equal(matches({ source: [{ 'anything-but': { 'equals-ignore-case': ['STEMCELL'] } }] }), false);
      assert.equal(matches({ detail: { fileName: [{ 'anything-but': { wildcard: '*.JPG' } }] } }), true);
      assert.equal(matches({ detail: { fileName: [{ 'anything-but': { wildcard: 'Root.*' } }] } }), false);
    });
    it('rejects lists mixing strings and numbers', () => {
      assert.throws(() => compileEventPattern({ k: [{ 'anything-but': ['a', 1] }] }), /only strings or only/);
    });
  });

  describe('numeric', () => {
    it('matches single comparisons and ranges', () => {
      assert.equal(matches({ detail: { sequence: [{ numeric: ['>', 6] }] } }), true);
      assert.equal(matches({ detail: { sequence: [{ numeric: ['>=', 7, '<', 8] }] } }), true);
      assert.equal(matches({ detail: { sequence: [{ numeric: ['=', 7] }] } }), true);
      assert.equal(matches({ detail: { sequence: [{ numeric: ['<=', 7] }] } }), true);
    });
    it('refuses numbers outside and non-numbers', () => {
      assert.equal(matches({ detail: { sequence: [{ numeric: ['>', 7] }] } }), false);
      assert.equal(matches({ detail: { sequence: [{ numeric: ['>', 0, '<', 7] }] } }), false);
      assert.equal(matches({ detail: { revision: [{ numeric: ['>', 0] }] } }), false);
    });
    it('rejects malformed ranges', () => {
      assert.throws(() => compileEventPattern({ k: [{ numeric: ['<', 5, '>', 1] }] }), /numeric range/);
      assert.throws(() => compileEventPattern({ k: [{ numeric: ['~', 5] }] }), /unknown numeric operator/);
    });
  });

  describe('exists', () => {
    it('exists:true matches present leaves, including null', () => {
      assert.equal(matches({ detail: { stream: [{ exists: true }] } }), true);
      assert.equal(matches({ detail: { kmsKeyId: [{ exists: true }] } }), true);
      assert.equal(matches({ detail: { missing: [{ exists: true }] } }), false);
      assert.equal(matches({ detail: { source: [{ exists: true }] } }), false);
    });
    it('exists:false matches absent fields, absent parents and empty arrays', () => {
      assert.equal(matches({ detail: { missing: [{ exists: false }] } }), true);
      assert.equal(matches({ nothing: { deeper: [{ exists: false }] } }), true);
      assert.equal(matches({ detail: { none: [{ exists: false }] } }), true);
      assert.equal(matches({ detail: { stream: [{ exists: false }] } }), false);
    });
  });

  describe('cidr', () => {
    it('matches addresses inside the block and refuses the rest', () => {
      assert.equal(matches({ detail: { sourceIp: [{ cidr: '10.0.0.0/16' }] } }), true);
      assert.equal(matches({ detail: { sourceIp: [{ cidr: '10.1.0.0/16' }] } }), false);
      assert.equal(matches({ detail: { stream: [{ cidr: '10.0.0.0/8' }] } }), false);
    });
  });

  describe('$or', () => {
    it('matches when any alternative matches, ANDed with the fields beside it', () => {
      const pattern = {
        source: ['stemcell'],
        $or: [{ region: ['us-east-1'] }, { detail: { sequence: [{ numeric: ['>', 5] }] } }],
      };
      assert.equal(matches(pattern), true);
      assert.equal(matches({ ...pattern, source: ['aws.ec2'] }), false);
      assert.equal(matches({ $or: [{ region: ['us-east-1'] }, { detail: { sequence: [1] } }] }), false);
    });
    it('works nested inside detail', () => {
      assert.equal(matches({ detail: { $or: [{ stream: ['db'] }, { stream: ['web-base'] }] } }), true);
      assert.equal(matches({ detail: { $or: [{ stream: ['db'] }, { stream: ['api'] }] } }), false);
    });
  });

  describe('invalid patterns', () => {
    for (const [what, pattern] of [
      ['bare values', '{"source":"stemcell"}'],
      ['empty arrays', '{"source":[]}'],
      ['unknown operators', '{"source":[{"regex":"x"}]}'],
      ['an empty pattern', '{}'],
      ['a lone $or alternative', '{"$or":[{"source":["x"]}]}'],
      ['text that is not JSON', '{source:'],
    ] as const) {
      it(`rejects ${what} with InvalidEventPatternException`, () => {
        assert.throws(() => compileEventPattern(pattern), { name: 'InvalidEventPatternException' });
      });
    }
    it('names the path at fault', () => {
      assert.throws(() => compileEventPattern({ detail: { stream: 'x' } }), /at detail\.stream/);
    });
  });
});
