// EventBridge event-pattern matching, as the local bus needs it. Written here because no well-kept npm package
// implements the current operator set (the published matchers are unmaintained or cover exact/prefix only).
// It follows aws/event-ruler, the engine EventBridge runs, in its JSON-event mode (rulesForJSONEvent), and the
// EventBridge user guide; test/unit/local/event-pattern-conformance.test.ts holds the cases and their sources.
//  - keys are paths joined with dots, in the pattern and in the event alike: {"a": {"b": [1]}} and
//    {"a.b": [1]} are the same pattern, and each matches {"a": {"b": 1}} and {"a.b": 1};
//  - every field of the pattern must match (AND); a leaf is a non-empty list of matchers (OR);
//  - `$or` holds alternative sub-patterns at any object level (expanded to alternatives of the whole pattern);
//  - where the event holds an array, any element may match, but two fields never match from different elements
//    of one array (array consistency);
//  - exists:false matches a path with no leaf value (absent, an object, or []) in the array elements chosen.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { LocalServiceError } from './errors.ts';

export class InvalidEventPatternError extends LocalServiceError {
  constructor(reason: string, path: string[], options?: { cause?: unknown }) {
    const at = path.length ? ` at ${path.join('.')}` : '';
    super('InvalidEventPatternException', `Event pattern is not valid${at}: ${reason}`, 400, options);
  }
}

/** event-ruler's MachineComplexityEvaluator limit: wildcard prefixes one input string may keep alive at once. */
export const MAX_WILDCARD_COMPLEXITY = 100;

/** Field names that make an object inside `$or` an operator, not an alternative (event-ruler's Constants). */
const RESERVED_IN_OR = new Set([
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
]);

type ValueTest = (value: unknown) => boolean;

interface Leaf {
  tests: ValueTest[];
  /** true when the leaf holds exists:false */
  matchesAbsent: boolean;
  /** wildcard operands, for the complexity limit */
  wildcards: string[];
}

/** One alternative of the pattern after `$or` expansion: dotted path → leaf. */
type Conjunct = Map<string, Leaf>;

/** A leaf value of the event, with the array elements it sits in: [array id, element index] pairs. */
interface Field {
  value: unknown;
  trail: [number, number][];
}

export type EventPatternMatcher = (event: unknown) => boolean;

/** Compiles a pattern (JSON text or object); throws InvalidEventPatternException naming the fault and its path. */
export function compileEventPattern(pattern: string | object): EventPatternMatcher {
  const parsed = typeof pattern === 'string' ? parsePattern(pattern) : pattern;
  if (!isPlainObject(parsed) || Object.keys(parsed).length === 0) {
    throw new InvalidEventPatternError('the pattern must be a non-empty JSON object', []);
  }
  const conjuncts = compileObject(parsed, []);
  for (const conjunct of conjuncts) checkWildcardComplexity(conjunct);
  return (event) => {
    const fields = flattenEvent(isPlainObject(event) ? event : {});
    return conjuncts.some((conjunct) => matchConjunct(conjunct, fields));
  };
}

/** TestEventPattern: true if `event` matches `pattern`. */
export function testEventPattern(pattern: string | object, event: unknown): boolean {
  return compileEventPattern(pattern)(event);
}

/**
 * Parses pattern text, refusing numbers that JSON.parse would silently turn into ±Infinity or 0 (1E309,
 * 1E-325): event-ruler refuses them, and a pattern must not mean something other than what it says.
 */
function parsePattern(text: string): unknown {
  try {
    return JSON.parse(text, (_key, value, context?: { source?: string }) => {
      if (typeof value === 'number' && context?.source !== undefined) {
        const digits = context.source.replace(/[eE].*$/, '').replace(/[^1-9]/g, '');
        if (!Number.isFinite(value) || (value === 0 && digits.length > 0)) {
          throw new InvalidEventPatternError(`number ${context.source} is out of range`, []);
        }
      }
      return value;
    });
  } catch (err) {
    if (err instanceof InvalidEventPatternError) throw err;
    throw new InvalidEventPatternError(`not JSON (${(err as Error).message})`, [], { cause: err });
  }
}

// ---------------------------------------------------------------- compile

/**
 * An object of the pattern → its alternatives (more than one only under `$or`). Below a `$or`, at any depth, an
 * operator name is no field name (event-ruler's parseObjectInsideOrRelationship): it is a misplaced operator.
 */
