// EventBridge event-pattern matching, as the local bus needs it. Written here because no well-kept npm package
// implements the current operator set (the published matchers are unmaintained or cover exact/prefix only).
// Semantics follow the EventBridge user guide (“Comparison operators for use in event patterns”):
//  - an object in the pattern matches the same object in the event; every field must match (AND);
//  - a leaf is a non-empty array of matchers, any of which may match (OR);
//  - where the event holds an array, the pattern matches if any element matches; for arrays of objects each
//    element is matched as a whole (fields of two different elements never combine);
//  - `$or` holds alternative sub-patterns at any object level;
//  - exists:false matches a path that has no leaf value (absent, an object, or an empty array).
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { LocalServiceError } from './errors.ts';

export class InvalidEventPatternError extends LocalServiceError {
  constructor(reason: string, path: string[]) {
    const at = path.length ? ` at ${path.join('.')}` : '';
    super('InvalidEventPatternException', `Event pattern is not valid${at}: ${reason}`);
  }
}

type Value = unknown;
type ValueTest = (value: Value) => boolean;

interface Leaf {
  kind: 'leaf';
  tests: ValueTest[];
  /** true when the leaf holds exists:false */
  matchesAbsent: boolean;
}
interface Node {
  kind: 'node';
  fields: [string, Node | Leaf][];
  /** each `$or` at this level: a list of alternative nodes */
  ors: Node[][];
}

export type EventPatternMatcher = (event: unknown) => boolean;

/** Compiles a pattern (JSON text or object); throws InvalidEventPatternException naming the fault and its path. */
export function compileEventPattern(pattern: string | object): EventPatternMatcher {
  let parsed: unknown = pattern;
  if (typeof pattern === 'string') {
    try {
      parsed = JSON.parse(pattern);
    } catch (err) {
      throw new InvalidEventPatternError(`not JSON (${(err as Error).message})`, []);
    }
  }
  if (!isPlainObject(parsed) || Object.keys(parsed).length === 0) {
    throw new InvalidEventPatternError('the pattern must be a non-empty JSON object', []);
  }
  const root = compileNode(parsed, []);
  return (event) => matchNode(root, isPlainObject(event) ? event : undefined);
}

/** TestEventPattern: true if `event` matches `pattern`. */
export function testEventPattern(pattern: string | object, event: unknown): boolean {
  return compileEventPattern(pattern)(event);
}

// ---------------------------------------------------------------- compile

function compileNode(obj: Record<string, unknown>, path: string[]): Node {
  const node: Node = { kind: 'node', fields: [], ors: [] };
  for (const [key, value] of Object.entries(obj)) {
    const at = [...path, key];
    if (key === '$or') {
      if (!Array.isArray(value) || value.length < 2 || !value.every(isPlainObject)) {
        throw new InvalidEventPatternError('$or takes an array of at least two pattern objects', at);
      }
      node.ors.push(
        value.map((alt, i) => {
          if (Object.keys(alt).length === 0) throw new InvalidEventPatternError('empty $or alternative', at);
          return compileNode(alt, [...at, String(i)]);
        }),
      );
    } else if (Array.isArray(value)) {
      node.fields.push([key, compileLeaf(value, at)]);
    } else if (isPlainObject(value)) {
      if (Object.keys(value).length === 0) throw new InvalidEventPatternError('empty object', at);
      node.fields.push([key, compileNode(value, at)]);
    } else {
      throw new InvalidEventPatternError(
        `match values must be in an array, e.g. [${JSON.stringify(value)}], not ${JSON.stringify(value)}`,
        at,
      );
    }
  }
  return node;
}

