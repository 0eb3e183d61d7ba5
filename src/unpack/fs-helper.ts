// What Node cannot do itself: extended attributes (no xattr API), device nodes and FIFOs (no mknod) and exact
// nanosecond times (Node takes seconds as a double: 1795296382.540854 lands 23 ns early, and a time before
// 1970 becomes the current time). One perl process per batch makes the system calls directly through
// syscall() (perl-base is part of every Debian system, and a native addon would need a compiler on every
// builder). The file writer's thread queues requests as the apply goes and runs a batch only when the main
// thread needs them done (a hardlink to a new node, a removal) and at the end: one or two processes per
// apply, none of them on the main thread.
import { spawnSync } from 'node:child_process';
import { lstatSync } from 'node:fs';
import type { InodeStamp } from './file-jobs.ts';
import { fsPath, nameBytes } from './names.ts';
import type { XattrList } from './tree-ops.ts';

/** Linux system call numbers, per architecture (asm-generic for arm64). */
const SYSCALLS: Partial<Record<string, Record<string, number>>> = {
  x64: { lsetxattr: 189, lremovexattr: 198, utimensat: 280, mknodat: 259, fchownat: 260, fchmodat: 268 },
  arm64: { lsetxattr: 6, lremovexattr: 15, utimensat: 88, mknodat: 33, fchownat: 54, fchmodat: 53 },
};

/**
 * Reads NUL-separated requests: X path name hex (lsetxattr), R path name (lremovexattr, a missing attribute
 * is no error), T path sec nsec (utimensat without following links), N path type mode major minor uid gid
 * sec nsec (mknodat, then owner, mode and time, in GNU tar's order). Dies on the first failure, naming it.
 */
const SCRIPT = `
use strict; umask 0;
my ($SETX, $REMX, $UTIM, $MKNOD, $CHOWN, $CHMOD) = @ARGV;
my %IFMT = (c => 0020000, b => 0060000, p => 0010000);
local $/ = "\\0";
sub field { my $v = <STDIN>; defined $v or die "truncated request\\n"; chomp $v; return $v; }
sub set_times { my ($p, $s, $n) = @_;
  syscall($UTIM, -100, $p, pack("q4", $s, $n, $s, $n), 0x100) == 0 or die "utimensat $p: $!\\n"; }
while (defined(my $op = <STDIN>)) {
  chomp $op;
  my $p = field();
  if ($op eq 'X') {
    my $name = field(); my $value = pack("H*", field());
    syscall($SETX, $p, $name, $value, length($value), 0) == 0 or die "lsetxattr $name on $p: $!\\n";
  } elsif ($op eq 'R') {
    my $name = field();
    syscall($REMX, $p, $name) == 0 or $!{ENODATA} or die "lremovexattr $name on $p: $!\\n";
  } elsif ($op eq 'T') {
    set_times($p, field(), field());
  } elsif ($op eq 'N') {
    # Numbers as numbers: syscall() passes a string as a pointer.
    my ($type, $mode, $major, $minor, $uid, $gid, $s, $n) = map { field() } 1 .. 8;
    ($mode, $major, $minor, $uid, $gid) = map { 0 + $_ } ($mode, $major, $minor, $uid, $gid);
    my $dev = ($minor & 0xff) | ($major << 8) | (($minor & ~0xff) << 12);
    syscall($MKNOD, -100, $p, $IFMT{$type} | $mode, $dev) == 0 or die "mknod $p: $!\\n";
    syscall($CHOWN, -100, $p, $uid, $gid, 0x100) == 0 or die "chown $p: $!\\n";
    syscall($CHMOD, -100, $p, $mode, 0) == 0 or die "chmod $p: $!\\n";
    set_times($p, $s, $n);
  } else { die "unknown request $op\\n"; }
}
`;

export type NodeType = 'char' | 'block' | 'fifo';

/** The largest device numbers mknodat(2) takes (12-bit major, 20-bit minor). */
export const MAX_DEV_MAJOR = 0xfff;
export const MAX_DEV_MINOR = 0xfffff;

/** Requests for one perl process, in order. Paths are absolute, as bytes. */
export class FsHelperBatch {
  private parts: Buffer[] = [];
  private count = 0;
  private readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  get size(): number {
    return this.count;
  }

  private push(op: string, path: Buffer, fields: Array<string | number>): void {
    this.parts.push(Buffer.from(`${op}\0`), path, Buffer.from(`\0${fields.map((f) => `${f}\0`).join('')}`));
    this.count++;
  }