function compileObject(obj: Record<string, unknown>, path: string[], insideOr = false): Conjunct[] {
  let alternatives: Conjunct[] = [new Map()];
  for (const [key, value] of Object.entries(obj)) {
    const at = [...path, key];
    let sub: Conjunct[];
    if (insideOr && RESERVED_IN_OR.has(key)) {
      throw new InvalidEventPatternError(
        `${JSON.stringify(key)} is an operator, not a field; inside $or it may only appear in a list of match values`,
        at,
      );
    }
    if (key === '$or') {
      sub = compileOr(value, at, path);
    } else if (Array.isArray(value)) {
      sub = [new Map([[at.join('.'), compileLeaf(value, at)]])];
    } else if (isPlainObject(value)) {
      if (Object.keys(value).length === 0) throw new InvalidEventPatternError('empty object', at);
      sub = compileObject(value, at, insideOr);
    } else {
      throw new InvalidEventPatternError(
        `match values must be in an array, e.g. [${JSON.stringify(value)}], not ${JSON.stringify(value)}`,
        at,
      );
    }
    alternatives = alternatives.flatMap((left) => sub.map((right) => merge(left, right)));
  }
  return alternatives;
}

function compileOr(value: unknown, at: string[], parent: string[]): Conjunct[] {
  if (!Array.isArray(value) || value.length < 2 || !value.every(isPlainObject)) {
    throw new InvalidEventPatternError('$or takes an array of at least two pattern objects', at);
  }
  return value.flatMap((alt, i) => {
    if (Object.keys(alt).length === 0) {
      throw new InvalidEventPatternError('empty $or alternative', [...at, String(i)]);
    }
    return compileObject(alt, parent, true);
  });
}

/** Both conjuncts at once. A path in both (dotted and nested spellings of one key) keeps the later leaf. */
function merge(left: Conjunct, right: Conjunct): Conjunct {
  const out = new Map(left);
  for (const [path, leaf] of right) out.set(path, leaf);
  return out;
}

function compileLeaf(matchers: unknown[], path: string[]): Leaf {
  if (matchers.length === 0) throw new InvalidEventPatternError('empty array of match values', path);
  const leaf: Leaf = { tests: [], matchesAbsent: false, wildcards: [] };
  for (const m of matchers) {
    if (m === null || typeof m === 'string' || typeof m === 'number' || typeof m === 'boolean') {
      leaf.tests.push((v) => v === m);
      continue;
    }
    if (!isPlainObject(m)) {
      throw new InvalidEventPatternError(
        `match values are strings, numbers, booleans or null, or one operator object, not ${JSON.stringify(m)}`,
        path,
      );
    }
    const keys = Object.keys(m);
    if (keys.length !== 1) {
      throw new InvalidEventPatternError(
        `a match object has exactly one operator, got ${JSON.stringify(keys)}`,
        path,
      );
    }
    const op = keys[0] as string;
    const arg = m[op];
    const at = [...path, op];
    switch (op) {
      case 'exists':
        if (typeof arg !== 'boolean') throw new InvalidEventPatternError('exists takes true or false', at);
        if (arg) leaf.tests.push(() => true);
        else leaf.matchesAbsent = true;
        break;
      case 'exactly': {
        const s = requireString(arg, at);
        leaf.tests.push((v) => v === s);
        break;
      }
      case 'prefix':
      case 'suffix':
        leaf.tests.push(affixTest(op, arg, at));
        break;
      case 'equals-ignore-case': {
        const re = ignoreCaseRegExp(requireString(arg, at), 'whole');
        leaf.tests.push((v) => typeof v === 'string' && re.test(v));
        break;
      }
      case 'wildcard': {
        const w = requireString(arg, at);
        const re = wildcardRegExp(w, at);
        leaf.wildcards.push(w);
        leaf.tests.push((v) => typeof v === 'string' && re.test(v));
        break;
      }
      case 'numeric':
        leaf.tests.push(numericTest(arg, at));
        break;
      case 'cidr':
        leaf.tests.push(cidrTest(arg, at));
        break;
      case 'anything-but':
        leaf.tests.push(anythingButTest(arg, at));
        break;
      default:
        throw new InvalidEventPatternError(`unrecognized match type ${JSON.stringify(op)}`, path);
    }
  }
  return leaf;
}