function compileLeaf(matchers: unknown[], path: string[]): Leaf {
  if (matchers.length === 0) throw new InvalidEventPatternError('empty array of match values', path);
  const leaf: Leaf = { kind: 'leaf', tests: [], matchesAbsent: false };
  for (const m of matchers) {
    if (m === null || typeof m === 'string' || typeof m === 'number' || typeof m === 'boolean') {
      leaf.tests.push((v) => v === m);
      continue;
    }
    if (!isPlainObject(m))
      throw new InvalidEventPatternError(`unsupported match value ${JSON.stringify(m)}`, path);
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
      case 'prefix':
      case 'suffix':
        leaf.tests.push(affixTest(op, arg, at));
        break;
      case 'equals-ignore-case': {
        const s = requireString(arg, at);
        leaf.tests.push((v) => typeof v === 'string' && fold(v) === fold(s));
        break;
      }
      case 'wildcard': {
        const re = wildcardRegExp(requireString(arg, at), at);
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
  let affix: string;
  let ignoreCase = false;
  if (isPlainObject(arg)) {
    const keys = Object.keys(arg);
    if (keys.length !== 1 || keys[0] !== 'equals-ignore-case') {
      throw new InvalidEventPatternError(`${op} takes a string or {"equals-ignore-case": string}`, at);
    }
    affix = requireString(arg['equals-ignore-case'], [...at, 'equals-ignore-case']);
    ignoreCase = true;
  } else {
    affix = requireString(arg, at);
  }
  const a = ignoreCase ? fold(affix) : affix;
  return (v) => {
    if (typeof v !== 'string') return false;
    const s = ignoreCase ? fold(v) : v;
    return op === 'prefix' ? s.startsWith(a) : s.endsWith(a);
  };
}

function anythingButTest(arg: unknown, at: string[]): ValueTest {
  // anything-but matches a present value that the inner condition rejects.
  if (isPlainObject(arg)) {
    const keys = Object.keys(arg);
    if (keys.length !== 1) throw new InvalidEventPatternError('anything-but takes one inner operator', at);
    const op = keys[0] as string;
    const inner = arg[op];
    const innerAt = [...at, op];
    let test: ValueTest;
    switch (op) {
      case 'prefix':
      case 'suffix':
        if (typeof inner !== 'string') throw new InvalidEventPatternError(`${op} takes a string`, innerAt);
        test = affixTest(op, inner, innerAt);
        break;
      case 'equals-ignore-case': {
        const list = stringOrStrings(inner, innerAt).map(fold);
        test = (v) => typeof v === 'string' && list.includes(fold(v));
        break;
      }
      case 'wildcard': {
        const res = stringOrStrings(inner, innerAt).map((w) => wildcardRegExp(w, innerAt));
        test = (v) => typeof v === 'string' && res.some((re) => re.test(v));
        break;
      }
      default:
        throw new InvalidEventPatternError(
          `anything-but supports a value, a list, prefix, suffix, equals-ignore-case or wildcard, not ${op}`,
          innerAt,
        );
    }
    return (v) => !test(v);
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
      throw new InvalidEventPatternError(`numeric operand must be a number, got ${JSON.stringify(n)}`, at);
    }
    comparisons.push([op, n]);
  }
  if (comparisons.length === 2) {
    const [[lowOp, low], [highOp, high]] = comparisons as [[string, number], [string, number]];
    if (!lowOp.startsWith('>') || !highOp.startsWith('<') || low > high) {
      throw new InvalidEventPatternError('a numeric range is [">" or ">=", low, "<" or "<=", high]', at);
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
  const [address, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const family = address && isIPv4(address) ? 'ipv4' : address && isIPv6(address) ? 'ipv6' : undefined;
  if (!family || !Number.isInteger(bits) || bits < 0 || bits > (family === 'ipv4' ? 32 : 128)) {
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

/** `*` matches any run of characters; `\*` and `\\` are literal; `**` is refused as AWS does. */
function wildcardRegExp(pattern: string, at: string[]): RegExp {
  let source = '';
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
      source += escapeRegExp(next);
      i++;
    } else if (c === '*') {
      if (pattern[i + 1] === '*') {
        throw new InvalidEventPatternError(`consecutive wildcards in ${JSON.stringify(pattern)}`, at);
      }
      source += '[\\s\\S]*';
    } else {
      source += escapeRegExp(c);
    }
  }
  return new RegExp(`^${source}$`);
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

function fold(s: string): string {
  return s.toLowerCase();
}

// ---------------------------------------------------------------- match

function matchNode(node: Node, obj: Record<string, unknown> | undefined): boolean {
  for (const [key, sub] of node.fields) {
    const value = obj?.[key];
    if (!(sub.kind === 'leaf' ? matchLeaf(sub, value) : matchNested(sub, value))) return false;
  }
  return node.ors.every((alternatives) => alternatives.some((alt) => matchNode(alt, obj)));
}

function matchNested(node: Node, value: unknown): boolean {
  if (isPlainObject(value)) return matchNode(node, value);
  if (Array.isArray(value)) {
    const objects = value.flat(Number.POSITIVE_INFINITY).filter(isPlainObject);
    if (objects.length > 0) return objects.some((element) => matchNode(node, element));
  }
  // No object here: only patterns satisfied by absent fields (exists:false) can match.
  return matchNode(node, undefined);
}

function matchLeaf(leaf: Leaf, value: unknown): boolean {
  const values = leafValues(value);
  if (values.length === 0) return leaf.matchesAbsent;
  return values.some((v) => leaf.tests.some((test) => test(v)));
}

function leafValues(value: unknown): unknown[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value.flat(Number.POSITIVE_INFINITY).filter((v) => !isPlainObject(v));
  if (isPlainObject(value)) return [];
  return [value];
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
