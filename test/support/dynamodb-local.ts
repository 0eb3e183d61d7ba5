// DynamoDB Local (the jar that the npm package amplify-dynamodb-simulator ships) for tests: a real DynamoDB
// implementation, so conditions, reserved words, map paths and transactions are checked by AWS's own engine
// rather than by our fake. In memory, telemetry off, on a free port of 127.0.0.1; the caller stops it in
// `finally` (or an `after` hook). DynamoDB Local has no bind-address option: it listens on every interface,
// on a random port, only for the length of a test file; clients connect through 127.0.0.1.
//
// We spawn java ourselves rather than through the package's launch(): it probes ports from a fixed base with
// detect-port and waits on them, which races between the engineers and CI runs sharing this machine; here a
// port comes from the kernel (listen on port 0) and a lost race is retried with another one.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { CreateTableCommand, type CreateTableCommandInput, DynamoDBClient } from '@aws-sdk/client-dynamodb';

export interface DynamoDbLocal {
  endpoint: string;
  /** A client of this instance (dummy credentials: DynamoDB Local accepts any). */
  client(): DynamoDBClient;
  stop(): Promise<void>;
}

/** Where the jar is, or why there is none (the package is a devDependency; Java comes from scripts/setup.sh). */
export function dynamoDbLocalJar(): { dir: string } | { missing: string } {
  let dir: string;
  try {
    const require = createRequire(import.meta.url);
    dir = join(dirname(require.resolve('amplify-dynamodb-simulator/package.json')), 'emulator');
  } catch {
    return { missing: 'npm package amplify-dynamodb-simulator is not installed (run scripts/setup.sh)' };
  }
  if (!existsSync(join(dir, 'DynamoDBLocal.jar'))) return { missing: `no DynamoDBLocal.jar in ${dir}` };
  return { dir };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('could not get a free port');
  return address.port;
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Starts the server once the port answers; retries on a port lost to another process. */
export async function startDynamoDbLocal(options: { startTimeoutMs?: number } = {}): Promise<DynamoDbLocal> {
  const jar = dynamoDbLocalJar();
  if ('missing' in jar) throw new Error(`DynamoDB Local: ${jar.missing}`);
  const timeout = options.startTimeoutMs ?? 60_000;
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(
      'java',
      [
        '-Xmx256m',
        `-Djava.library.path=${join(jar.dir, 'DynamoDBLocal_lib')}`,
        '-jar',
        join(jar.dir, 'DynamoDBLocal.jar'),
        '-port',
        String(port),
        '-inMemory',
        '-disableTelemetry',
      ],
      { cwd: jar.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    child.stderr?.on('data', (b: Buffer) => {
      output += b.toString();
    });
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const endpoint = `http://127.0.0.1:${port}`;
    const make = () =>
      new DynamoDBClient({
        endpoint,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
        maxAttempts: 1,
      });
    try {
      await waitReady(child, make, timeout, spawnError);
      return {
        endpoint,
        client: make,
        stop: () => stopProcess(child),
      };
    } catch (err) {
      await stopProcess(child);
      lastError = new Error(
        `DynamoDB Local did not start on ${endpoint}: ${(err as Error).message}\n${output.slice(-2000)}`,
      );
      if (!/address already in use|BindException/i.test(output)) break;
    }
  }
  throw lastError ?? new Error('DynamoDB Local did not start');
}

async function waitReady(
  child: ChildProcess,
  make: () => DynamoDBClient,
  timeoutMs: number,
  spawnError: Promise<Error>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const exited = new Promise<Error>((resolve) =>
    child.once('exit', (code, signal) => resolve(new Error(`exited (${code ?? signal})`))),
  );
  const client = make();
  try {
    while (Date.now() < deadline) {
      const probe = client
        .send(new CreateTableCommand(probeTable))
        .then(() => undefined)
        .catch((err: Error) => (err.name === 'ResourceInUseException' ? undefined : err));
      const outcome = await Promise.race([probe, exited, spawnError]);
      if (outcome === undefined) return;
      if (child.exitCode !== null || child.signalCode !== null) throw outcome;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`not ready after ${timeoutMs} ms`);
  } finally {
    client.destroy();
  }
}

const probeTable: CreateTableCommandInput = {
  TableName: 'ready-probe',
  BillingMode: 'PAY_PER_REQUEST',
  AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
  KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
};
