// One Lambda execution environment: a worker thread with the function's own environment (its variables, its
// role's keys, its Region), which loads the handler module once (the cold start) and then runs one invocation
// at a time, as Lambda does. Module state (clients, cached configuration, the account id) lives as long as the
// worker, as it lives as long as a Lambda container.
import { enableCompileCache } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

// Every environment loads much the same modules (the SDK, Powertools, the core): V8's code cache on disk
// makes every cold start after the first cheaper, as Lambda's snapshots of a runtime would.
enableCompileCache(join(tmpdir(), 'stemcell-e2e-compile-cache'));

interface Setup {
  modulePath: string;
  exportName: string;
  functionName: string;
  functionArn: string;
  memoryMb: number;
  timeoutMs: number;
}

interface Invocation {
  id: string;
  event: unknown;
}

const setup = workerData as Setup;
type Handler = (event: unknown, context: unknown) => Promise<unknown>;

// The init phase: the handler module is loaded before the first invocation (its time is not the invocation's).
const loaded: Promise<Handler> = import(setup.modulePath).then((mod) => {
  const handler = mod[setup.exportName] ?? mod.default?.[setup.exportName];
  if (typeof handler !== 'function')
    throw new Error(`${setup.modulePath} exports no function ${setup.exportName}`);
  return handler as Handler;
});
loaded.then(
  () => parentPort?.postMessage({ ready: true }),
  (err: Error) =>
    parentPort?.postMessage({
      ready: false,
      error: { name: err.name, message: err.message, stack: err.stack ?? '' },
    }),
);

function hex(length: number): string {
  return Array.from({ length }, () => Math.floor(Math.random() * 16).toString(16)).join('');
}

parentPort?.on('message', async (invocation: Invocation) => {
  const started = Date.now();
  // Lambda sets the trace header per invocation; unsampled, so no segment leaves (there is no X-Ray here).
  process.env._X_AMZN_TRACE_ID = `Root=1-${Math.floor(started / 1000).toString(16)}-${hex(24)};Parent=${hex(16)};Sampled=0`;
  const context = {
    functionName: setup.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: setup.functionArn,
    memoryLimitInMB: String(setup.memoryMb),
    awsRequestId: invocation.id,
    logGroupName: `/aws/lambda/${setup.functionName}`,
    logStreamName: `e2e/${process.pid}`,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, setup.timeoutMs - (Date.now() - started)),
  };
  try {
    const result = await (await loaded)(invocation.event, context);
    parentPort?.postMessage({ id: invocation.id, ok: true, result: result ?? null });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort?.postMessage({
      id: invocation.id,
      ok: false,
      error: { name: e.name, message: e.message, stack: e.stack ?? '' },
    });
  }
});
