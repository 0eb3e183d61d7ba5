// stemcell's unpacker: apply a root-filesystem tarball to a target tree, safely and incrementally.
import { realpathSync, statSync } from 'node:fs';
import { dirname, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { TreeApplier } from './apply.ts';
import { ByteSource } from './byte-source.ts';
import { RejectedArchiveError } from './errors.ts';
import { resolveLimits, type UnpackLimits } from './limits.ts';
import { loadManifest, markInProgress, targetIdentity, writeCompleteManifest } from './manifest.ts';
import { nextEntry, pumpBody, TarReader } from './tar-reader.ts';
import { dumpXattrs } from './xattrs.ts';

export { ARCHIVE, RejectedArchiveError } from './errors.ts';
export { DEFAULT_LIMITS, type UnpackLimits } from './limits.ts';

export interface ApplyOptions {
  /** Manifest of the last apply, kept OUTSIDE the target tree. Without a valid one the tree is verified. */
  manifestPath?: string;
  limits?: Partial<UnpackLimits>;
  /**
   * Opt-in quick check, as rsync does: with a valid manifest, a file whose size and mtime match it (and whose
   * inode on disk is as the last apply left it) is taken as unchanged and its body is skipped, neither hashed
   * nor compared. Much faster incremental applies; wrong for archives built with clamped mtimes
   * (SOURCE_DATE_EPOCH), where an edit may keep both.
   */
  trustMtime?: boolean;
  onProgress?: (p: { entries: number; bytesIn: number; bytesWritten: number }) => void;
  signal?: AbortSignal;
  /**
   * Runs after the last write and before the manifest is marked complete: the builder flushes the target's
   * filesystem here (syncfs), so a manifest never vouches for writes that could still be lost. A throw leaves
   * the manifest in progress, which no later apply trusts.
   */
  beforeComplete?: () => Promise<void>;
}

export interface ApplyStats {
  entries: number;
  /** Entries created, replaced or whose content was (partly) rewritten. */
  filesWritten: number;
  bytesWritten: number;
  /** Entries whose owner, mode, mtime or xattrs alone were changed. */
  metadataUpdates: number;
  unchanged: number;
  /** Paths in the target that the archive does not hold, removed. */
  removed: number;
  durationMs: number;
  peakRssBytes: number;
  /** sha256 of the raw (compressed) input bytes. */
  inputSha256: string;
  /** True when no valid manifest was there and the tree was verified by stat and content. */
  verified: boolean;
}

const PROGRESS_EVERY = 512;

export async function applyTarball(
  input: NodeJS.ReadableStream | Readable,
  targetDir: string,
  opts: ApplyOptions = {},
): Promise<ApplyStats> {
  const started = performance.now();
  // An input that fails before it is first read (a missing file) must surface through the read, not crash
  // the process as an unhandled 'error' event.
  (input as Readable).on?.('error', () => {});
  const limits = resolveLimits(opts.limits);
  const root = realpathSync(targetDir);
  if (!statSync(root).isDirectory()) throw new Error(`unpack target ${targetDir} is not a directory`);
  const identity = targetIdentity(root);

  let manifestPath: string | undefined;
  if (opts.manifestPath) {
    manifestPath = resolve(opts.manifestPath);
    const manifestDir = realpathSync(dirname(manifestPath));
    const rel = relative(root, manifestDir);
    if (rel === '' || !(rel === '..' || rel.startsWith(`..${sep}`))) {
      throw new Error(`manifest ${opts.manifestPath} must be kept outside the target tree ${root}`);
    }
  }
  const loaded = manifestPath ? loadManifest(manifestPath, identity) : null;
  const old = loaded?.valid ? loaded.records : null;
  // From here on the tree may change: a crash must leave a manifest no later apply trusts.
  if (manifestPath) markInProgress(manifestPath, identity);
  const diskXattrs = old ? new Map() : await dumpXattrs(root);

  const source = new ByteSource(input, limits);
  const reader = new TarReader(source, limits);
  const applier = new TreeApplier(root, old, diskXattrs, source, opts.trustMtime === true);
  const report = () =>
    opts.onProgress?.({
      entries: applier.counters.entries,
      bytesIn: source.bytesIn,
      bytesWritten: applier.counters.bytesWritten,
    });
  try {
    opts.signal?.throwIfAborted();
    await source.open();
    // Synchronous between chunks: the only awaits are for more decompressed bytes.
    for (;;) {
      opts.signal?.throwIfAborted();
      const entry = await nextEntry(reader, source);
      if (!entry) break;
      const sink = applier.apply(entry);
      if (sink) {
        await pumpBody(reader, source, sink);
        applier.bodyDone();
      }
      if (applier.counters.entries % PROGRESS_EVERY === 0) {
        applier.poll();
        report();
      }
    }
    await source.finish();
    applier.finish();
  } catch (err) {
    source.destroy();
    throw err;
  } finally {
    await applier.close();
  }
  report();
  const inputSha256 = await source.inputSha256();
  await opts.beforeComplete?.();
  if (manifestPath) {
    writeCompleteManifest(manifestPath, identity, inputSha256, applier.records(), applier.seen.size);
  }
  return {
    ...applier.counters,
    durationMs: Math.round(performance.now() - started),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    inputSha256,
    verified: old === null,
  };
}

export function isRejected(err: unknown): err is RejectedArchiveError {
  return err instanceof RejectedArchiveError;
}
