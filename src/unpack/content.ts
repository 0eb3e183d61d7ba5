// How a file's content is identified in the manifest: up to one 64 KiB window, sha256 of the body; above
// that, sha256 of its windows' digests (128 bits of sha256 per window, which the manifest keeps so that a
// large file can be patched window by window). src/builder/verify.ts recomputes the same from disk.
import { createHash, type Hash, hash } from 'node:crypto';

/** Content is compared and written in windows of this size; the manifest keeps one digest per window. */
export const WINDOW = 64 * 1024;
/** Bodies up to this size are read whole before anything is decided. */
export const WHOLE_BODY_MAX = 1024 * 1024;
/** A file sharing its inode with hardlinks cannot be patched in place; up to this size it is buffered so
 *  an unchanged one keeps its inode. */
export const SHARED_BODY_MAX = 16 * 1024 * 1024;

const DIGEST_BYTES = 16;
const ZEROS = Buffer.alloc(WINDOW);
/** The digest of a window of zeros: a hole of a sparse file costs no hashing. */
const ZERO_WINDOW_DIGEST = windowDigest(ZEROS);
/** Many zero-window digests in a row, fed to the outer hash at once for long holes. */
const ZERO_DIGEST_RUN = Buffer.concat(Array.from({ length: 4096 }, () => ZERO_WINDOW_DIGEST));

/** 128 bits of sha256 per window: enough to tell changed windows apart, half the manifest size. */
export function windowDigest(chunk: Buffer): Buffer {
  return hash('sha256', chunk, 'buffer').subarray(0, DIGEST_BYTES);
}

export interface ContentId {
  /** sha256 hex: of the body up to one window, of the window digests above. */
  h: string;
  /** The window digests (files above one window, when kept). */
  windows?: Buffer[];
}

/**
 * The content id of a body fed in order, piece by piece (and holes, for sparse files). A window is closed
 * only once a byte past it arrives, so a body of exactly one window is hashed as a whole body.
 */
export class ContentDigest {
  private readonly keepWindows: boolean;
  private window: Hash | null = null;
  private windowFill = 0;
  /** A window's bytes when they arrived as one piece: hashed in one call when it closes. */
  private windowPiece: Buffer | null = null;
  private readonly outer = createHash('sha256');
  private readonly windows: Buffer[] = [];
  private closed = 0;
  total = 0;

  constructor(keepWindows: boolean) {
    this.keepWindows = keepWindows;
  }

  update(piece: Buffer): void {
    let at = 0;
    while (at < piece.length) {
      if (this.windowFill === WINDOW) this.closeWindow();
      const take = Math.min(WINDOW - this.windowFill, piece.length - at);
      const part = piece.subarray(at, at + take);
      if (this.windowFill === 0 && this.window === null) {
        this.windowPiece = part;
      } else {
        if (!this.window) {
          this.window = createHash('sha256');
          if (this.windowPiece) this.window.update(this.windowPiece);
          this.windowPiece = null;
        }
        this.window.update(part);
      }
      this.windowFill += take;
      this.total += take;
      at += take;
    }
  }

  /** n bytes of zeros (a hole). */
  zeros(n: number): void {
    let left = n;
    if (this.windowFill > 0 && this.windowFill < WINDOW) {
      const take = Math.min(WINDOW - this.windowFill, left);
      this.update(ZEROS.subarray(0, take));
      left -= take;
    }
    if (left === 0) return;
    if (this.windowFill === WINDOW) this.closeWindow();
    // Whole zero windows that more bytes follow go by their known digest; the last stays open.
    let whole = Math.floor((left - 1) / WINDOW);
    left -= whole * WINDOW;
    while (whole > 0) {
      const run = Math.min(whole, ZERO_DIGEST_RUN.length / DIGEST_BYTES);
      this.outer.update(ZERO_DIGEST_RUN.subarray(0, run * DIGEST_BYTES));
      if (this.keepWindows) for (let i = 0; i < run; i++) this.windows.push(ZERO_WINDOW_DIGEST);
      this.closed += run;
      this.total += run * WINDOW;
      whole -= run;
    }
    this.update(ZEROS.subarray(0, left));
  }

  private closeWindow(): void {
    const digest = this.windowPiece
      ? windowDigest(this.windowPiece)
      : (this.window ?? createHash('sha256')).digest().subarray(0, DIGEST_BYTES);
    this.outer.update(digest);
    if (this.keepWindows) this.windows.push(digest);
    this.closed++;
    this.window = null;
    this.windowPiece = null;
    this.windowFill = 0;
  }

  /** The content id; the digest must not be fed afterwards. */
  finish(): ContentId {
    if (this.closed === 0) {
      // One window at most: the body's own sha256.
      if (this.windowPiece) return { h: hash('sha256', this.windowPiece, 'hex') };
      return { h: (this.window ?? createHash('sha256')).digest('hex') };
    }
    if (this.windowFill > 0) this.closeWindow();
    return { h: this.outer.digest('hex'), windows: this.keepWindows ? this.windows : undefined };
  }

  /** Windows closed so far: the index of the window the next byte falls in. */
  get windowsClosed(): number {
    return this.closed;
  }
}
