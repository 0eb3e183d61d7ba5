// The Lambda service for the moto world. moto holds each function's configuration and event source mappings
// (from the deployed stacks); this runs them as Lambda would:
// - one execution environment per function (lambda-worker.ts): the function's environment variables, its
//   execution role's keys (STS AssumeRole), AWS_REGION; the handler module named by its Handler setting, loaded
//   once; one invocation at a time; a timeout ends the environment;
// - asynchronous invocations (EventBridge targets, the Invoke API, CloudFormation custom resources), taken from
//   the launcher's queue, retried twice on error (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html;
//   here a second apart, not minutes);
// - SQS event source mappings: long polls of the queue with the mapping's batch size, records in Lambda's SQS
//   event shape, successes deleted, failures (batchItemFailures, or the whole batch on an error) left to the
//   queue's visibility timeout (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html);
// - EventBridge Scheduler's one-time schedules: at their time, the target function gets the schedule's input,
//   and a schedule with ActionAfterCompletion DELETE is deleted (moto stores schedules but never fires them).
// The only setting a real Lambda environment lacks is AWS_ENDPOINT_URL: this world's AWS is at moto's address.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  GetFunctionConfigurationCommand,
  type GetFunctionConfigurationCommandOutput,
  LambdaClient,
  paginateListEventSourceMappings,
  paginateListFunctions,
} from '@aws-sdk/client-lambda';
import {
  DeleteScheduleCommand,
  GetScheduleCommand,
  paginateListSchedules,
  SchedulerClient,
} from '@aws-sdk/client-scheduler';
import {
  DeleteMessageBatchCommand,
  GetQueueUrlCommand,
  type Message,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { MotoAccounts } from './accounts.ts';
import type { MotoServer } from './server.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const WORKER = new URL('./lambda-worker.ts', import.meta.url);

export interface InvocationFailure {
  functionArn: string;
  source: string;
  error: { name: string; message: string; stack: string };
}

interface Environment {
  worker: Worker;
  /** The init phase: the handler module loaded (or why it could not be). */
  ready: Promise<void>;
  config: GetFunctionConfigurationCommandOutput;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined };
  /** Invocations run one after another in an environment. */
  queue: Promise<unknown>;
  pending: Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  logs: string[];
}

/** From an environment: its init ended (ready), or an invocation did (id). */
interface WorkerMessage {
  ready?: boolean;
  id?: string;
  ok?: boolean;
  result?: unknown;
  error?: InvocationFailure['error'];
}

interface Mapping {
  uuid: string;
  functionArn: string;
  queueArn: string;
  batchSize: number;
  reportFailures: boolean;
}

/**
 * Functions' timeouts are multiplied by this: the machine running the test shares its CPU and loads TypeScript
 * from source, so a slow moment is not a function that would time out on Lambda. STEMCELL_E2E_TIMEOUT_FACTOR=1
 * holds every function to its configured timeout.
 */
const TIMEOUT_FACTOR = Number(process.env.STEMCELL_E2E_TIMEOUT_FACTOR ?? 3);

const arnParts = (arn: string) => {
  const [, , , region = '', account = ''] = arn.split(':');
  return { region, account };
};

export class LambdaRuntime {
  readonly failures: InvocationFailure[] = [];
  /** One line per invocation: when, which function, from where, how it ended. */
  readonly trace: string[] = [];
  readonly #moto: MotoServer;
  readonly #accounts: MotoAccounts;
  readonly #environments = new Map<string, Promise<Environment>>();
  readonly #mappings = new Map<string, Mapping>();
  readonly #schedulers = new Set<string>();
  readonly #loops: Promise<void>[] = [];
  readonly #codeDirs: string[] = [];
  readonly #logs = new Map<string, string[]>();
  #inFlight = 0;
  #stopped = false;
  /** Ends the long polls at stop(). */
  readonly #abort = new AbortController();

  constructor(options: { moto: MotoServer; accounts: MotoAccounts }) {
    this.#moto = options.moto;
    this.#accounts = options.accounts;
  }

