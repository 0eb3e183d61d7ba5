// The operators of the local bus's pattern matcher at their edges: each numeric comparison just below, at and just
// above its operand, CIDR blocks at their smallest and largest masks, case-insensitive affixes that must not match,
// wildcard escapes, the wildcard complexity limit exactly reached, patterns given as JSON text, and the two rules
// of matching over event arrays that key order and backtracking could break. The reference is aws/event-ruler
// (README, JsonRuleCompiler, CIDR, WildcardParser, MachineComplexityEvaluator), the engine EventBridge runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileEventPattern,
  MAX_WILDCARD_COMPLEXITY,
  testEventPattern,
  wildcardComplexity,
} from '#local/event-pattern.ts';

const x = (op: unknown) => ({ x: [op] });
const on = (pattern: string | object, value: unknown) => testEventPattern(pattern, { x: value });

describe('Function: compileEventPattern() operators at their edges', () => {
  describe('patterns as JSON text', () => {
    it('reads strings, numbers, booleans and null as JSON.parse does', () => {
      // act + assess
      assert.equal(on('{"x": ["web-base"]}', 'web-base'), true);
      assert.equal(on('{"x": [7]}', 7), true);
      assert.equal(on('{"x": ["7"]}', 7), false);
      assert.equal(on('{"x": [true, null]}', null), true);
      assert.equal(on('{"x": {"y": [{"numeric": [">", 6, "<=", 7]}]}}', { y: 7 }), true);
    });

    for (const zero of ['0', '-0', '0.000', '0e10', '0E-400', '0.0e+5']) {
      it(`keeps ${zero} as the zero it is written as (no underflow)`, () => {
        // act
        const match = compileEventPattern(`{"x": [{"numeric": ["=", ${zero}]}]}`);
        // assess
        assert.equal(match({ x: 0 }), true);
        assert.equal(match({ x: 1 }), false);
      });
    }

    it('keeps small and large numbers that a double holds', () => {
      assert.equal(on('{"x": [{"numeric": [">", 1E-5]}]}', 0.5), true);
      assert.equal(on('{"x": [{"numeric": [">", 1E-5]}]}', 0), false);
      assert.equal(on('{"x": [{"numeric": ["<", 5e11]}]}', 4e11), true);
    });
  });

  describe('exactly', () => {
    it('matches the very string and nothing else, not even the number it spells', () => {
      assert.equal(on(x({ exactly: 'web-base' }), 'web-base'), true);
      assert.equal(on(x({ exactly: 'web-base' }), 'web'), false);
      assert.equal(on(x({ exactly: 'web-base' }), 'WEB-BASE'), false);
      assert.equal(on(x({ exactly: '7' }), 7), false);
      assert.equal(on(x({ exactly: '7' }), '7'), true);
    });
  });

  describe('prefix and suffix with equals-ignore-case', () => {
    it('anchor the operand at the end (suffix) or the start (prefix), whatever the case', () => {
      const suffix = x({ suffix: { 'equals-ignore-case': '.png' } });
      const prefix = x({ prefix: { 'equals-ignore-case': 'root' } });
      assert.equal(on(suffix, 'Root.PNG'), true);
      assert.equal(on(suffix, 'root.pNg'), true);
      assert.equal(on(suffix, 'Root.PNG.bak'), false);
      assert.equal(on(suffix, 'Root'), false);
      assert.equal(on(suffix, 7), false);
      assert.equal(on(prefix, 'ROOT.png'), true);
      assert.equal(on(prefix, 'The Root.png'), false);
    });
  });

  describe('numeric', () => {
    // [operator, operand 7] → verdict for 6, 7, 8
    const table: [string, [boolean, boolean, boolean]][] = [
      ['<', [true, false, false]],
      ['<=', [true, true, false]],
      ['=', [false, true, false]],
      ['>', [false, false, true]],
      ['>=', [false, true, true]],
    ];
    for (const [op, verdicts] of table) {
      it(`${op} 7 holds for ${verdicts.map((v, i) => `${6 + i}: ${v}`).join(', ')}`, () => {
        // prepare
        const match = compileEventPattern(x({ numeric: [op, 7] }));
        // act + assess
        assert.deepEqual(
          [6, 7, 8].map((n) => match({ x: n })),
          verdicts,
        );
        assert.equal(match({ x: '7' }), false);
      });
    }

    it('ranges include or exclude each bound as their operators say', () => {
      const openLow = compileEventPattern(x({ numeric: ['>', 0, '<=', 5] }));
      const openHigh = compileEventPattern(x({ numeric: ['>=', 0, '<', 5] }));
      assert.deepEqual(
        [-1, 0, 0.5, 5, 5.5].map((n) => openLow({ x: n })),
        [false, false, true, true, false],
      );
      assert.deepEqual(
        [-1, 0, 0.5, 5, 5.5].map((n) => openHigh({ x: n })),
        [false, true, true, false, false],
      );
    });
  });

  describe('cidr', () => {
    it('/0 holds every address of its family and no other', () => {
      assert.equal(on(x({ cidr: '0.0.0.0/0' }), '10.0.0.1'), true);
      assert.equal(on(x({ cidr: '0.0.0.0/0' }), '255.255.255.255'), true);
      assert.equal(on(x({ cidr: '0.0.0.0/0' }), '2001:db8::1'), false);
      assert.equal(on(x({ cidr: '::/0' }), '2001:db8::1'), true);
      assert.equal(on(x({ cidr: '::/0' }), '10.0.0.1'), false);
    });

    it('/31 and /127, the largest masks event-ruler takes, hold two addresses', () => {
      assert.deepEqual(
        ['10.0.0.1', '10.0.0.0', '10.0.0.2'].map((ip) => on(x({ cidr: '10.0.0.0/31' }), ip)),
        [true, true, false],
      );
      assert.deepEqual(
        ['2001:db8::1', '2001:db8::', '2001:db8::2'].map((ip) => on(x({ cidr: '2001:db8::/127' }), ip)),
        [true, true, false],
      );
    });

    it('reads mask bits as Java integers: a sign and leading zeros are allowed', () => {
      assert.equal(on(x({ cidr: '10.0.0.0/+8' }), '10.200.0.1'), true);
      assert.equal(on(x({ cidr: '10.0.0.0/08' }), '10.200.0.1'), true);
      assert.equal(on(x({ cidr: '10.0.0.0/08' }), '11.0.0.1'), false);
      assert.equal(on(x({ cidr: '10.0.0.0/-0' }), '11.0.0.1'), true);
    });

    it('holds only IP address strings: not the IPv4-mapped IPv6 spelling, not numbers or other values', () => {
      // event-ruler recognises an address only as digits and dots or hex digits and colons, so "::ffff:10.0.0.1"
      // is a plain string to it
      assert.equal(on(x({ cidr: '10.0.0.0/8' }), '::ffff:10.0.0.1'), false);
      for (const value of [10, null, true, 'ten', { ip: '10.0.0.1' }]) {
        assert.equal(on(x({ cidr: '10.0.0.0/8' }), value), false, JSON.stringify(value));
      }
      assert.equal(on(x({ cidr: '2001:db8::/32' }), 'not-an-address'), false);
    });
  });

  describe('wildcard', () => {
    it('reads \\* as a literal star, even right before a wildcard star', () => {
      // prepare: a, a literal *, then any run
      const match = compileEventPattern(x({ wildcard: 'a\\**' }));
      // act + assess
      assert.equal(match({ x: 'a*' }), true);
      assert.equal(match({ x: 'a*bc' }), true);
      assert.equal(match({ x: 'abc' }), false);
      assert.equal(testEventPattern(x({ wildcard: '\\\\*' }), { x: '\\etc' }), true);
      assert.equal(testEventPattern(x({ wildcard: '\\\\*' }), { x: 'etc' }), false);
    });

    it('accepts wildcards whose complexity is exactly the limit', () => {
      // prepare: "*a" × 49 then "*" keeps 99 prefixes alive on "a" × 49, and the literal "a" × 49 one more
      const operands = [`${'*a'.repeat(49)}*`, 'a'.repeat(49)];
      // act + assess
      assert.equal(wildcardComplexity(operands), MAX_WILDCARD_COMPLEXITY);
      const match = compileEventPattern({ x: operands.map((wildcard) => ({ wildcard })) });
      assert.equal(match({ x: 'a'.repeat(49) }), true);
      assert.equal(match({ x: 'b' }), false);
    });

    it('adds up the prefixes of every value of the field on one input', () => {
      // prepare: 50 values "S*<letter>": on the input "S", "S" and "S*" of each match, 100 in all
      const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX';
      const operands = [...letters].map((c) => `S*${c}`);
      // act + assess
      assert.equal(wildcardComplexity(operands), MAX_WILDCARD_COMPLEXITY);
      assert.doesNotThrow(() => compileEventPattern({ x: operands.map((wildcard) => ({ wildcard })) }));
      assert.throws(
        () => compileEventPattern({ x: [...operands, 'S*Y'].map((wildcard) => ({ wildcard })) }),
        /too complex/,
      );
    });

    it('is never below the complexity of the most complex value of the field', () => {
      // prepare: every value's prefixes count, so the first value can only add to the second one's 12
      const operands = ['bbbab*aababb', 'ab*abb*a*bbb*bbbbab*'];
      const alone = operands.map((w) => wildcardComplexity([w]));
      // act
      const together = wildcardComplexity(operands);
      // assess
      assert.deepEqual(alone, [3, 12]);
      assert.ok(together >= 12, `together ${together}`);
    });

    it('counts a limit equal to the complexity as not exceeded', () => {
      // "*a*a*" keeps 5 prefixes alive on "aa"
      assert.equal(wildcardComplexity(['*a*a*'], 5), 5);
      assert.ok(wildcardComplexity(['*a*a*'], 4) > 4);
    });
  });

  describe('event fields', () => {
    it('matches a top-level key "" like any other key', () => {
      assert.equal(testEventPattern({ '': ['x'] }, { '': 'x', source: 'stemcell' }), true);
      assert.equal(testEventPattern({ '': ['y'] }, { '': 'x', source: 'stemcell' }), false);
    });
  });

  describe('event arrays', () => {
    const employees = {
      employees: [
        [
          { firstName: 'John', lastName: 'Doe', ids: [1234, 1000, 9999] },
          { firstName: 'Anna', lastName: 'Smith' },
        ],
        [{ firstName: 'Peter', lastName: 'Jones', ids: [] }],
      ],
    };

    it('gives the same verdict whatever the order of the keys in the pattern', () => {
      // prepare: event-ruler's WHEN_JSONContainsArrays case (Anna has no ids), its keys in both orders
      const sorted = { employees: { firstName: ['Anna'], ids: [{ exists: false }] } };
      const reversed = { employees: { ids: [{ exists: false }], firstName: ['Anna'] } };
      const three = { employees: { lastName: ['Smith'], ids: [{ exists: false }], firstName: ['Anna'] } };
      // act + assess
      assert.equal(testEventPattern(sorted, employees), true);
      assert.equal(testEventPattern(reversed, employees), true);
      assert.equal(testEventPattern(three, employees), true);
      assert.equal(
        testEventPattern({ employees: { ids: [{ exists: false }], firstName: ['John'] } }, employees),
        false,
      );
    });

    it('keeps the array element chosen first when a later field backtracks', () => {
      // prepare: p and r sit in different elements of arr; q is there both inside the first element and as a
      // dotted key outside the array, so trying q inside the element first and failing must not free arr
      const event = {
        arr: [
          { p: 'x', q: 'v' },
          { p: 'y', r: 'z' },
        ],
        'arr.q': 'v',
      };
      const pattern = { arr: { p: ['x'], q: ['v'], r: ['z'] } };
      // act + assess
      assert.equal(testEventPattern(pattern, event), false);
      assert.equal(testEventPattern(pattern, { ...event, arr: [{ p: 'x', q: 'v', r: 'z' }] }), true);
      assert.equal(testEventPattern({ arr: { p: ['y'], q: ['v'], r: ['z'] } }, event), true);
    });
  });
});