function affixTest(op: 'prefix' | 'suffix', arg: unknown, at: string[]): ValueTest {
  if (isPlainObject(arg)) {
    const keys = Object.keys(arg);
    if (keys.length !== 1 || keys[0] !== 'equals-ignore-case') {
      throw new InvalidEventPatternError(`${op} takes a string or {"equals-ignore-case": string}`, at);
    }
    const re = ignoreCaseRegExp(requireString(arg['equals-ignore-case'], [...at, 'equals-ignore-case']), op);
    return (v) => typeof v === 'string' && re.test(v);
  }
  const affix = requireString(arg, at);
  return (v) => typeof v === 'string' && (op === 'prefix' ? v.startsWith(affix) : v.endsWith(affix));
}

function anythingButTest(arg: unknown, at: string[]): ValueTest {
  // anything-but matches a present value that the inner condition rejects.
  if (isPlainObject(arg)) {
    const keys = Object.keys(arg);
    if (keys.length !== 1) throw new InvalidEventPatternError('anything-but takes one inner operator', at);
    const op = keys[0] as string;
    const inner = arg[op];
    const innerAt = [...at, op];
    let tests: ValueTest[];
    switch (op) {
      case 'prefix':
      case 'suffix':
        tests = stringOrStrings(inner, innerAt).map((affix) => {
          if (affix === '') throw new InvalidEventPatternError(`${op} must not be empty here`, innerAt);
          return affixTest(op, affix, innerAt);
        });
        break;
      case 'equals-ignore-case':
        tests = stringOrStrings(inner, innerAt).map((s) => {
          const re = ignoreCaseRegExp(s, 'whole');
          return (v) => typeof v === 'string' && re.test(v);
        });
        break;
      case 'wildcard':
        tests = stringOrStrings(inner, innerAt).map((w) => {
          const re = wildcardRegExp(w, innerAt);
          return (v) => typeof v === 'string' && re.test(v);
        });
        break;
      default:
        throw new InvalidEventPatternError(
          `anything-but supports a value, a list, prefix, suffix, equals-ignore-case or wildcard, not ${op}`,
          innerAt,
        );
    }
    return (v) => !tests.some((test) => test(v));
  }
  const list = Array.isArray(arg) ? arg : [arg];
  if (list.length === 0) throw new InvalidEventPatternError('anything-but list is empty', at);
  const allStrings = list.every((x) => typeof x === 'string');
  const allNumbers = list.every((x) => typeof x === 'number');
  if (!allStrings && !allNumbers) {
    throw new InvalidEventPatternError('anything-but lists hold only strings or only numbers', at);
  }
  return (v) => !(list as unknown[]).includes(v);
}

const NUMERIC_OPS = new Set(['<', '<=', '=', '>', '>=']);

function numericTest(arg: unknown, at: string[]): ValueTest {
  if (!Array.isArray(arg) || (arg.length !== 2 && arg.length !== 4)) {
    throw new InvalidEventPatternError('numeric takes [op, number] or [op, number, op, number]', at);
  }
  const comparisons: [string, number][] = [];
  for (let i = 0; i < arg.length; i += 2) {
    const op = arg[i];
    const n = arg[i + 1];
    if (typeof op !== 'string' || !NUMERIC_OPS.has(op)) {
      throw new InvalidEventPatternError(`unknown numeric operator ${JSON.stringify(op)}`, at);
    }
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      // String(n), not JSON: an object pattern may hold Infinity or NaN, which JSON would print as null.
      const got = typeof n === 'number' ? String(n) : JSON.stringify(n);
      throw new InvalidEventPatternError(`numeric operand must be a finite number, got ${got}`, at);
    }
    comparisons.push([op, n]);
  }
  if (comparisons.length === 2) {
    const [[lowOp, low], [highOp, high]] = comparisons as [[string, number], [string, number]];
    if (!(lowOp === '>' || lowOp === '>=') || !(highOp === '<' || highOp === '<=') || !(low < high)) {
      throw new InvalidEventPatternError(
        'a numeric range is [">" or ">=", low, "<" or "<=", high] with low below high',
        at,
      );
    }
  }
  return (v) =>
    typeof v === 'number' &&
    comparisons.every(([op, n]) => {
      switch (op) {
        case '<':
          return v < n;
        case '<=':
          return v <= n;
        case '=':
          return v === n;
        case '>':
          return v > n;
        default:
          return v >= n;
      }
    });
}