  /** No invocation is running or waiting for a retry. */
  get idle(): boolean {
    return this.#inFlight === 0;
  }

  start(): void {
    this.#loops.push(this.#guard('invocations', () => this.#asyncLoop()));
  }

  /** Polls the SQS event source mappings of the account and Region (a stack just deployed them). */
  async watchEventSources(account: string, region: string): Promise<void> {
    const lambda = this.#accounts.client(LambdaClient, account, region);
    for await (const page of paginateListEventSourceMappings({ client: lambda }, {})) {
      for (const m of page.EventSourceMappings ?? []) {
        if (!m.UUID || !m.FunctionArn || !m.EventSourceArn || this.#mappings.has(m.UUID)) continue;
        if (m.State && m.State !== 'Enabled') continue;
        const mapping: Mapping = {
          uuid: m.UUID,
          functionArn: m.FunctionArn,
          queueArn: m.EventSourceArn,
          batchSize: m.BatchSize ?? 10,
          reportFailures: (m.FunctionResponseTypes ?? []).includes('ReportBatchItemFailures'),
        };
        this.#mappings.set(m.UUID, mapping);
        this.#loops.push(this.#guard(mapping.queueArn, () => this.#pollQueue(mapping)));
      }
    }
  }

  /**
   * Provisioned concurrency: every function of the account and Region gets its environment now (its module
   * loaded), so the first invocation does not wait for a cold start. A failed init surfaces at invocation.
   */
  async provision(account: string, region: string): Promise<void> {
    const lambda = this.#accounts.client(LambdaClient, account, region);
    for await (const page of paginateListFunctions({ client: lambda }, {})) {
      for (const fn of page.Functions ?? []) {
        if (fn.FunctionArn) this.#environment(fn.FunctionArn).catch(() => undefined);
      }
    }
  }

  /** Fires the EventBridge Scheduler schedules of the account and Region when their time comes. */
  watchSchedules(account: string, region: string): void {
    const key = `${account}/${region}`;
    if (this.#schedulers.has(key)) return;
    this.#schedulers.add(key);
    this.#loops.push(this.#guard(`scheduler ${key}`, () => this.#scheduleLoop(account, region)));
  }

  /**
   * Runs `exportName` of `modulePath` once, in an environment like the function's (its variables, its role):
   * an operator's action with the permissions and settings the deployment gave that function.
   */
  async runAs(functionArn: string, modulePath: string, exportName: string, event: unknown): Promise<unknown> {
    const env = await this.#coldStart(baseArn(functionArn), { modulePath, exportName });
    try {
      return await this.#tracked(() => this.#send(env, functionArn, event));
    } finally {
      await env.worker.terminate();
    }
  }

  /** Ends a function's environment: the next invocation starts cold, with the function's current configuration. */
  async recycle(functionArn: string): Promise<void> {
    const key = baseArn(functionArn);
    const env = this.#environments.get(key);
    this.#environments.delete(key);
    if (env) await (await env).worker.terminate();
  }

  /** What each environment wrote on stdout/stderr (structured logs, EMF metrics), by function name. */
  logs(): Map<string, string[]> {
    return this.#logs;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await Promise.allSettled(this.#loops);
    await Promise.allSettled([...this.#environments.values()].map(async (e) => (await e).worker.terminate()));
    this.#environments.clear();
    await Promise.all(this.#codeDirs.map((d) => rm(d, { recursive: true, force: true })));
  }

  /** A poller that fails is reported as a failure of the service it stands for (the check on failures sees it). */
  async #guard(source: string, loop: () => Promise<void>): Promise<void> {
    try {
      await loop();
    } catch (err) {
      if (this.#stopped) return;
      const e = err as Error;
      this.failures.push({
        functionArn: '(runtime)',
        source,
        error: { name: e.name, message: e.message, stack: e.stack ?? '' },
      });
    }
  }

  async #tracked<T>(work: () => Promise<T>): Promise<T> {
    this.#inFlight++;
    try {
      return await work();
    } finally {
      this.#inFlight--;
    }
  }

  // ------------------------------------------------------------------------------------------------ sources
  async #asyncLoop(): Promise<void> {
    while (!this.#stopped) {
      let taken: { invocations: { functionArn: string; payload: unknown; source: string }[] };
      try {
        taken = await this.#moto.api('invocations', undefined, { wait: '5' }, this.#abort.signal);
      } catch (err) {
        if (this.#stopped) return;
        throw err;
      }
      for (const inv of taken.invocations) {
        // Counted before the await of the next take: idle never shows between take and start.
        this.#inFlight++;
        void this.#invokeAsync(inv.functionArn, inv.payload, inv.source).finally(() => this.#inFlight--);
      }
    }
  }

  async #invokeAsync(functionArn: string, payload: unknown, source: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#run(functionArn, payload);
        return;
      } catch (err) {
        const e = err as Error;
        if (attempt >= 3) {
          this.failures.push({
            functionArn,
            source,
            error: { name: e.name, message: e.message, stack: e.stack ?? '' },
          });
          return;
        }
        await sleep(1000);
      }
    }
  }

  async #pollQueue(mapping: Mapping): Promise<void> {
    const { account, region } = arnParts(mapping.queueArn);
    const queueName = mapping.queueArn.split(':')[5] ?? '';
    const env = await this.#environment(mapping.functionArn);
    const sqs = new SQSClient({
      ...this.#accounts.config(account, region),
      credentials: async () => env.credentials,
    });
    const { QueueUrl: queueUrl } = await sqs.send(
      new GetQueueUrlCommand({ QueueName: queueName, QueueOwnerAWSAccountId: account }),
    );
    while (!this.#stopped) {
      const out = await sqs
        .send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: Math.min(10, mapping.batchSize),
            WaitTimeSeconds: 5,
            MessageSystemAttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: this.#abort.signal },
        )
        .catch((err: Error) => {
          if (this.#stopped) return { Messages: [] };
          throw err;
        });
      const messages = out.Messages ?? [];
      if (messages.length === 0) continue;
      await this.#tracked(async () => {
        const event = { Records: messages.map((m) => sqsRecord(m, mapping.queueArn, region)) };
        let failed: Set<string>;
        try {
          const result = (await this.#run(mapping.functionArn, event)) as {
            batchItemFailures?: { itemIdentifier: string }[];
          } | null;
          failed = new Set(
            mapping.reportFailures ? (result?.batchItemFailures ?? []).map((f) => f.itemIdentifier) : [],
          );
        } catch (err) {
          const e = err as Error;
          this.failures.push({
            functionArn: mapping.functionArn,
            source: mapping.queueArn,
            error: { name: e.name, message: e.message, stack: e.stack ?? '' },
          });
          failed = new Set(messages.map((m) => m.MessageId ?? ''));
        }
        const done = messages.filter((m) => !failed.has(m.MessageId ?? ''));
        if (done.length > 0)
          await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
            }),
          );
      });
    }
  }

  async #scheduleLoop(account: string, region: string): Promise<void> {
    const scheduler = this.#accounts.client(SchedulerClient, account, region);
    const fired = new Set<string>();
    while (!this.#stopped) {
      const due: { name: string; group: string; arn: string; input: unknown; remove: boolean }[] = [];
      for await (const page of paginateListSchedules({ client: scheduler }, {})) {
        for (const s of page.Schedules ?? []) {
          if (!s.Name || fired.has(s.Arn ?? s.Name)) continue;
          const full = await scheduler.send(new GetScheduleCommand({ Name: s.Name, GroupName: s.GroupName }));
          const at = /^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$/.exec(full.ScheduleExpression ?? '')?.[1];
          if (!at) continue;
          const zone = full.ScheduleExpressionTimezone ?? 'UTC';
          if (zone !== 'UTC') throw new Error(`schedule ${s.Name}: time zone ${zone} is not modelled`);
          if (Date.parse(`${at}Z`) > Date.now() || !full.Target?.Arn) continue;
          due.push({
            name: s.Name,
            group: s.GroupName ?? 'default',
            arn: full.Target.Arn,
            input: full.Target.Input ? JSON.parse(full.Target.Input) : {},
            remove: full.ActionAfterCompletion === 'DELETE',
          });
          fired.add(s.Arn ?? s.Name);
        }
      }
      for (const d of due) {
        this.#inFlight++;
        void this.#invokeAsync(d.arn, d.input, `scheduler:${d.name}`).finally(() => this.#inFlight--);
        if (d.remove) await scheduler.send(new DeleteScheduleCommand({ Name: d.name, GroupName: d.group }));
      }
      await sleep(1000);
    }
  }

  // ------------------------------------------------------------------------------------------------ running
  async #run(functionArn: string, event: unknown): Promise<unknown> {
    return this.#send(await this.#environment(functionArn), functionArn, event);
  }

  #send(env: Environment, functionArn: string, event: unknown): Promise<unknown> {
    const id = crypto.randomUUID();
    const name = functionArn.split(':')[6] ?? functionArn;
    const account = functionArn.split(':')[4];
    const t0 = performance.now();
    const note = (how: string) =>
      this.trace.push(
        `${new Date().toISOString()} ${account} ${name} ${how} (${Math.round(performance.now() - t0)} ms)`,
      );
    const run = env.queue
      .then(() => env.ready)
      .then(
        () =>
          new Promise<unknown>((resolve, reject) => {
            const timeoutMs = (env.config.Timeout ?? 3) * 1000 * TIMEOUT_FACTOR;
            const timer = setTimeout(() => {
              // Lambda ends the environment of a timed-out invocation; the next one starts cold.
              env.pending.delete(id);
              this.#environments.delete(baseArn(functionArn));
              void env.worker.terminate();
              reject(
                Object.assign(new Error(`Task timed out after ${timeoutMs / 1000}.00 seconds`), {
                  name: 'TimeoutError',
                }),
              );
            }, timeoutMs);
            env.pending.set(id, {
              resolve: (v) => {
                clearTimeout(timer);
                resolve(v);
              },
              reject: (e) => {
                clearTimeout(timer);
                reject(e);
              },
            });
            env.worker.postMessage({ id, event });
          }),
      );
    env.queue = run.catch(() => undefined);
    run.then(
      () => note('ok'),
      (e: Error) => note(`failed: ${e.name}: ${e.message}`),
    );
    return run;
  }

  #environment(functionArn: string): Promise<Environment> {
    const key = baseArn(functionArn);
    let found = this.#environments.get(key);
    if (!found) {
      found = this.#coldStart(key);
      found.catch(() => this.#environments.delete(key));
      this.#environments.set(key, found);
    }
    return found;
  }

  async #coldStart(
    functionArn: string,
    code?: { modulePath: string; exportName: string },
  ): Promise<Environment> {
    const { account, region } = arnParts(functionArn);
    const lambda = this.#accounts.client(LambdaClient, account, region);
    const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionArn }));
    const name = config.FunctionName ?? functionArn;
    if (!config.Role) throw new Error(`function ${name} has no execution role`);
    if (!config.Handler) throw new Error(`function ${name} has no handler`);
    const credentials = await this.#accounts.assumeRole(config.Role, name);
    const dot = config.Handler.lastIndexOf('.');
    const exportName = code?.exportName ?? config.Handler.slice(dot + 1);
    const modulePath =
      code?.modulePath ?? (await this.#modulePath(functionArn, config.Handler.slice(0, dot)));
    const logs = this.#logs.get(name) ?? [];
    this.#logs.set(name, logs);
    const worker = new Worker(WORKER, {
      workerData: {
        modulePath,
        exportName,
        functionName: name,
        functionArn,
        memoryMb: config.MemorySize ?? 128,
        timeoutMs: (config.Timeout ?? 3) * 1000 * TIMEOUT_FACTOR,
      },
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        TZ: ':UTC',
        LANG: 'en_US.UTF-8',
        ...(config.Environment?.Variables ?? {}),
        AWS_REGION: region,
        AWS_DEFAULT_REGION: region,
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        ...(credentials.sessionToken ? { AWS_SESSION_TOKEN: credentials.sessionToken } : {}),
        AWS_LAMBDA_FUNCTION_NAME: name,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(config.MemorySize ?? 128),
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${name}`,
        AWS_EXECUTION_ENV: `AWS_Lambda_${config.Runtime ?? 'nodejs'}`,
        AWS_XRAY_DAEMON_ADDRESS: '127.0.0.1:2000',
        _HANDLER: config.Handler,
        // Lambda's own markers: the X-Ray SDK takes the per-invocation trace header only when it sees them.
        LAMBDA_TASK_ROOT: dirname(modulePath),
        LAMBDA_RUNTIME_DIR: dirname(modulePath),
        // The one difference from Lambda: this world's AWS answers at moto's address.
        AWS_ENDPOINT_URL: this.#accounts.endpoint,
      },
      stdout: true,
      stderr: true,
    });
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(line);
      if (logs.length > 2000) logs.splice(0, logs.length - 2000);
    };
    worker.stdout.on('data', keep);
    worker.stderr.on('data', keep);
    let initialized: (error?: InvocationFailure['error']) => void = () => {};
    const ready = new Promise<void>((resolve, reject) => {
      initialized = (error) => {
        if (!error) return resolve();
        const err = new Error(`init of ${name}: ${error.message}`);
        err.name = error.name;
        err.stack = error.stack;
        reject(err);
      };
    });
    ready.catch(() => undefined);
    const env: Environment = {
      worker,
      ready,
      config,
      credentials,
      queue: Promise.resolve(),
      pending: new Map(),
      logs,
    };
    worker.on('message', (msg: WorkerMessage) => {
      if (msg.ready !== undefined) return initialized(msg.ready ? undefined : msg.error);
      const waiter = msg.id ? env.pending.get(msg.id) : undefined;
      if (!msg.id || !waiter) return;
      env.pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.result);
      else {
        const err = new Error(msg.error?.message ?? 'function error');
        err.name = msg.error?.name ?? 'Error';
        err.stack = `${err.name}: ${err.message} (in ${name})\n${msg.error?.stack ?? ''}`;
        waiter.reject(err);
      }
    });
    worker.on('error', (err) => {
      initialized({ name: err.name, message: err.message, stack: err.stack ?? '' });
      for (const waiter of env.pending.values()) waiter.reject(err);
      env.pending.clear();
      this.#environments.delete(functionArn);
    });
    return env;
  }

  /** The handler module: the repository's source when the Handler names one, else the deployed code. */
  async #modulePath(functionArn: string, moduleName: string): Promise<string> {
    const source = join(ROOT, `${moduleName}.ts`);
    if (existsSync(source)) return source;
    const { files } = await this.#moto.api<{ files: Record<string, string> }>('function-code', undefined, {
      arn: functionArn,
    });
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-lambda-'));
    this.#codeDirs.push(dir);
    for (const [name, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, name)), { recursive: true });
      await writeFile(join(dir, name), Buffer.from(content, 'base64'));
    }
    // The runtime provides the AWS SDK v3 to deployed code; here it is the repository's.
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    for (const ext of ['.mjs', '.js', '.cjs']) {
      if (existsSync(join(dir, `${moduleName}${ext}`))) return join(dir, `${moduleName}${ext}`);
    }
    throw new Error(`function ${functionArn}: no ${moduleName}.{mjs,js,cjs} in its code`);
  }
}

/** An ARN without a version or alias qualifier. */
function baseArn(arn: string): string {
  return arn.split(':').slice(0, 7).join(':');
}

function sqsRecord(m: Message, queueArn: string, region: string) {
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes: m.Attributes ?? {},
    messageAttributes: Object.fromEntries(
      Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [
        k,
        {
          stringValue: v.StringValue,
          binaryValue: v.BinaryValue ? Buffer.from(v.BinaryValue).toString('base64') : undefined,
          stringListValues: v.StringListValues ?? [],
          binaryListValues: [],
          dataType: v.DataType ?? 'String',
        },
      ]),
    ),
    md5OfBody: m.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: region,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
