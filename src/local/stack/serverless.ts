// serverless.yml, locally: the home region's rules (S3 "Object Created" → ingest, EBS snapshots and builders'
// "Snapshot Completed" → register's queue, AMI available and "Launch Template Updated" → announce), the SQS event sources of register and
// boot-check, and the Scheduler target of the bake timers. The functions are the modules Lambda runs.
import { createHandler as createAnnounce } from '#functions/announce/handler.ts';
import { createHandler as createBootCheck } from '#functions/boot-check/handler.ts';
import type { Powertools } from '#functions/commons/powertools.ts';
import { createHandler as createIngest } from '#functions/ingest/handler.ts';
import { createHandler as createRegister } from '#functions/register/handler.ts';
import { type LambdaHost, lambdaContext } from './lambda.ts';
import type { LocalRuntime } from './runtime.ts';
import type { LocalServices } from './services.ts';

const REGISTER_VISIBILITY_SECONDS = 2;
/** Boot checks: how long one look may take, and how soon a boot still under way is looked at again. */
const BOOT_CHECK_VISIBILITY_SECONDS = 120;
const BOOT_CHECK_POLL_SECONDS = 1;

/** The rules on the home region's default and central buses. */
export function wireServerlessRules(services: LocalServices, runtime: LocalRuntime, tools: Powertools): void {
  const { homeBus, centralBus, config } = services;
  const ingest = createIngest(runtime.ingest(), tools);
  homeBus.addRule(
    'stemcell-ingest',
    {
      source: ['aws.s3'],
      'detail-type': ['Object Created'],
      detail: { bucket: { name: [config.bucket] }, object: { key: [{ prefix: 'streams/' }] } },
    },
    async (event) => {
      await ingest(event as never, lambdaContext('stemcell-ingest'));
    },
  );
  // EBS notifications are queued for register (SQS event source with partial batch failures).
  homeBus.addRule(
    'stemcell-snapshots',
    {
      source: ['aws.ec2'],
      'detail-type': ['EBS Snapshot Notification'],
      detail: { event: ['createSnapshot'] },
    },
    async (event) => {
      await services.registerQueue.send(JSON.stringify(event), event.id, event.id);
    },
  );
  // Direct-API snapshots have no EBS notification: the builder's own "Snapshot Completed" (SnapshotCompletedRule).
  centralBus.addRule(
    'stemcell-snapshots-completed',
    { source: ['stemcell'], 'detail-type': ['Snapshot Completed'] },
    async (event) => {
      await services.registerQueue.send(JSON.stringify(event), event.id, event.id);
    },
  );
  const announce = createAnnounce(runtime.announce(), tools);
  const announceTarget = async (event: unknown) => {
    await announce(event as never, lambdaContext('stemcell-announce'));
  };
  homeBus.addRule(
    'stemcell-images',
    { source: ['aws.ec2'], 'detail-type': ['EC2 AMI State Change'], detail: { State: ['available'] } },
    announceTarget,
  );
  centralBus.addRule(
    'stemcell-launch-template-updated',
    { source: ['stemcell'], 'detail-type': ['Launch Template Updated'] },
    announceTarget,
  );
}

/** register and boot-check on their queues, and announce as the bake timers' target. */
export function startServerlessFunctions(
  lambda: LambdaHost,
  services: LocalServices,
  runtime: LocalRuntime,
  tools: Powertools,
): void {
  lambda.eventSource(services.registerQueue, 'stemcell-register', createRegister(runtime.register(), tools), {
    visibilityTimeoutSeconds: REGISTER_VISIBILITY_SECONDS,
  });
  // A boot still under way is a failed record: it comes back after the poll interval.
  lambda.eventSource(
    services.bootCheckQueue,
    'stemcell-boot-check',
    createBootCheck(runtime.bootCheck(), tools),
    { visibilityTimeoutSeconds: BOOT_CHECK_VISIBILITY_SECONDS, retryAfterSeconds: BOOT_CHECK_POLL_SECONDS },
  );
  const announce = createAnnounce(runtime.announce(), tools);
  lambda.bakeTimers(services.scheduler, async (input) => {
    await announce(input as never, lambdaContext('stemcell-announce'));
  });
}