function cidrTest(arg: unknown, at: string[]): ValueTest {
  const cidr = requireString(arg, at);
  const parts = cidr.split('/');
  const [address, bitsText] = parts;
  // Mask bits as Java's Integer.parseInt reads them (event-ruler): an optional sign, then decimal digits. `|| 0`
  // turns "-0" into 0, which BlockList needs (it aborts the process on -0).
  const bits = /^[+-]?\d+$/.test(bitsText ?? '') ? Number(bitsText) || 0 : Number.NaN;
  const family = address && isIPv4(address) ? 'ipv4' : address && isIPv6(address) ? 'ipv6' : undefined;
  // Mask bits below 32 (IPv4) or 128 (IPv6): event-ruler's CIDR.cidr refuses a /32 or /128 block.
  if (parts.length !== 2 || !family || !(bits >= 0 && bits < (family === 'ipv4' ? 32 : 128))) {
    throw new InvalidEventPatternError(`not a CIDR block: ${JSON.stringify(cidr)}`, at);
  }
  const list = new BlockList();
  list.addSubnet(address as string, bits, family);
  return (v) => {
    if (typeof v !== 'string') return false;
    if (isIPv4(v)) return family === 'ipv4' && list.check(v, 'ipv4');
    if (isIPv6(v)) return family === 'ipv6' && list.check(v, 'ipv6');
    return false;
  };
}

/**
 * equals-ignore-case as event-ruler does it: each UTF-16 unit of the operand matches its own lower-case or
 * upper-case form (Locale.ROOT, which is what JavaScript's case mapping is), and nothing else. So "ß" matches
 * "SS", the Kelvin sign matches "k" but not "K", and the event's text is never folded.
 */
function ignoreCaseRegExp(operand: string, anchor: 'whole' | 'prefix' | 'suffix'): RegExp {
  let source = '';
  for (let i = 0; i < operand.length; i++) {
    const c = operand[i] as string;
    const forms = [...new Set([c.toLowerCase(), c.toUpperCase()])].map(escapeRegExp);
    source += forms.length === 1 ? forms[0] : `(?:${forms.join('|')})`;
  }
  return new RegExp(anchor === 'whole' ? `^${source}$` : anchor === 'prefix' ? `^${source}` : `${source}$`);
}

/** `*` matches any run of characters; `\*` and `\\` are literal; `**` is refused as AWS does. */
function wildcardRegExp(pattern: string, at: string[]): RegExp {
  let source = '';
  for (const token of wildcardTokens(pattern, at))
    source += token === STAR ? '[\\s\\S]*' : escapeRegExp(token);
  return new RegExp(`^${source}$`);
}

const STAR = Symbol('*');

/** The operand as literal characters and stars, validated. */
function wildcardTokens(pattern: string, at: string[]): (string | typeof STAR)[] {
  const tokens: (string | typeof STAR)[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const next = pattern[i + 1];
      if (next !== '*' && next !== '\\') {
        throw new InvalidEventPatternError(
          `wildcard escapes only \\* and \\\\: ${JSON.stringify(pattern)}`,
          at,
        );
      }
      tokens.push(next);
      i++;
    } else if (c === '*') {
      if (pattern[i + 1] === '*') {
        throw new InvalidEventPatternError(`consecutive wildcards in ${JSON.stringify(pattern)}`, at);
      }
      tokens.push(STAR);
    } else {
      tokens.push(c);
    }
  }
  return tokens;
}

/**
 * The largest number of wildcard prefixes one input string matches at once, over the distinct wildcard operands
 * of one field (event-ruler's MachineComplexityEvaluator): a prefix of an operand counts when, as a wildcard,
 * it matches the whole input. Explored over the subsets of positions the input can reach; stops past `limit`.
 */
