// infra/region.yml's builder fleet, locally: a few workers per region taking jobs from the region's FIFO build
// queue (one stream stays serial: its message group), each running the same worker as the EC2 agent.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DeviceWorkspace } from '#builder/device.ts';
import { handleBuildMessage } from '#builder/message.ts';
import type { BuilderDeps, BuildOutcome, BuildStep } from '#builder/worker.ts';
import type { BuildJob } from '#events/aws.ts';
import type { FifoQueue } from '#ports';
import { realSleep } from '../clock.ts';
import type { LocalQueueMessage } from '../fifo-queue.ts';
import { ebsStateDir } from '../volumes.ts';
import type { LambdaHost, OperatorLog } from './lambda.ts';
import type { LocalRuntime } from './runtime.ts';
import type { LocalRegion, LocalServices } from './services.ts';

export type BuildProgress =
  | { kind: 'build'; region: string; stream: string; revision: string; step: BuildStep }
  | { kind: 'built'; region: string; stream: string; revision: string; outcome: BuildOutcome }
  | {
      kind: 'build-failed';
      region: string;
      stream: string;
      revision: string;
      reason: string;
      final: boolean;
    };

/** Short, as the heartbeat keeps a live builder's job in flight: a dead builder's job is back within a minute. */
const BUILD_VISIBILITY_SECONDS = 60;
/** Free space a build needs in the data folder (state, blocks of the snapshot, growth of the sparse volume). */
const DATA_FOLDER_NEEDED = 256 * 2 ** 20;
const SPACE_POLL_MS = 1000;
const RETRY_PAUSE_MS = 1000;
/**
 * A failed attempt comes back after 1 s, 2 s, 4 s …: the agent's backoff (30 s, 60 s …) on the local scale, so
 * the local flow runs the same rule without waiting minutes.
 */
const RETRY_BASE_SECONDS = 1;
/** Instance ids of the local builders; a restarted stack treats every one of them as terminated. */
export const LOCAL_BUILDER_PREFIX = 'i-local-builder-';

export interface BuilderFleetOptions {
  services: LocalServices;
  /** What a builder gets from the world (the same entry the EC2 agent's wiring implements). */
  runtime: LocalRuntime;
  lambda: LambdaHost;
  workspace: DeviceWorkspace;
  log: OperatorLog;
  /** Build attempts before a job goes to the region's DLQ (SQS maxReceiveCount). */
  maxReceiveCount: number;
  /** Builder workers per region: different streams build in parallel. */
  buildersPerRegion: number;
  dataFolderNeededBytes?: number;
  onProgress?: (event: BuildProgress) => void;
  beforeBuild?: (job: BuildJob) => void | Promise<void>;
}

export class BuilderFleet {
  readonly #options: BuilderFleetOptions;

  constructor(options: BuilderFleetOptions) {
    this.#options = options;
  }

  /** A small fleet per region: jobs of different streams build side by side. */
  start(): void {
    const { services, lambda, buildersPerRegion } = this.#options;
    for (const region of services.regions.values()) {
      for (let i = 0; i < buildersPerRegion; i++) lambda.spawn(this.#buildLoop(region, i));
    }
  }

  /** The builder fleet of one region: one worker, FIFO per stream. */
  async #buildLoop(target: LocalRegion, builder: number): Promise<void> {
    const { services, runtime, lambda, log } = this.#options;
    const manifestDir = join(ebsStateDir(services.dataDir, target.region), 'manifests');
    mkdirSync(manifestDir, { recursive: true });
    const deps: BuilderDeps = {
      ...runtime.builder(target.region),
      region: target.region,
      availabilityZone: target.availabilityZone,
      instanceId: `${LOCAL_BUILDER_PREFIX}${target.region}-${builder}`,
      workspace: this.#options.workspace,
      manifestPath: (volumeId: string) => join(manifestDir, `${volumeId}.json`),
      log: log.line,
      hostSpace: {
        dir: services.dataDir,
        neededBytes: this.#options.dataFolderNeededBytes ?? DATA_FOLDER_NEEDED,
      },
      onStep: (job: BuildJob, step: BuildStep) =>
        this.#options.onProgress?.({
          kind: 'build',
          region: job.region,
          stream: job.stream,
          revision: job.revision,
          step,
        }),
    };
    const queue = target.buildQueue;
    while (lambda.running) {
      let message: LocalQueueMessage | undefined;
      try {
        [message] = await queue.receive({
          max: 1,
          visibilityTimeoutSeconds: BUILD_VISIBILITY_SECONDS,
          waitSeconds: 1,
        });
      } catch (err) {
        // A full data folder fails the queue's own writes too: report it, never crash, try again.
        log.once(`build-${target.region}.fifo: receive failed: ${(err as Error).message}`);
        await realSleep(RETRY_PAUSE_MS);
        continue;
      }
      if (!message) continue;
      const received = message;
      await lambda.invoke(async () => {
        try {
          await withHeartbeat(queue, received.receiptHandle, BUILD_VISIBILITY_SECONDS, log.line, () =>
            this.#buildMessage(target, deps, received),
          );
        } catch (err) {
          log.once(`build-${target.region}.fifo: ${received.messageId}: ${(err as Error).message}`);
          await realSleep(RETRY_PAUSE_MS);
        }
      });
    }
  }

  /** One received build message, to its end (src/builder/message.ts), its answer applied to the local queue. */
  async #buildMessage(target: LocalRegion, deps: BuilderDeps, message: LocalQueueMessage): Promise<void> {
    const { lambda, log, maxReceiveCount, onProgress } = this.#options;
    const progress = (job: BuildJob) => ({ region: job.region, stream: job.stream, revision: job.revision });
    const end = await handleBuildMessage(deps, message, {
      maxReceiveCount,
      retryBaseSeconds: RETRY_BASE_SECONDS,
      log: log.line,
      running: () => lambda.running,
      spacePollMs: SPACE_POLL_MS,
      ...(this.#options.beforeBuild ? { beforeBuild: this.#options.beforeBuild } : {}),
      onBuilt: (job, outcome) => onProgress?.({ kind: 'built', ...progress(job), outcome }),
      onFailed: (job, reason, _verdict, final) =>
        onProgress?.({ kind: 'build-failed', ...progress(job), reason, final }),
    });
    if (end.kind === 'delete') await target.buildQueue.delete(message.receiptHandle);
    // Past maxReceiveCount the queue moves it to the DLQ.
    else await target.buildQueue.changeVisibility(message.receiptHandle, end.afterSeconds);
  }
}

/**
 * Keeps a received message in flight while `work` runs, as the builder agent's heartbeat does on SQS: the
 * visibility timeout can stay short, and a dead builder's job comes back within it.
 */
export async function withHeartbeat<T>(
  queue: FifoQueue,
  receiptHandle: string,
  visibilitySeconds: number,
  log: (line: string) => void,
  work: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(
    () => {
      queue.changeVisibility(receiptHandle, visibilitySeconds).catch((err: Error) => {
        // Gone (deleted, returned) is the normal end of a race with work's own last call.
        if ((err as { code?: string }).code !== 'MessageNotInflight')
          log(`${queue.name}: heartbeat failed: ${err.message}`);
      });
    },
    Math.max(1000, (visibilitySeconds * 1000) / 3),
  );
  timer.unref(); // the work keeps the process alive, not its heartbeat
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
