// The record of the last apply, kept outside the image tree. One JSON header line, then one line per
// path. An apply first replaces it with an "in-progress" header (fsynced), so a failed or interrupted
// apply leaves a manifest that no later apply trusts.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { EntryType } from './tar-reader.ts';

export const MANIFEST_FORMAT = 'stemcell-unpack-manifest';
export const MANIFEST_VERSION = 1;

export interface ManifestRecord {
  t: EntryType;
  /** size, content hash (sha256 hex), 64 KiB window digests (files larger than one window) */
  s?: number;
  h?: string;
  b?: string[];
  m?: number;
  u?: number;
  g?: number;
  /** mtime: whole seconds and nanoseconds (omitted when 0) */
  mt?: number;
  mn?: number;
  /** xattrs, values base64 */
  x?: Record<string, string>;
  /** symlink target, or hardlink target path */
  l?: string;
  r?: [number, number];
  /** a directory the archive implied but did not list */
  i?: 1;
  /**
   * A regular file as the disk held it when the apply ended: inode number, mtime and ctime. The next apply
   * takes the manifest's word for the file's content only while the disk still agrees (file-writer.ts).
   */
  n?: [ino: number, mtimeMs: number, ctimeMs: number];
}

export interface TargetIdentity {
  realpath: string;
  ino: number;
  birthtimeMs: number;
}

interface ManifestHeader {
  format: string;
  version: number;
  state: 'complete' | 'in-progress';
  target: TargetIdentity;
  inputSha256?: string;
  entries?: number;
  writtenAt: string;
}

export function targetIdentity(root: string): TargetIdentity {
  const st = statSync(root);
  return { realpath: root, ino: st.ino, birthtimeMs: st.birthtimeMs };
}

export type LoadedManifest =
  | { valid: true; records: Map<string, ManifestRecord> }
  | { valid: false; reason: string };

export function loadManifest(path: string, identity: TargetIdentity): LoadedManifest {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { valid: false, reason: 'no manifest' };
    throw err;
  }
  const lines = text.split('\n');
  let header: ManifestHeader;
  try {
    header = JSON.parse(lines[0] ?? '') as ManifestHeader;
  } catch {
    return { valid: false, reason: 'unreadable manifest header' };
  }
  if (header.format !== MANIFEST_FORMAT || header.version !== MANIFEST_VERSION) {
    return { valid: false, reason: 'manifest of another format or version' };
  }
  if (header.state !== 'complete') return { valid: false, reason: 'the last apply did not complete' };
  const t = header.target;
  // The filesystem, not where it is mounted: the builder may mount the same volume elsewhere next time.
  if (t?.ino !== identity.ino || t.birthtimeMs !== identity.birthtimeMs) {
    return { valid: false, reason: 'manifest belongs to another target' };
  }
  const records = new Map<string, ManifestRecord>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const tab = line.indexOf('\t');
    try {
      records.set(
        JSON.parse(line.slice(0, tab)) as string,
        JSON.parse(line.slice(tab + 1)) as ManifestRecord,
      );
    } catch {
      return { valid: false, reason: `corrupt manifest line ${i + 1}` };
    }
  }
  if (header.entries !== undefined && header.entries !== records.size) {
    return { valid: false, reason: 'truncated manifest' };
  }
  return { valid: true, records };
}

function writeDurably(path: string, chunks: Iterable<string>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    let pending = '';
    for (const chunk of chunks) {
      pending += chunk;
      if (pending.length > 1 << 20) {
        writeSync(fd, pending);
        pending = '';
      }
    }
    if (pending) writeSync(fd, pending);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** Written before the tree is touched: from here until markComplete, the manifest is invalid. */
export function markInProgress(path: string, identity: TargetIdentity): void {
  const header: ManifestHeader = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    state: 'in-progress',
    target: identity,
    writtenAt: new Date().toISOString(),
  };
  writeDurably(path, [`${JSON.stringify(header)}\n`]);
}

export function writeCompleteManifest(
  path: string,
  identity: TargetIdentity,
  inputSha256: string,
  records: Iterable<[string, ManifestRecord]>,
  count: number,
): void {
  const header: ManifestHeader = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    state: 'complete',
    target: identity,
    inputSha256,
    entries: count,
    writtenAt: new Date().toISOString(),
  };
  function* lines(): Generator<string> {
    yield `${JSON.stringify(header)}\n`;
    for (const [p, rec] of records) yield `${JSON.stringify(p)}\t${JSON.stringify(rec)}\n`;
  }
  writeDurably(path, lines());
}
