// Extended attributes through the `attr` package's tools: Node has no xattr API, and one setfattr
// process per batch (--restore reads many files' attributes at once) costs a few milliseconds in all.
import { spawn } from 'node:child_process';

export type XattrMap = Map<string, Buffer>;

/** getfattr / setfattr dump format escapes: every byte outside printable ASCII, and the backslash. */
export function escapeDumpPath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path)) {
    if (byte > 0x20 && byte < 0x7f && byte !== 0x5c) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

export function unescapeDumpPath(text: string): string {
  const bytes: number[] = [];
  const raw = Buffer.from(text, 'latin1');
  for (let i = 0; i < raw.length; i++) {
    if (
      raw[i] === 0x5c &&
      i + 3 < raw.length + 0 &&
      /^[0-7]{3}$/.test(raw.subarray(i + 1, i + 4).toString())
    ) {
      bytes.push(Number.parseInt(raw.subarray(i + 1, i + 4).toString(), 8));
      i += 3;
    } else if (raw[i] === 0x5c && raw[i + 1] === 0x5c) {
      bytes.push(0x5c);
      i += 1;
    } else bytes.push(raw[i]!);
  }
  return Buffer.from(bytes).toString('utf8');
}

function run(cmd: string, args: string[], cwd: string, stdin: string | null, okCodes = [0]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: [stdin === null ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      if (okCodes.includes(code ?? -1)) resolve(Buffer.concat(out).toString('latin1'));
      else reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err.trim()}`));
    });
    if (stdin !== null && child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(stdin, 'latin1');
    }
  });
}

/** Sets attributes on many paths (relative to root) without following symlinks. */
export async function setXattrs(
  root: string,
  items: Array<{ path: string; xattrs: XattrMap }>,
): Promise<void> {
  let dump = '';
  for (const { path, xattrs } of items) {
    if (xattrs.size === 0) continue;
    dump += `# file: ${escapeDumpPath(path)}\n`;
    for (const [name, value] of xattrs) dump += `${name}=0s${value.toString('base64')}\n`;
    dump += '\n';
  }
  if (dump) await run('setfattr', ['-h', '--restore=-'], root, dump);
}

/** Removes the named attributes (grouped by name: setfattr takes one -x per call, many files). */
export async function removeXattrs(
  root: string,
  items: Array<{ path: string; names: string[] }>,
): Promise<void> {
  const byName = new Map<string, string[]>();
  for (const { path, names } of items) {
    for (const name of names) {
      const list = byName.get(name) ?? [];
      list.push(`./${path}`);
      byName.set(name, list);
    }
  }
  for (const [name, paths] of byName) {
    for (let i = 0; i < paths.length; i += 500) {
      await run('setfattr', ['-h', '-x', name, '--', ...paths.slice(i, i + 500)], root, null);
    }
  }
}

/** Every extended attribute under root (paths relative to it), read in one walk without following links. */
export async function dumpXattrs(root: string): Promise<Map<string, XattrMap>> {
  // getfattr exits 1 when it could not read some file (a dangling name); what it printed is still valid.
  const text = await run(
    'getfattr',
    ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'],
    root,
    null,
    [0, 1],
  );
  return parseDump(text);
}

export function parseDump(text: string): Map<string, XattrMap> {
  const result = new Map<string, XattrMap>();
  let current: XattrMap | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      let path = unescapeDumpPath(line.slice(8));
      path = path === '.' ? '' : path.replace(/^\.\//, '');
      current = new Map();
      result.set(path, current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const name = Buffer.from(line.slice(0, eq), 'latin1').toString('utf8');
      const value = line.slice(eq + 1);
      current.set(name, decodeDumpValue(value));
    }
  }
  return result;
}

function decodeDumpValue(value: string): Buffer {
  if (value.startsWith('0s')) return Buffer.from(value.slice(2), 'base64');
  if (value.startsWith('0x')) return Buffer.from(value.slice(2), 'hex');
  if (value.startsWith('"') && value.endsWith('"')) return Buffer.from(unescapeDumpPath(value.slice(1, -1)));
  return Buffer.from(value, 'latin1');
}

export function xattrsEqual(a: XattrMap | null | undefined, b: XattrMap | null | undefined): boolean {
  const sa = a?.size ?? 0;
  const sb = b?.size ?? 0;
  if (sa !== sb) return false;
  if (sa === 0) return true;
  for (const [name, value] of a!) {
    const other = b!.get(name);
    if (!other?.equals(value)) return false;
  }
  return true;
}
