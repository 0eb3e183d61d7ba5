// What Node cannot do itself, done in one helper process per batch.
//
// Device nodes and FIFOs: Node has no mknod(2). A tiny archive of just those entries, extracted by GNU tar
// in one process, creates them all with their exact mode, owner and mtime (one process per node, as with
// coreutils' mknod, costs ~5 ms each).
import { spawnSync } from 'node:child_process';
import type { TarEntry } from './tar-reader.ts';

function field(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

function paxRecord(key: string, value: string): string {
  const payload = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(payload) + 1;
  while (String(len).length + Buffer.byteLength(payload) !== len)
    len = String(len).length + Buffer.byteLength(payload);
  return `${len}${payload}`;
}

function block(name: string, typeflag: string, size: number, e?: TarEntry): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, 'utf8');
  field(b, 100, 8, e ? e.mode & 0o7777 : 0o644);
  field(b, 108, 8, e && e.uid < 0o7777777 ? e.uid : 0);
  field(b, 116, 8, e && e.gid < 0o7777777 ? e.gid : 0);
  field(b, 124, 12, size);
  field(b, 136, 12, e ? Math.max(0, Math.floor(e.mtime)) : 0);
  b.write(typeflag, 156, 'latin1');
  b.write('ustar\u000000', 257, 'latin1');
  field(b, 329, 8, e?.devmajor ?? 0);
  field(b, 337, 8, e?.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return b;
}

/** seconds + nanoseconds as a PAX decimal, exact (floor seconds: -2.5 s is sec -3, nsec 5e8). */
function mtimeText(sec: number, nsec: number): string {
  if (sec < 0 && nsec > 0) return `-${-(sec + 1)}.${String(1e9 - nsec).padStart(9, '0')}`;
  return `${sec}.${String(nsec).padStart(9, '0')}`;
}

/** An archive of the given nodes; paths relative to the root they will be extracted into. */
export function nodeArchive(nodes: Iterable<[path: string, entry: TarEntry]>): Buffer {
  const parts: Buffer[] = [];
  for (const [path, e] of nodes) {
    // Everything a ustar header cannot hold exactly goes in a PAX header.
    const pax =
      paxRecord('path', path) +
      paxRecord('uid', String(e.uid)) +
      paxRecord('gid', String(e.gid)) +
      paxRecord('mtime', mtimeText(e.mtime, e.mtimeNsec));
    const body = Buffer.from(pax);
    parts.push(block('PaxHeader', 'x', body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
    const typeflag = e.type === 'char' ? '3' : e.type === 'block' ? '4' : '6';
    parts.push(block(Buffer.byteLength(path) <= 99 ? path : 'node', typeflag, 0, e));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Creates the nodes under root with GNU tar (parents must exist and be checked already). */
export function createNodes(root: string, nodes: Iterable<[path: string, entry: TarEntry]>): void {
  const result = spawnSync(
    'tar',
    ['-x', '-p', '--numeric-owner', '--no-overwrite-dir', '-f', '-', '-C', root],
    {
      input: nodeArchive(nodes),
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) {
    throw new Error(
      `creating device nodes under ${root} failed: ${result.error?.message ?? result.stderr.trim()}`,
    );
  }
}

/** utimensat(2) numbers: Node takes times as doubles and cannot set them exactly; perl's syscall() can. */
const UTIMENSAT: Partial<Record<string, number>> = { x64: 280, arm64: 88 };

/**
 * Sets exact (nanosecond) mtimes, without following symlinks, in one perl process (perl-base is part of
 * every Debian system). Only entries with a fractional or negative mtime come here.
 */
export function setPreciseTimes(root: string, entries: Array<[path: string, entry: TarEntry]>): void {
  if (entries.length === 0) return;
  const nr = UTIMENSAT[process.arch];
  if (nr === undefined) throw new Error(`nanosecond mtimes are not supported on ${process.arch}`);
  const script =
    'local $/ = "\\0"; while (defined(my $p = <STDIN>)) { chomp $p; chomp(my $s = <STDIN>); chomp(my $n = <STDIN>);' +
    ' syscall($ARGV[0], -100, $p, pack("q4", $s, $n, $s, $n), 0x100) == 0 or die "utimensat $p: $!\\n"; }';
  const input = entries.map(([path, e]) => `${root}/${path}\0${e.mtime}\0${e.mtimeNsec}\0`).join('');
  const result = spawnSync('perl', ['-e', script, String(nr)], { input, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(
      `setting nanosecond mtimes under ${root} failed: ${result.error?.message ?? result.stderr.trim()}`,
    );
  }
}
