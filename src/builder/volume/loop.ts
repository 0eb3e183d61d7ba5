// Loop devices: the local stand-in for an attached disk, and the way to reach one partition of a disk on a
// kernel without partition-table support (a loop device at the partition's offset and size).
import { accessSync, constants, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { run } from './exec.ts';

/** Attaches a file or block device (whole, or a byte range of it) to a free loop device; returns its path. */
export async function attachLoop(
  backing: string,
  range?: { offset: number; sizeLimit: number },
  opts: { readOnly?: boolean } = {},
): Promise<string> {
  const args = ['--find', '--show'];
  if (range) args.push('--offset', String(range.offset), '--sizelimit', String(range.sizeLimit));
  if (opts.readOnly) args.push('--read-only');
  args.push(backing);
  const device = (await run('losetup', args)).trim();
  if (!device.startsWith('/dev/loop')) throw new Error(`losetup ${backing}: unexpected output ${device}`);
  return device;
}

export async function detachLoop(device: string): Promise<void> {
  await run('losetup', ['--detach', device]);
}

/** Re-reads the size of the loop device's backing file (after the file grew). */
export async function refreshLoopCapacity(device: string): Promise<void> {
  await run('losetup', ['--set-capacity', device]);
}

/** The loop devices currently backed by `file`. */
export async function loopsOf(file: string): Promise<string[]> {
  const out = await run('losetup', ['--associated', file, '--noheadings', '--output', 'NAME']).catch(
    () => '',
  );
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * Where to read or write a whole disk fast: a loop device over a whole regular file is served by that file (reads
 * through the loop driver ran at ~55 MB/s here, the file at GB/s; the loop writes through the file's page cache,
 * so both see the same bytes). Any other device is itself.
 */
export function fastPathOf(device: string): string {
  if (!device.startsWith('/dev/loop')) return device;
  const sys = `/sys/block/${basename(device)}/loop`;
  try {
    const offset = Number(readFileSync(`${sys}/offset`, 'utf8').trim());
    const sizeLimit = Number(readFileSync(`${sys}/sizelimit`, 'utf8').trim());
    const file = readFileSync(`${sys}/backing_file`, 'utf8').trim();
    if (offset !== 0 || sizeLimit !== 0 || !file.startsWith('/') || file.endsWith(' (deleted)'))
      return device;
    return file;
  } catch {
    return device;
  }
}

/** Sectors (512 B) written to a block device since it was set up, from the block layer's statistics. */
export function sectorsWritten(device: string): number {
  const stat = readFileSync(`/sys/block/${basename(device)}/stat`, 'utf8')
    .trim()
    .split(/\s+/);
  const value = Number(stat[6]);
  if (!Number.isFinite(value))
    throw new Error(`/sys/block/${basename(device)}/stat: no sectors-written field`);
  return value;
}

let loopSupport: { ok: true } | { ok: false; reason: string } | undefined;

/** Whether this process can use loop devices: root, and a loop driver. Cached. */
export function loopSupported(): { ok: true } | { ok: false; reason: string } {
  if (loopSupport) return loopSupport;
  if (process.getuid?.() !== 0) loopSupport = { ok: false, reason: 'not running as root' };
  else {
    try {
      accessSync('/dev/loop-control', constants.R_OK | constants.W_OK);
      loopSupport = { ok: true };
    } catch {
      loopSupport = { ok: false, reason: 'no /dev/loop-control (loop driver missing)' };
    }
  }
  return loopSupport;
}
