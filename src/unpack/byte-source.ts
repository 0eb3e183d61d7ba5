// The decompressed tar byte stream, read in exact-size pieces, with the archive-wide limits enforced as
// the bytes arrive (so a bomb is stopped after the first bytes past the limit, not after it is inflated).

import { spawn } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { accessSync, constants as fsConstants } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { createGunzip, createZstdDecompress, constants as zlibConstants } from 'node:zlib';
import { ARCHIVE, RejectedArchiveError } from './errors.ts';
import { COMPRESSION_RATIO_GRACE_BYTES, type UnpackLimits } from './limits.ts';

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz';

const CHUNK_BYTES = 256 * 1024;
const tools = new Map<string, boolean>();
/**
 * Whether a tool is on PATH, looked up rather than run (a process per check cost more than some applies).
 * The zstd tool is installed by scripts/setup.sh; Node's own zstd is the fallback.
 */
function onPath(tool: string): boolean {
  let found = tools.get(tool);
  if (found === undefined) {
    found = (process.env.PATH ?? '').split(':').some((dir) => {
      try {
        accessSync(`${dir || '.'}/${tool}`, fsConstants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    tools.set(tool, found);
  }
  return found;
}
const EMPTY = Buffer.alloc(0);

/**
 * The decoder process writes into a socket (libuv's child stdio) whose default buffer holds ~200 KiB. The
 * tree work is synchronous and drains it only between entries, so with that buffer the decoder stalls
 * after a few chunks and the main thread then waits on it, once per chunk: about a third of an apply's main
 * thread sat idle so (bench/unpack.ts, Debian stream). With 4 MiB the decoder runs ahead on the other core.
 */
const DECODER_BUFFER_BYTES = 4 * 1024 * 1024;
/** Exit status of the wrapper when the tool itself could not be started (as a shell's). */
const EXEC_FAILED = 127;
/**
 * Enlarges stdout's buffer (Linux numbers: SO_SNDBUFFORCE needs root, SO_SNDBUF is capped by wmem_max, a
 * pipe takes F_SETPIPE_SZ), best effort, then becomes the decoder. perl is already a dependency.
 */
const ENLARGE_STDOUT_AND_EXEC =
  'my $n = shift; setsockopt(STDOUT, 1, 32, pack("i", $n)) or setsockopt(STDOUT, 1, 7, pack("i", $n))' +
  ' or fcntl(STDOUT, 1031, $n); exec { $ARGV[0] } @ARGV; print STDERR "cannot run $ARGV[0]: $!\\n"; exit 127;';

/** Compression recognised by magic bytes, never by a file name. */
export function detectCompression(head: Buffer): Compression | 'bzip2' {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  // A skippable frame (magic 0x184D2A50-5F) first: pzstd writes one before each independent frame, and
  // the zstd tool (as Node's decoder) skips it.
  if (head.length >= 4 && (head.readUInt32LE(0) & 0xfffffff0) === 0x184d2a50) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) {
    return 'xz';
  }
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

type RawInput = NodeJS.ReadableStream | Readable;

const QUEUE_BYTES = 4 * 1024 * 1024;
/** Raw input held for hashing later, at most. */
const UNHASHED_MAX = 8 * 1024 * 1024;

/**
 * The decoder's output, read in flowing mode into a queue of up to 4 MiB. The tree work is synchronous,
 * so I/O is only polled when it yields; draining the pipe into this queue whenever it does (and yielding
 * now and then while data is still queued) keeps the decoder process from stalling on a full 64 KiB pipe.
 */
class ChunkQueue {
  private readonly stream: Readable;
  private readonly chunks: Buffer[] = [];
  private head = 0;
  private bytes = 0;
  private done = false;
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private pulls = 0;

  constructor(stream: Readable) {
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      if (this.bytes > QUEUE_BYTES) stream.pause();
      this.notify();
    });
    stream.once('end', () => {
      this.done = true;
      this.notify();
    });
    stream.once('error', (err: Error) => {
      this.error = err;
      this.notify();
    });
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  async next(): Promise<Buffer | null> {
    // Every 512 KiB or so, let the event loop poll I/O even though data is still queued.
    if (++this.pulls % 8 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.head === this.chunks.length) {
      if (this.error) throw this.error;
      if (this.done) return null;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    const chunk = this.chunks[this.head]!;
    this.chunks[this.head++] = EMPTY;
    if (this.head > 1024) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
    this.bytes -= chunk.length;
    if (this.stream.isPaused() && this.bytes < QUEUE_BYTES / 2) this.stream.resume();
    return chunk;
  }
}

export class ByteSource {
  /** Raw (compressed) bytes read from the input. */
  bytesIn = 0;
  /** Decompressed bytes handed to the tar reader. */
  bytesOut = 0;
  compression: Compression = 'none';
  /** The entry being read, named in limit errors. */
  currentPath = ARCHIVE;

  // In this thread, when it would otherwise wait for the file writer (hashInputWhileIdle), or as the raw
  // chunks arrive once too many wait: the writer's thread has the files' hashing to do.
  private readonly inputHash: Hash = createHash('sha256');
  private readonly unhashed: Buffer[] = [];
  private unhashedBytes = 0;
  private readonly limits: UnpackLimits;
  private readonly input: RawInput;
  private iterator: ChunkQueue | undefined;
  private decoder: Readable | undefined;
  private child: ReturnType<typeof spawn> | undefined;
  private childExit: Promise<void> | undefined;
  /** Decompressed chunks not yet read past; reading starts at `off` in the first. */
  private readonly chunks: Buffer[] = [];
  private off = 0;
  private buffered = 0;
  private ended = false;
  /** Whether the decoder's chunks may own their memory (see fill()). */
  private ownsChunks = false;

  constructor(input: RawInput, limits: UnpackLimits) {
    this.input = input;
    this.limits = limits;
  }

  /** sha256 (hex) of every raw byte read; complete once finish() has returned. */
  inputSha256(): Promise<string> {
    while (this.hashInputWhileIdle()) {}
    return Promise.resolve(this.inputHash.copy().digest('hex'));
  }

  /** Hashes one raw chunk still waiting; false when none is. */
  hashInputWhileIdle(): boolean {
    const chunk = this.unhashed.shift();
    if (!chunk) return false;
    this.inputHash.update(chunk);
    this.unhashedBytes -= chunk.length;
    return true;
  }

  /**
   * Waits for the first raw bytes, picks the decompressor by their magic and pipes the input into it by
   * hand (counting and hashing each chunk on the way, pausing the input when the decoder is full).
   */
  open(): Promise<void> {
    const input = this.input as Readable;
    if (input.errored) return Promise.reject(input.errored);
    if (input.destroyed) return Promise.reject(new Error('the input stream was closed before it was read'));
    return new Promise<void>((resolve, reject) => {
      const head: Buffer[] = [];
      let headBytes = 0;
      let sink: NodeJS.WritableStream | null = null;
      let failed = false;
      const start = (): boolean => {
        try {
          sink = this.startDecoder(Buffer.concat(head));
        } catch (err) {
          failed = true;
          input.off('data', onData);
          input.pause();
          reject(err);
          return false;
        }
        for (const chunk of head) sink.write(chunk);
        resolve();
        return true;
      };
      const onData = (data: Buffer | string) => {
        const chunk = typeof data === 'string' ? Buffer.from(data) : data;
        this.bytesIn += chunk.length;
        this.unhashed.push(chunk);
        this.unhashedBytes += chunk.length;
        while (this.unhashedBytes > UNHASHED_MAX) this.hashInputWhileIdle();
        if (!sink) {
          head.push(chunk);
          headBytes += chunk.length;
          if (headBytes >= 6) start();
          return;
        }
        if (!sink.write(chunk)) {
          input.pause();
          sink.once('drain', () => input.resume());
        }
      };
      input.on('data', onData);
      input.once('end', () => {
        if (failed) return;
        if (!sink && !start()) return;
        sink!.end();
      });
      input.once('error', (err: Error) => {
        if (!sink) {
          failed = true;
          reject(err);
        } else this.decoder?.destroy(err);
      });
    });
  }

  /** Wires the decoder for the detected compression; returns where raw bytes go. */
  private startDecoder(head: Buffer): NodeJS.WritableStream {
    const kind = detectCompression(head);
    if (kind === 'bzip2') throw new RejectedArchiveError(ARCHIVE, 'bzip2 compression is not supported');
    this.compression = kind;
    if (kind === 'none') {
      const pass = new PassThrough({ highWaterMark: CHUNK_BYTES });
      this.decoder = pass;
      this.iterator = new ChunkQueue(pass);
      return pass;
    }
    const tool = kind === 'xz' ? 'xz' : kind === 'zstd' && onPath('zstd') ? 'zstd' : null;
    // A caller's own chunks (plain tar) are never taken for ours; zlib's are checked chunk by chunk.
    this.ownsChunks = true;
    if (tool) {
      // The system's decoder runs in its own process, on the other core. Node has no xz, and its bundled
      // zstd decodes several times slower than the zstd tool (measured here: 230 MB/s against 2 GB/s).
      const toolArgs = tool === 'zstd' ? ['-dc', '-q', '--memory=128MB'] : ['-dc', '-q'];
      const child = onPath('perl')
        ? spawn('perl', ['-e', ENLARGE_STDOUT_AND_EXEC, String(DECODER_BUFFER_BYTES), tool, ...toolArgs], {
            stdio: ['pipe', 'pipe', 'pipe'],
          })
        : spawn(tool, toolArgs, { stdio: ['pipe', 'pipe', 'pipe'] });
      this.child = child;
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => {
        stderr += d;
      });
      child.stdin.on('error', () => {}); // EPIPE when the decoder stops early on corrupt data: its exit code tells.
      this.childExit = new Promise((resolve, reject) => {
        child.on('error', (err) => reject(new Error(`cannot run ${tool}: ${err.message}`)));
        child.on('close', (code, signal) => {
          if (code === 0 || signal === 'SIGTERM') resolve();
          else if (code === EXEC_FAILED && stderr.startsWith('cannot run')) reject(new Error(stderr.trim()));
          else
            reject(
              new RejectedArchiveError(
                ARCHIVE,
                `corrupt ${kind} data: ${stderr.trim() || `${tool} exit ${code}`}`,
              ),
            );
        });
      });
      this.childExit.catch(() => {}); // awaited in finish(); avoid an unhandled rejection meanwhile
      this.decoder = child.stdout;
      this.iterator = new ChunkQueue(child.stdout);
      return child.stdin;
    }
    const decoder =
      kind === 'gzip'
        ? createGunzip({ chunkSize: CHUNK_BYTES })
        : createZstdDecompress({
            chunkSize: CHUNK_BYTES,
            // Bound the window a hostile frame may ask for (default cap is 128 MiB; rootfs streams use ≤ 8 MiB).
            params: { [zlibConstants.ZSTD_d_windowLogMax]: 27 },
          });
    this.decoder = decoder;
    this.iterator = new ChunkQueue(decoder);
    return decoder;
  }

  /**
   * Buffers one more chunk of decompressed bytes; false once the stream has ended. This is the only await
   * of the read path: everything else reads what is buffered, synchronously.
   */
  async fill(): Promise<boolean> {
    if (this.ended || !this.iterator) return false;
    let chunk: Buffer | null;
    try {
      chunk = await this.iterator.next();
    } catch (err) {
      if (err instanceof RejectedArchiveError) throw err;
      const message = err instanceof Error ? err.message : String(err);
      if (this.compression !== 'none' && !(err as { syscall?: string }).syscall) {
        throw new RejectedArchiveError(ARCHIVE, `corrupt ${this.compression} data: ${message}`, {
          cause: err,
        });
      }
      throw err;
    }
    if (!chunk) {
      this.ended = true;
      return false;
    }
    if (chunk.length === 0) return true;
    this.bytesOut += chunk.length;
    this.checkLimits();
    // Chunks the reader may hand to the file writer's thread must own their memory whole: a decoder process's
    // reads do; a caller's chunks (plain tar) and zlib's slices of a shared output buffer are copied.
    const own = this.ownsChunks && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
    this.chunks.push(own ? chunk : copyToOwn(chunk));
    this.buffered += chunk.length;
    return true;
  }

  private checkLimits(): void {
    const { maxTotalBytes, maxCompressionRatio } = this.limits;
    if (this.bytesOut > maxTotalBytes) {
      throw new RejectedArchiveError(this.currentPath, `archive exceeds ${maxTotalBytes} uncompressed bytes`);
    }
    if (
      this.compression !== 'none' &&
      this.bytesOut > COMPRESSION_RATIO_GRACE_BYTES &&
      this.bytesOut > maxCompressionRatio * this.bytesIn
    ) {
      throw new RejectedArchiveError(
        this.currentPath,
        `compression ratio exceeds ${maxCompressionRatio} (${this.bytesOut} bytes from ${this.bytesIn})`,
      );
    }
  }

  /** Bytes buffered and not yet read. */
  get available(): number {
    return this.buffered;
  }

  /** Whether the decompressed stream has ended (what is buffered is all there will be). */
  get done(): boolean {
    return this.ended;
  }

  /** Offset in the decompressed tar stream of the next byte to be read. */
  get position(): number {
    return this.bytesOut - this.buffered;
  }

  /**
   * Declared sizes are checked before their bytes are read, so a lying header is stopped at once (`ahead`:
   * bytes already parsed but not yet consumed, before the declared ones start).
   */
  assertWithinTotal(declared: number, ahead = 0): void {
    if (this.position + ahead + declared > this.limits.maxTotalBytes) {
      throw new RejectedArchiveError(
        this.currentPath,
        `entry size ${declared} exceeds the limit of ${this.limits.maxTotalBytes} uncompressed bytes`,
      );
    }
  }

  /**
   * n buffered bytes from `offset` bytes ahead, without consuming them (offset + n <= available). The
   * buffer shares memory with a chunk when it lies within one: use it before the next take or fill.
   */
  peek(offset: number, n: number): Buffer {
    let i = 0;
    let at = this.off + offset;
    while (at >= this.chunks[i]!.length) {
      at -= this.chunks[i]!.length;
      i++;
    }
    const first = this.chunks[i]!;
    if (at + n <= first.length) return first.subarray(at, at + n);
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const chunk = this.chunks[i++]!;
      const take = Math.min(n - got, chunk.length - at);
      chunk.copy(out, got, at, at + take);
      got += take;
      at = 0;
    }
    return out;
  }

  /** Consumes n buffered bytes as zero-copy pieces of the chunks (n <= available). */
  takePieces(n: number): Buffer[] {
    const pieces: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[0]!;
      const take = Math.min(left, chunk.length - this.off);
      pieces.push(chunk.subarray(this.off, this.off + take));
      this.advance(take);
      left -= take;
    }
    return pieces;
  }

  /** Consumes up to n buffered bytes; returns how many. */
  skip(n: number): number {
    let left = Math.min(n, this.buffered);
    const skipped = left;
    while (left > 0) {
      const take = Math.min(left, this.chunks[0]!.length - this.off);
      this.advance(take);
      left -= take;
    }
    return skipped;
  }

  private advance(n: number): void {
    this.off += n;
    this.buffered -= n;
    if (this.off === this.chunks[0]!.length) {
      this.chunks.shift();
      this.off = 0;
    }
  }

  /**
   * Whether the chunk behind this memory has been read past, so that nothing here reads it again and it
   * may be handed to another thread whole (only chunks this source owns: see fill()).
   */
  isRetired(memory: ArrayBufferLike): boolean {
    for (const chunk of this.chunks) if (chunk.buffer === memory) return false;
    return true;
  }

  /** Reads (and counts, so limits apply) whatever follows the end-of-archive, then checks the decoder. */
  async finish(): Promise<void> {
    this.skip(this.buffered);
    while (await this.fill()) this.skip(this.buffered);
    await this.childExit;
  }

  destroy(): void {
    (this.input as Readable).destroy?.();
    this.decoder?.destroy();
    if (this.child && this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}

/** A copy in memory of its own (allocUnsafe would take small ones from the shared pool). */
function copyToOwn(chunk: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(chunk.length);
  chunk.copy(own);
  return own;
}
