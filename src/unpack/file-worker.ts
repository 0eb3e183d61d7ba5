// The file writer's thread (see writer-client.ts): runs the main thread's ops in order and answers after
// each message on its own port, which the main thread reads synchronously when it needs an answer.
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { FileResult, WriterInit, WriterMessage, WriterReply } from './file-jobs.ts';
import { FileWriter } from './file-writer.ts';
import { HelperRequests } from './fs-helper.ts';

const init = workerData as WriterInit & { replies: MessagePort };
const signal = new Int32Array(init.signal);
const helper = new HelperRequests(init.root);
const writer = new FileWriter(init.root, init.umask, helper);
let failed = false;

function handle(message: WriterMessage): void {
  const reply: WriterReply = { results: [], freed: 0 };
  for (const buffer of message.buffers) reply.freed += buffer.byteLength;
  if (!failed) {
    try {
      run(message, reply.results, reply);
      const restamps = helper.takeRestamps();
      if (restamps.length) reply.restamps = restamps;
    } catch (err) {
      // Everything after a failure is dropped: the main thread stops the apply when it reads the error.
      failed = true;
      const e = err as NodeJS.ErrnoException;
      reply.error = { message: e.message ?? String(err), code: e.code };
    }
  }
  init.replies.postMessage(reply);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

function run(message: WriterMessage, results: FileResult[], reply: WriterReply): void {
  const { buffers } = message;
  for (const op of message.ops) {
    switch (op.k) {
      case 'file':
        writer.begin(op.job);
        break;
      case 'data':
        writer.data(Buffer.from(buffers[op.b]!, op.o, op.n));
        break;
      case 'end':
        results.push(writer.end());
        break;
      case 'xattrs':
        helper.xattrs(op.rel, op.set, op.remove, op.file);
        break;
      case 'node': {
        const { node } = op;
        helper.batch.mknod(helper.absBytes(node.rel), node, node.mtime, node.mtimeNsec);
        break;
      }
      case 'times':
        helper.times(op.rel, op.sec, op.nsec, op.file);
        break;
      case 'settle':
        helper.run();
        reply.settled = op.seq;
        break;
      case 'stat':
        helper.stampAgain(op.rels);
        break;
    }
    Atomics.add(signal, 1, 1);
  }
}

parentPort!.on('message', handle);
