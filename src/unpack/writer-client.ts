// The main thread's side of the file writer (file-worker.ts, file-writer.ts): the second core hashes and
// writes the regular files while this thread parses the archive and shapes the tree.
//
// Ops are queued in archive order and posted in batches. Body pieces are views of the decompressed stream's
// chunks; a chunk is transferred (not copied) once the reader has moved past it, so a batch goes out up to
// the first piece of a chunk still being read. When the applier needs the writer's work done (a hardlink to
// a file still in flight, a removal, the end) it settles: everything is posted (pieces of the current chunk
// copied) and this thread blocks on Atomics.wait until the writer has answered; answers are read with
// receiveMessageOnPort, so the applier stays synchronous.
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import type {
  FileJob,
  FileResult,
  InodeStamp,
  NodeJob,
  WriterInit,
  WriterMessage,
  WriterOp,
  WriterReply,
} from './file-jobs.ts';
import type { XattrList } from './tree-ops.ts';

/** A batch is posted once it holds this many body bytes or ops. */
const POST_BYTES = 1024 * 1024;
const POST_OPS = 2048;
/** Body bytes posted and not yet written: above this, the applier waits for the writer (memory bound). */
const MAX_IN_FLIGHT = 16 * 1024 * 1024;
/** A writer that neither answers nor makes progress for this long is taken for dead. */
const STALL_MS = 120_000;

type PendingOp = WriterOp | { k: 'piece'; piece: Buffer };

export class WriterClient {
  private readonly worker: Worker;
  private readonly replies: MessagePort;
  private readonly signal: Int32Array;
  private readonly isRetired: (memory: ArrayBufferLike) => boolean;
  private readonly onResult: (result: FileResult) => void;
  private readonly onRestamp: (rel: string, stamp: InodeStamp | null) => void;
  private pending: PendingOp[] = [];
  private pendingBytes = 0;
  private inFlight = 0;
  private seq = 0;
  private settled = 0;
  private error: Error | null = null;
  /** Ops posted that the writer has not answered for: whether settling has anything to wait for. */
  private unanswered = 0;

  /** Work this thread can do instead of blocking for the writer (false: none left). */
  private readonly idle: () => boolean;

