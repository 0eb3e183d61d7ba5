// Turns the local stack's progress events into progress bars: the build steps per stream, revision and region,
// and the member accounts updated.
import type { BuildStep } from '#builder/worker.ts';
import { accountsInScope } from '#demo/config.ts';
import type { LocalStack, StackProgress } from '#local/stack.ts';
import type { Progress } from './progress.ts';

const STEPS: BuildStep[] = ['volume', 'attach', 'download+apply', 'boot', 'quiesce', 'snapshot'];

export function trackStack(progress: Progress, stack: Pick<LocalStack, 'config'>) {
  const builds = new Map<string, ReturnType<Progress['task']>>();
  const accounts = new Map<
    string,
    { task: ReturnType<Progress['task']>; seen: Set<string>; total: number }
  >();
  const buildTask = (e: { region: string; stream: string; revision: string }) => {
    const id = `${e.stream}/${e.revision}/${e.region}`;
    let task = builds.get(id);
    if (!task) {
      task = progress.task(id, `build ${e.stream} ${e.revision} ${e.region}`, STEPS.length);
      builds.set(id, task);
    }
    return task;
  };
  return {
    onProgress(event: StackProgress): void {
      switch (event.kind) {
        case 'build':
          buildTask(event).update(STEPS.indexOf(event.step), event.step);
          break;
        case 'built':
          buildTask(event).done(
            event.outcome.kind === 'built'
              ? `snapshot ${event.outcome.snapshotId}: ${event.outcome.apply.filesWritten} files written, ${event.outcome.apply.unchanged} unchanged`
              : `skipped: ${event.outcome.reason}`,
          );
          break;
        case 'build-failed':
          buildTask(event).update(0, `${event.final ? 'FAILED' : 'retrying'}: ${event.reason}`);
          break;
        case 'account-updated': {
          const id = `${event.stream}#${event.sequence}/${event.region}`;
          let entry = accounts.get(id);
          if (!entry) {
            const total = accountsInScope(stack.config, event.stream).length;
            entry = {
              task: progress.task(id, `accounts ${event.stream} #${event.sequence} ${event.region}`, total),
              seen: new Set(),
              total,
            };
            accounts.set(id, entry);
          }
          entry.seen.add(event.accountId);
          entry.task.update(entry.seen.size, event.accountId);
          if (entry.seen.size >= entry.total)
            entry.task.done(`${entry.seen.size}/${entry.total} accounts updated`);
          break;
        }
      }
    },
  };
}