  setXattr(path: Buffer, name: string, value: Uint8Array): void {
    // Values cross threads by structured clone, which delivers a Uint8Array, not a Buffer.
    this.push('X', path, [
      name,
      Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex'),
    ]);
  }

  removeXattr(path: Buffer, name: string): void {
    this.push('R', path, [name]);
  }

  /** Exact time; sec is the floor (-2.5 s is sec -3, nsec 5e8). */
  setTimes(path: Buffer, sec: number, nsec: number): void {
    this.push('T', path, [sec, nsec]);
  }

  mknod(
    path: Buffer,
    node: { type: NodeType; mode: number; major: number; minor: number; uid: number; gid: number },
    sec: number,
    nsec: number,
  ): void {
    const type = node.type === 'char' ? 'c' : node.type === 'block' ? 'b' : 'p';
    this.push('N', path, [type, node.mode & 0o7777, node.major, node.minor, node.uid, node.gid, sec, nsec]);
  }

  /** Runs what is queued (in one process) and empties the batch. */
  run(): void {
    if (this.count === 0) return;
    const input = Buffer.concat(this.parts);
    this.parts = [];
    this.count = 0;
    const nr = SYSCALLS[process.arch];
    if (!nr)
      throw new Error(
        `extended attributes, device nodes and exact times are not supported on ${process.arch}`,
      );
    const args = [nr.lsetxattr, nr.lremovexattr, nr.utimensat, nr.mknodat, nr.fchownat, nr.fchmodat].map(
      String,
    );
    const result = spawnSync('perl', ['-e', SCRIPT, ...args], {
      input,
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    if (result.status !== 0) {
      throw new Error(
        `setting attributes, nodes or times under ${this.root} failed: ${result.error?.message ?? result.stderr.trim()}`,
      );
    }
  }
}

/** Attribute and exact-time requests for regular files, as the file writer makes them. */
export interface AttributeRequests {
  /** `file`: a regular file, whose inode stamp is taken again once the request has run. */
  xattrs(rel: string, set: XattrList, remove: string[], file?: boolean): void;
  times(rel: string, sec: number, nsec: number, file?: boolean): void;
}

/** Queued requests run once this many are waiting. */
const HELPER_BATCH = 4096;

/**
 * The writer thread's requests, in the order they were made, run as one helper batch at a time; the
 * regular files they touched are stamped again afterwards (a helper request changes a file's ctime).
 */
export class HelperRequests implements AttributeRequests {
  readonly batch: FsHelperBatch;
  private readonly root: string;
  private readonly restamp = new Set<string>();
  private restamped: Array<[string, InodeStamp | null]> = [];

  constructor(root: string) {
    this.root = root;
    this.batch = new FsHelperBatch(root);
  }

  absBytes(rel: string): Buffer {
    return nameBytes(rel === '' ? this.root : `${this.root}/${rel}`);
  }

  xattrs(rel: string, set: XattrList, remove: string[], file = false): void {
    const path = this.absBytes(rel);
    for (const [name, value] of set) this.batch.setXattr(path, name, value);
    for (const name of remove) this.batch.removeXattr(path, name);
    if (file) this.restamp.add(rel);
    if (this.batch.size >= HELPER_BATCH) this.run();
  }

  times(rel: string, sec: number, nsec: number, file = false): void {
    this.batch.setTimes(this.absBytes(rel), sec, nsec);
    if (file) this.restamp.add(rel);
    if (this.batch.size >= HELPER_BATCH) this.run();
  }

  /** Stamps these files again at the next run (after a hardlink to them, say). */
  stampAgain(rels: string[]): void {
    for (const rel of rels) this.restamp.add(rel);
  }

  /** Runs what is queued; the files it touched are stamped again (see takeRestamps). */
  run(): void {
    this.batch.run();
    for (const rel of this.restamp) {
      const st = lstatSync(fsPath(`${this.root}/${rel}`), { throwIfNoEntry: false });
      this.restamped.push([rel, st?.isFile() ? [st.ino, st.mtimeMs, st.ctimeMs] : null]);
    }
    this.restamp.clear();
  }

  /** The stamps taken again since the last call. */
  takeRestamps(): Array<[string, InodeStamp | null]> {
    const out = this.restamped;
    this.restamped = [];
    return out;
  }
}
