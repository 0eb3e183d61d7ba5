// What the local bus says when it refuses a pattern. The message is user-facing: it names the place in the pattern
// (a dotted path) and what is wrong there, so each invalid pattern below is checked for its whole message. Which
// patterns are refused follows aws/event-ruler's JsonRuleCompiler, Constants and CIDR (the engine EventBridge
// runs); the conformance table holds the refusals taken from its tests, this file holds the words.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileEventPattern, InvalidEventPatternError, wildcardComplexity } from '#local/event-pattern.ts';

/** Compiles the pattern and returns the message it is refused with. */
function refusal(pattern: string | object): string {
  try {
    compileEventPattern(pattern);
  } catch (err) {
    assert.ok(err instanceof InvalidEventPatternError, `not an InvalidEventPatternError: ${String(err)}`);
    assert.equal(err.name, 'InvalidEventPatternException');
    return err.message;
  }
  assert.fail(`accepted: ${JSON.stringify(pattern)}`);
}

const x = (op: unknown) => ({ x: [op] });

/** event-ruler's RESERVED_FIELD_NAMES_IN_OR_RELATIONSHIP: operators, and names kept for future ones. */
const OPERATOR_NAMES = [
  'exactly',
  'equals-ignore-case',
  'prefix',
  'suffix',
  'anything-but',
  'exists',
  'wildcard',
  'numeric',
  'cidr',
  '=',
  '<',
  '<=',
  '>',
  '>=',
  'regex',
  'not-wildcard',
  'not-equals-ignore-case',
  'date-after',
  'date-on-or-after',
  'date-before',
  'date-on-or-before',
  'in-date-range',
  'ip-address-in-range',
  'ip-address-not-in-range',
];

