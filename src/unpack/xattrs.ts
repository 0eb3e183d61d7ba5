// Reading every extended attribute of a tree in one getfattr walk (Node has no xattr API): what an apply
// without a manifest compares against. Setting and removing them is fs-helper.ts's.
import { spawn } from 'node:child_process';
import { decodeName, nameBytes } from './names.ts';

export type XattrMap = Map<string, Buffer>;

/** The name a dump line spells, byte for byte (names.ts keeps one that is not UTF-8). */
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
  return decodeName(Buffer.from(bytes));
}

function run(cmd: string, args: string[], cwd: string, okCodes: number[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', (e) => reject(new Error(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code) => {
      if (okCodes.includes(code ?? -1)) resolve(Buffer.concat(out).toString('latin1'));
      else reject(new Error(`${cmd} ${args.join(' ')} failed (exit ${code}): ${err.trim()}`));
    });
  });
}

/** Every extended attribute under root (paths relative to it), read in one walk without following links. */
export async function dumpXattrs(root: string): Promise<Map<string, XattrMap>> {
  // getfattr exits 1 when it could not read some file (a dangling name); what it printed is still valid.
  const text = await run('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'base64', '.'], root, [0, 1]);
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
  if (value.startsWith('"') && value.endsWith('"')) return nameBytes(unescapeDumpPath(value.slice(1, -1)));
  return Buffer.from(value, 'latin1');
}
