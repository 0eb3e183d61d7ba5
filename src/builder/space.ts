// Running out of space has two causes that need opposite answers. The stream's volume full: grow the volume
// and apply again. The builder's own data folder full (state files, manifests, snapshot blocks, and locally
// the volume's sparse backing file): growing the volume makes it worse; the build waits until space returns.

import { statfsSync } from 'node:fs';
import { DependencyError } from '#errors';

/** Free bytes for an unprivileged writer on the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

export function isOutOfSpace(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code === 'ENOSPC' || /\bENOSPC\b|No space left on device/.test(e?.message ?? '');
}

/** A write error the volume's filesystem reports when its backing store failed under it (loop on a full host). */
export function isIoError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code === 'EIO' || /\bEIO\b|Input\/output error/.test(e?.message ?? '');
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** The builder's data folder lacks the room a build needs: not the build's fault, retried when space returns. */
export class DataFolderFullError extends DependencyError {
  override readonly name = 'DataFolderFullError';
  readonly path: string;
  readonly free: number;
  readonly needed: number;
  constructor(path: string, free: number, needed: number, options?: { cause?: unknown }) {
    super(`data folder full: ${mib(free)} free, ${mib(needed)} needed (${path})`, options);
    this.path = path;
    this.free = free;
    this.needed = needed;
  }
}

export interface HostSpace {
  /** The builder's own data folder. */
  dir: string;
  /** Free bytes a build needs there to start, and below which an error is blamed on it. */
  neededBytes: number;
  /** statfs by default; tests pass their own. */
  free?: (path: string) => number;
}

/** Throws DataFolderFullError when the data folder has less room than a build needs. */
export function requireHostSpace(host: HostSpace | undefined, cause?: unknown): void {
  if (!host) return;
  const free = (host.free ?? freeBytes)(host.dir);
  if (free < host.neededBytes)
    throw new DataFolderFullError(host.dir, free, host.neededBytes, cause === undefined ? {} : { cause });
}

/**
 * What an error during the write of a revision means: `host` when the data folder is short of space (the
 * error is then a DataFolderFullError), `volume` when the stream's volume is full, `other` otherwise.
 */
export function classifySpaceError(
  err: unknown,
  host: HostSpace | undefined,
): { kind: 'host'; error: DataFolderFullError } | { kind: 'volume' } | { kind: 'other' } {
  if (err instanceof DataFolderFullError) return { kind: 'host', error: err };
  if (isOutOfSpace(err) || isIoError(err)) {
    try {
      requireHostSpace(host, err);
    } catch (full) {
      if (full instanceof DataFolderFullError) return { kind: 'host', error: full };
      throw full;
    }
    if (isOutOfSpace(err)) return { kind: 'volume' };
  }
  return { kind: 'other' };
}