describe('Function: compileEventPattern() refusals', () => {
  describe('the pattern as a whole', () => {
    for (const [what, pattern] of [
      ['an empty object', {}],
      ['an array', [1, 2, 3]],
      ['JSON text of an empty object', '{}'],
      ['JSON text of a string', '"stemcell"'],
    ] as const) {
      it(`refuses ${what}, with no path`, () => {
        // act + assess
        assert.equal(
          refusal(pattern),
          'Event pattern is not valid: the pattern must be a non-empty JSON object',
        );
      });
    }

    it('refuses text that is not JSON, quoting the parser', () => {
      // act
      const message = refusal('{source:');
      // assess: the parser's own words follow, whatever they are
      assert.match(message, /^Event pattern is not valid: not JSON \(.+\)$/);
    });

    for (const number of ['1E309', '-1E309', '2.0e422', '1E-325', '-4.9e-400']) {
      it(`refuses the number ${number}, which a double cannot hold`, () => {
        // act + assess
        assert.equal(
          refusal(`{"x": [{"numeric": [">=", ${number}]}]}`),
          `Event pattern is not valid: number ${number} is out of range`,
        );
      });
    }
  });

  describe('fields', () => {
    it('names the path of a bare value and shows the value in a list', () => {
      assert.equal(
        refusal({ detail: { stream: 'web-base' } }),
        'Event pattern is not valid at detail.stream: match values must be in an array, e.g. ["web-base"], not "web-base"',
      );
      assert.equal(
        refusal({ detail: { sequence: 7 } }),
        'Event pattern is not valid at detail.sequence: match values must be in an array, e.g. [7], not 7',
      );
    });

    it('refuses empty objects and empty lists of match values', () => {
      assert.equal(
        refusal({ detail: { source: {} } }),
        'Event pattern is not valid at detail.source: empty object',
      );
      assert.equal(
        refusal({ detail: { stream: [] } }),
        'Event pattern is not valid at detail.stream: empty array of match values',
      );
    });

    it('refuses a list or object that is no operator among the match values', () => {
      assert.equal(
        refusal({ x: [[1]] }),
        'Event pattern is not valid at x: match values are strings, numbers, booleans or null, or one operator object, not [1]',
      );
      assert.equal(
        refusal(x({ prefix: 'a', suffix: 'b' })),
        'Event pattern is not valid at x: a match object has exactly one operator, got ["prefix","suffix"]',
      );
      assert.equal(
        refusal(x({})),
        'Event pattern is not valid at x: a match object has exactly one operator, got []',
      );
      assert.equal(
        refusal(x({ regex: 'a.*' })),
        'Event pattern is not valid at x: unrecognized match type "regex"',
      );
    });
  });

  describe('$or', () => {
    it('needs a list of at least two pattern objects', () => {
      const message = 'Event pattern is not valid at $or: $or takes an array of at least two pattern objects';
      assert.equal(refusal({ $or: [{ source: ['stemcell'] }] }), message);
      assert.equal(refusal({ $or: { source: ['stemcell'] } }), message);
      assert.equal(refusal({ $or: [{ source: ['stemcell'] }, ['aws.ec2']] }), message);
      assert.equal(
        refusal({ detail: { $or: [{ stream: ['web-base'] }] } }),
        'Event pattern is not valid at detail.$or: $or takes an array of at least two pattern objects',
      );
    });

    it('refuses an empty alternative, which would otherwise match every event', () => {
      assert.equal(
        refusal({ $or: [{}, { source: ['stemcell'] }] }),
        'Event pattern is not valid at $or.0: empty $or alternative',
      );
      assert.equal(
        refusal({ detail: { $or: [{ stream: ['web-base'] }, {}] } }),
        'Event pattern is not valid at detail.$or.1: empty $or alternative',
      );
    });

    for (const name of OPERATOR_NAMES) {
      it(`refuses ${JSON.stringify(name)} as a field name inside $or`, () => {
        // prepare: the operator written where an alternative's field goes
        const pattern = { detail: { $or: [{ [name]: ['x'] }, { stream: ['web-base'] }] } };
        // act + assess
        assert.equal(
          refusal(pattern),
          `Event pattern is not valid at detail.${name}: ${JSON.stringify(name)} is an operator, not a field; inside $or it may only appear in a list of match values`,
        );
      });
    }

    it('refuses operator names at any depth below $or, and in a $or nested in an alternative', () => {
      assert.equal(
        refusal({ $or: [{ detail: { stream: { prefix: ['web-'] } } }, { source: ['stemcell'] }] }),
        'Event pattern is not valid at detail.stream.prefix: "prefix" is an operator, not a field; inside $or it may only appear in a list of match values',
      );
      assert.equal(
        refusal({
          $or: [{ source: ['stemcell'] }, { $or: [{ region: ['eu-west-1'] }, { exists: [true] }] }],
        }),
        'Event pattern is not valid at exists: "exists" is an operator, not a field; inside $or it may only appear in a list of match values',
      );
    });

    it('accepts operator names as field names outside $or (they are then just fields)', () => {
      // act
      const match = compileEventPattern({ detail: { prefix: ['web-'], numeric: [7] } });
      // assess
      assert.equal(match({ detail: { prefix: 'web-', numeric: 7 } }), true);
      assert.equal(match({ detail: { stream: 'web-base', sequence: 7 } }), false);
    });
  });

  describe('operators', () => {
    it('exists takes a boolean', () => {
      assert.equal(
        refusal(x({ exists: 'yes' })),
        'Event pattern is not valid at x.exists: exists takes true or false',
      );
    });

    it('string operators name the operand that is not a string', () => {
      assert.equal(
        refusal(x({ exactly: 5 })),
        'Event pattern is not valid at x.exactly: expected a string, got 5',
      );
      assert.equal(
        refusal(x({ prefix: null })),
        'Event pattern is not valid at x.prefix: expected a string, got null',
      );
      assert.equal(
        refusal(x({ 'equals-ignore-case': ['abc'] })),
        'Event pattern is not valid at x.equals-ignore-case: expected a string, got ["abc"]',
      );
      assert.equal(
        refusal(x({ wildcard: 5 })),
        'Event pattern is not valid at x.wildcard: expected a string, got 5',
      );
      assert.equal(
        refusal(x({ cidr: 10 })),
        'Event pattern is not valid at x.cidr: expected a string, got 10',
      );
    });

    it('prefix and suffix take a string or one equals-ignore-case', () => {
      assert.equal(
        refusal(x({ prefix: { 'invalid-expression': 'abc' } })),
        'Event pattern is not valid at x.prefix: prefix takes a string or {"equals-ignore-case": string}',
      );
      assert.equal(
        refusal(x({ suffix: { 'equals-ignore-case': 'abc', test: 'def' } })),
        'Event pattern is not valid at x.suffix: suffix takes a string or {"equals-ignore-case": string}',
      );
      assert.equal(
        refusal(x({ prefix: { 'equals-ignore-case': 5 } })),
        'Event pattern is not valid at x.prefix.equals-ignore-case: expected a string, got 5',
      );
    });

    it('anything-but: one inner operator of the supported four, non-empty affixes, a non-empty list of one type', () => {
      assert.equal(
        refusal(x({ 'anything-but': { prefix: 'a', suffix: 'b' } })),
        'Event pattern is not valid at x.anything-but: anything-but takes one inner operator',
      );
      assert.equal(
        refusal(x({ 'anything-but': { numeric: ['>', 1] } })),
        'Event pattern is not valid at x.anything-but.numeric: anything-but supports a value, a list, prefix, suffix, equals-ignore-case or wildcard, not numeric',
      );
      assert.equal(
        refusal(x({ 'anything-but': { prefix: '' } })),
        'Event pattern is not valid at x.anything-but.prefix: prefix must not be empty here',
      );
      assert.equal(
        refusal(x({ 'anything-but': { suffix: ['.png', ''] } })),
        'Event pattern is not valid at x.anything-but.suffix: suffix must not be empty here',
      );
      assert.equal(
        refusal(x({ 'anything-but': { 'equals-ignore-case': [1] } })),
        'Event pattern is not valid at x.anything-but.equals-ignore-case: expected a string, got 1',
      );
      assert.equal(
        refusal(x({ 'anything-but': [] })),
        'Event pattern is not valid at x.anything-but: anything-but list is empty',
      );
      assert.equal(
        refusal(x({ 'anything-but': ['a', 1] })),
        'Event pattern is not valid at x.anything-but: anything-but lists hold only strings or only numbers',
      );
    });

    it('numeric: one comparison or a range, known operators, finite numbers', () => {
      const shape =
        'Event pattern is not valid at x.numeric: numeric takes [op, number] or [op, number, op, number]';
      assert.equal(refusal(x({ numeric: ['='] })), shape);
      assert.equal(refusal(x({ numeric: ['>', 1, '<', 30, false] })), shape);
      assert.equal(refusal(x({ numeric: 5 })), shape);
      assert.equal(
        refusal(x({ numeric: ['~', 5] })),
        'Event pattern is not valid at x.numeric: unknown numeric operator "~"',
      );
      assert.equal(
        refusal(x({ numeric: [5, 5] })),
        'Event pattern is not valid at x.numeric: unknown numeric operator 5',
      );
      assert.equal(
        refusal(x({ numeric: ['=', '5'] })),
        'Event pattern is not valid at x.numeric: numeric operand must be a finite number, got "5"',
      );
      assert.equal(
        refusal(x({ numeric: ['>', 0, '<', null] })),
        'Event pattern is not valid at x.numeric: numeric operand must be a finite number, got null',
      );
    });

    it('numeric refuses Infinity and NaN in an object pattern, as it refuses 1E309 in JSON text', () => {
      assert.equal(
        refusal(x({ numeric: ['<', Number.POSITIVE_INFINITY] })),
        'Event pattern is not valid at x.numeric: numeric operand must be a finite number, got Infinity',
      );
      assert.equal(
        refusal(x({ numeric: ['=', Number.NaN] })),
        'Event pattern is not valid at x.numeric: numeric operand must be a finite number, got NaN',
      );
    });

    it('a numeric range goes from a lower bound (> or >=) up to a higher upper bound (< or <=)', () => {
      const range =
        'Event pattern is not valid at x.numeric: a numeric range is [">" or ">=", low, "<" or "<=", high] with low below high';
      for (const numeric of [
        ['>', 0, '>', 5],
        ['>=', 0, '>=', 5],
        ['<', 0, '<', 5],
        ['<=', 0, '<=', 5],
        ['<', 0, '>', 5],
        ['=', 0, '<', 5],
        ['>', 0, '=', 5],
        ['>', 5, '<', 5],
        ['>=', 6, '<=', 5],
      ]) {
        assert.equal(refusal(x({ numeric })), range, JSON.stringify(numeric));
      }
    });

    for (const cidr of [
      'foo',
      '10.0.0.0',
      '10.0.0.0/8/9',
      '10.0.0.0/',
      '10.0.0.0/ 8',
      '10.0.0.0/8 ',
      '10.0.0.0/0x8',
      '10.0.0.0/-1',
      '10.0.0.0/33',
      '2001:db8::/129',
      // event-ruler's CIDR.cidr: "IPv4 mask bits must be < 32", "IPv6 mask bits must be < 128"
      '10.0.0.1/32',
      '2001:db8::1/128',
    ]) {
      it(`cidr refuses ${JSON.stringify(cidr)}`, () => {
        assert.equal(
          refusal(x({ cidr })),
          `Event pattern is not valid at x.cidr: not a CIDR block: ${JSON.stringify(cidr)}`,
        );
      });
    }

    it('wildcard escapes only \\* and \\\\ and refuses two stars in a row, in and under anything-but', () => {
      assert.equal(
        refusal(x({ wildcard: 'a*c\\def' })),
        'Event pattern is not valid at x.wildcard: wildcard escapes only \\* and \\\\: "a*c\\\\def"',
      );
      assert.equal(
        refusal(x({ wildcard: 'abc**def' })),
        'Event pattern is not valid at x.wildcard: consecutive wildcards in "abc**def"',
      );
      assert.equal(
        refusal(x({ 'anything-but': { wildcard: ['a*', 'b**'] } })),
        'Event pattern is not valid at x.anything-but.wildcard: consecutive wildcards in "b**"',
      );
    });

    it('refuses wildcards too complex for one field, naming the field', () => {
      // prepare: "*a" × 50 then "*": 101 prefixes all match "a" × 50
      const pattern = { detail: { fileName: [{ wildcard: `${'*a'.repeat(50)}*` }] } };
      // act + assess
      assert.equal(
        refusal(pattern),
        'Event pattern is not valid at detail.fileName: the wildcards are too complex: more than 100 of their prefixes can match one value at once',
      );
    });
  });
});

describe('Function: wildcardComplexity() refusals', () => {
  it('refuses an invalid operand as the compiler would, with no path', () => {
    assert.throws(() => wildcardComplexity(['a**b']), {
      name: 'InvalidEventPatternException',
      message: 'Event pattern is not valid: consecutive wildcards in "a**b"',
    });
  });
});