export function wildcardComplexity(operands: string[], limit = MAX_WILDCARD_COMPLEXITY): number {
  const patterns = [...new Set(operands)].map((w) => wildcardTokens(w, []));
  const alphabet = new Set<string>();
  for (const p of patterns) for (const t of p) if (t !== STAR) alphabet.add(t);
  alphabet.add('\u0000'); // stands for every character no operand names
  // A state: for each operand, the prefix lengths that match the input so far (0 = the empty prefix).
  const close = (p: (string | typeof STAR)[], set: Set<number>) => {
    for (let i = 0; i <= p.length; i++) if (set.has(i) && p[i] === STAR) set.add(i + 1);
    return set;
  };
  const start = patterns.map((p) => close(p, new Set([0])));
  const key = (state: Set<number>[]) => state.map((s) => [...s].sort((a, b) => a - b).join(',')).join('|');
  const count = (state: Set<number>[]) => state.reduce((n, s) => n + s.size - (s.has(0) ? 1 : 0), 0);
  const seen = new Set([key(start)]);
  const queue = [start];
  let max = 0;
  while (queue.length > 0) {
    const state = queue.shift() as Set<number>[];
    max = Math.max(max, count(state));
    if (max > limit || seen.size > 20_000) return Math.max(max, limit + 1);
    for (const c of alphabet) {
      const next = patterns.map((p, k) => {
        const out = new Set<number>();
        for (const i of state[k] as Set<number>) {
          if (p[i] === c) out.add(i + 1);
          if (i > 0 && p[i - 1] === STAR) out.add(i);
        }
        return close(p, out);
      });
      const id = key(next);
      if (!seen.has(id)) {
        seen.add(id);
        queue.push(next);
      }
    }
  }
  return max;
}

function checkWildcardComplexity(conjunct: Conjunct): void {
  for (const [path, leaf] of conjunct) {
    if (leaf.wildcards.length === 0) continue;
    const complexity = wildcardComplexity(leaf.wildcards);
    if (complexity > MAX_WILDCARD_COMPLEXITY) {
      throw new InvalidEventPatternError(
        `the wildcards are too complex: more than ${MAX_WILDCARD_COMPLEXITY} of their prefixes can match one value at once`,
        path.split('.'),
      );
    }
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function requireString(arg: unknown, at: string[]): string {
  if (typeof arg !== 'string')
    throw new InvalidEventPatternError(`expected a string, got ${JSON.stringify(arg)}`, at);
  return arg;
}

function stringOrStrings(arg: unknown, at: string[]): string[] {
  const list = Array.isArray(arg) ? arg : [arg];
  if (list.length === 0) throw new InvalidEventPatternError('empty list', at);
  return list.map((x) => requireString(x, at));
}

// ---------------------------------------------------------------- match

/** Every leaf value of the event by dotted path, with the array elements it sits in. */
function flattenEvent(event: Record<string, unknown>): Map<string, Field[]> {
  const fields = new Map<string, Field[]>();
  let arrays = 0;
  const walk = (value: unknown, path: string, trail: [number, number][]) => {
    if (Array.isArray(value)) {
      const id = arrays++;
      for (const [i, element] of value.entries()) walk(element, path, [...trail, [id, i]]);
    } else if (isPlainObject(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k, trail);
    } else {
      // the root is an object, so a leaf always has a path; "" is the path of a top-level key "", as in event-ruler
      const list = fields.get(path);
      if (list) list.push({ value, trail });
      else fields.set(path, [{ value, trail }]);
    }
  };
  walk(event, '', []);
  return fields;
}

/**
 * Chooses one event value per pattern path such that no two come from different elements of one array. Paths
 * go in sorted order, as event-ruler's state machine takes them; exists:false holds at its turn when no value
 * at its path is consistent with the elements chosen so far (so {"a": ["x"], "b": [{"exists": false}]}
 * matches an array element with a = "x" and no b, even if another element has a b).
 */
function matchConjunct(conjunct: Conjunct, fields: Map<string, Field[]>): boolean {
  const entries = [...conjunct].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const chosen = new Map<number, number>();
  const consistent = (f: Field) => f.trail.every(([id, i]) => !chosen.has(id) || chosen.get(id) === i);
  const pick = (k: number): boolean => {
    const entry = entries[k];
    if (!entry) return true;
    const [path, leaf] = entry;
    const present = (fields.get(path) ?? []).filter(consistent);
    for (const field of present) {
      if (!leaf.tests.some((test) => test(field.value))) continue;
      const added = field.trail.filter(([id]) => !chosen.has(id));
      for (const [id, i] of added) chosen.set(id, i);
      if (pick(k + 1)) return true;
      for (const [id] of added) chosen.delete(id);
    }
    return leaf.matchesAbsent && present.length === 0 && pick(k + 1);
  };
  return pick(0);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