  constructor(
    root: string,
    isRetired: (memory: ArrayBufferLike) => boolean,
    onResult: (result: FileResult) => void,
    onRestamp: (rel: string, stamp: InodeStamp | null) => void,
    idle: () => boolean,
  ) {
    this.onRestamp = onRestamp;
    this.isRetired = isRetired;
    this.idle = idle;
    this.onResult = onResult;
    const shared = new SharedArrayBuffer(8);
    this.signal = new Int32Array(shared);
    const { port1, port2 } = new MessageChannel();
    this.replies = port1;
    const init: WriterInit & { replies: MessagePort } = {
      root,
      umask: process.umask(),
      signal: shared,
      replies: port2,
    };
    this.worker = new Worker(new URL('./file-worker.ts', import.meta.url), {
      workerData: init,
      transferList: [port2],
      // Its garbage is small and short-lived (messages, results): a small young generation keeps the
      // process's peak RSS down, whatever semi-space size the main thread was started with.
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    this.worker.on('error', (err) => {
      this.error ??= err;
    });
  }

  /** A regular file: its job, then its body pieces, then end(). */
  file(job: FileJob): void {
    this.pending.push({ k: 'file', job });
  }

  /** Batches posted that the writer has not finished (answers read now): how far behind it is. */
  backlog(): number {
    this.poll();
    return this.unanswered;
  }

  /** A piece of the open file's body: a view of a chunk the byte source owns (see ByteSource.fill). */
  data(piece: Buffer): void {
    this.pending.push({ k: 'piece', piece });
    this.pendingBytes += piece.length;
  }

  end(): void {
    this.pending.push({ k: 'end' });
    this.maybePost();
  }

  xattrs(rel: string, set: XattrList, remove: string[]): void {
    this.pending.push({ k: 'xattrs', rel, set, remove });
  }

  node(node: NodeJob): void {
    this.pending.push({ k: 'node', node });
  }

  times(rel: string, sec: number, nsec: number): void {
    this.pending.push({ k: 'times', rel, sec, nsec });
  }

  /** Whether anything was handed to the writer that it has not done (settle() would wait). */
  get busy(): boolean {
    return this.pending.length > 0 || this.unanswered > 0;
  }

  /** Reads the writer's answers so far, without waiting. */
  poll(): void {
    for (;;) {
      const received = receiveMessageOnPort(this.replies);
      if (!received) break;
      const reply = received.message as WriterReply;
      this.inFlight -= reply.freed;
      this.unanswered--;
      for (const result of reply.results) this.onResult(result);
      if (reply.settled !== undefined) this.settled = Math.max(this.settled, reply.settled);
      for (const [rel, stamp] of reply.restamps ?? []) this.onRestamp(rel, stamp);
      if (reply.error && !this.error) {
        const err = new Error(`writing the files failed: ${reply.error.message}`) as NodeJS.ErrnoException;
        if (reply.error.code) err.code = reply.error.code;
        this.error = err;
      }
    }
    if (this.error) throw this.error;
  }

  /** Posts what can go without copying, once enough is queued; waits if the writer is far behind. */
  maybePost(): void {
    if (this.pendingBytes < POST_BYTES && this.pending.length < POST_OPS) return;
    this.post(false);
    this.poll();
    if (this.inFlight > MAX_IN_FLIGHT) this.waitFor(() => this.inFlight <= MAX_IN_FLIGHT / 2);
  }

  /** Everything queued so far is done (files written, helper requests run) when this returns. */
  settle(): void {
    if (!this.busy) return;
    const seq = ++this.seq;
    this.pending.push({ k: 'settle', seq });
    this.post(true);
    this.waitFor(() => this.settled >= seq);
  }

  /**
   * Waits until `done()` (which the answers read meanwhile make true: a file's result), posting everything
   * queued first; the helper batch is not run (see settle()).
   */
  waitUntil(done: () => boolean): void {
    if (done()) return;
    this.post(true);
    this.waitFor(done);
  }

  /** Files whose inode this thread changed (a hardlink to them): stamped again at the next settle. */
  stampAgain(rels: string[]): void {
    this.pending.push({ k: 'stat', seq: 0, rels });
  }

  xattrsOfFile(rel: string, set: XattrList, remove: string[]): void {
    this.pending.push({ k: 'xattrs', rel, set, remove, file: true });
  }

  timesOfFile(rel: string, sec: number, nsec: number): void {
    this.pending.push({ k: 'times', rel, sec, nsec, file: true });
  }

  async close(): Promise<void> {
    this.replies.close();
    await this.worker.terminate();
  }

  private post(force: boolean): void {
    let cut = this.pending.length;
    if (!force) {
      for (let i = 0; i < this.pending.length; i++) {
        const op = this.pending[i]!;
        if (op.k === 'piece' && !this.isRetired(op.piece.buffer)) {
          cut = i;
          break;
        }
      }
    }
    if (cut === 0) return;
    const ops: WriterOp[] = [];
    const buffers: ArrayBuffer[] = [];
    const index = new Map<ArrayBufferLike, number>();
    let bytes = 0;
    for (let i = 0; i < cut; i++) {
      const op = this.pending[i]!;
      if (op.k !== 'piece') {
        ops.push(op);
        continue;
      }
      let piece = op.piece;
      bytes += piece.length;
      if (!this.isRetired(piece.buffer)) {
        // Still being read here: this piece alone goes as a copy.
        const copy = Buffer.allocUnsafeSlow(piece.length);
        piece.copy(copy);
        piece = copy;
      }
      let b = index.get(piece.buffer);
      if (b === undefined) {
        b = buffers.length;
        buffers.push(piece.buffer as ArrayBuffer);
        index.set(piece.buffer, b);
      }
      ops.push({ k: 'data', b, o: piece.byteOffset, n: piece.length });
    }
    this.pending = this.pending.slice(cut);
    this.pendingBytes -= bytes;
    const message: WriterMessage = { ops, buffers };
    for (const buffer of buffers) this.inFlight += buffer.byteLength;
    this.unanswered++;
    this.worker.postMessage(message, buffers);
  }

  private waitFor(done: () => boolean): void {
    for (;;) {
      this.poll();
      if (done()) return;
      const replies = Atomics.load(this.signal, 0);
      const progress = Atomics.load(this.signal, 1);
      this.poll();
      if (done()) return;
      if (this.idle()) continue;
      if (
        Atomics.wait(this.signal, 0, replies, STALL_MS) === 'timed-out' &&
        Atomics.load(this.signal, 1) === progress
      ) {
        throw new Error(`the file writer thread made no progress for ${STALL_MS / 1000} s`);
      }
    }
  }
}
