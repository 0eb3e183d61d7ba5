// One moto server for a test suite: the machine's python3 runs test/support/moto/launcher.py, which refuses
// any moto but 5.2.1, patches moto's gaps (patches/*.py, each naming the AWS page it follows) and listens on a
// free port of 127.0.0.1. stop() ends it; a suite calls it in `finally`/`after`.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const HERE = new URL('./', import.meta.url).pathname;
const SAMPLES = new URL('../../../events/samples/', import.meta.url).pathname;
export const MOTO_VERSION = '5.2.1';

export interface MotoServer {
  endpoint: string;
  version: string;
  /** The last lines moto wrote on stderr (tracebacks of requests it failed on). */
  log(): string;
  /** GET or POST /moto-api/stemcell/<name> (the launcher's routes). */
  api<T>(name: string, body?: unknown, query?: Record<string, string>, signal?: AbortSignal): Promise<T>;
  stop(): Promise<void>;
}

export async function startMoto(options: { python?: string; startupMs?: number } = {}): Promise<MotoServer> {
  const python = options.python ?? 'python3';
  const child = spawn(python, [`${HERE}launcher.py`, SAMPLES], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONWARNINGS: 'ignore' },
  });
  const lines: string[] = [];
  const keep = (line: string) => {
    // Request lines are noise; tracebacks and warnings are what a failed step needs.
    if (/"(GET|POST|PUT|DELETE|HEAD) .* HTTP\/1\.1" \d+ -$/.test(line)) return;
    lines.push(line);
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  createInterface({ input: child.stderr }).on('line', keep);
  const stop = () => stopChild(child);
  let first: { port: number; moto: string };
  try {
    first = await firstLine(child, options.startupMs ?? 60_000, () => lines.join('\n'));
  } catch (err) {
    await stop();
    throw err;
  }
  if (first.moto !== MOTO_VERSION) {
    await stop();
    throw new Error(`moto ${first.moto} answered; the e2e run needs moto ${MOTO_VERSION}`);
  }
  const endpoint = `http://127.0.0.1:${first.port}`;
  return {
    endpoint,
    version: first.moto,
    log: () => lines.join('\n'),
    async api<T>(
      name: string,
      body?: unknown,
      query: Record<string, string> = {},
      signal?: AbortSignal,
    ): Promise<T> {
      const qs = new URLSearchParams(query).toString();
      const res = await fetch(`${endpoint}/moto-api/stemcell/${name}${qs ? `?${qs}` : ''}`, {
        method: body === undefined ? 'GET' : 'POST',
        ...(signal ? { signal } : {}),
        ...(body === undefined
          ? {}
          : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`moto-api ${name}: HTTP ${res.status} ${text}`);
      return JSON.parse(text) as T;
    },
    stop,
  };
}

function firstLine(
  child: ChildProcess,
  timeoutMs: number,
  stderr: () => string,
): Promise<{ port: number; moto: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`moto did not start within ${timeoutMs} ms:\n${stderr()}`)),
      timeoutMs,
    );
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.once('line', (line) => {
      clearTimeout(timer);
      rl.close();
      try {
        resolve(JSON.parse(line) as { port: number; moto: string });
      } catch {
        reject(new Error(`moto's launcher said ${JSON.stringify(line)}:\n${stderr()}`));
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run python3 for moto: ${err.message}`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      // Give the stderr reader a moment: the launcher's refusal (wrong or missing moto) is the message.
      setTimeout(() => reject(new Error(`moto's launcher exited with ${code}:\n${stderr()}`)), 50);
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
