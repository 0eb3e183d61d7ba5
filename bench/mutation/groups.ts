// What `npm run mutation` mutates, in groups that each run as one Stryker run, and the test files each group
// may run. Per mutant only the files whose coverage reaches it run, so a group's list is an upper bound;
// slow suites (loop devices, GNU tar parity, e2e) stay out, which keeps a full run well under an hour.
// `mutate` entries may carry a line range (file.ts:10-90) to keep a large file to its paths that matter.

export const GOAL = 90;

export interface Group {
  name: string;
  mutate: string[];
  tests: string[];
}

export const GROUPS: Group[] = [
  {
    name: 'core-release',
    mutate: [
      'src/core/ingest.ts',
      'src/core/register.ts',
      'src/core/announce.ts',
      'src/core/build-failure.ts',
      'src/core/emit.ts',
      'src/core/errors.ts',
      'src/core/naming.ts',
    ],
    tests: [
      'test/unit/core/ingest.test.ts',
      'test/unit/core/register-announce.test.ts',
      'test/unit/core/guards.test.ts',
      'test/unit/core/naming.test.ts',
      'test/unit/functions/handlers.test.ts',
      'test/unit/events/samples.test.ts',
    ],
  },
  {
    name: 'core-members',
    mutate: ['src/core/subscriber.ts', 'src/core/subscribers.ts', 'src/core/expire.ts', 'src/core/deps.ts'],
    tests: [
      'test/unit/core/subscriber.test.ts',
      'test/unit/core/subscriber-local.test.ts',
      'test/unit/core/subscribers.test.ts',
      'test/unit/core/expire.test.ts',
      'test/unit/core/guards.test.ts',
      'test/unit/functions/handlers.test.ts',
    ],
  },
  {
    name: 'local-queues',
    mutate: ['src/local/fifo-queue.ts', 'src/local/event-bus.ts'],
    tests: [
      'test/unit/local/fifo-queue.test.ts',
      'test/unit/local/fifo-queue-visibility.test.ts',
      'test/unit/local/event-bus.test.ts',
      'test/unit/contract-local.test.ts',
    ],
  },
  {
    name: 'event-pattern',
    mutate: ['src/local/event-pattern.ts'],
    tests: ['test/unit/local/event-pattern.test.ts'],
  },
  {
    name: 'worker',
    mutate: ['src/builder/worker.ts'],
    tests: [
      'test/unit/builder/worker.test.ts',
      'test/unit/builder/worker-guards.test.ts',
      'test/unit/builder/worker-outcomes.test.ts',
      'test/unit/builder/agent.test.ts',
    ],
  },
  {
    // The unpacker's safety paths: chroot-style names, parents that must be real directories, links, the
    // manifest's word checked against the disk before anything follows a name, removal. Line ranges follow
    // src/unpack as of this commit: re-check them when the unpacker changes.
    name: 'unpack-safety',
    mutate: [
      'src/unpack/tar-reader.ts:270-292',
      'src/unpack/apply.ts:156-232',
      'src/unpack/apply.ts:378-400',
      'src/unpack/apply.ts:423-483',
      'src/unpack/apply.ts:526-557',
      'src/unpack/apply.ts:637-660',
      'src/unpack/apply.ts:691-725',
      'src/unpack/index.ts:60-75',
    ],
    tests: [
      'test/unit/unpack/tar-reader.test.ts',
      'test/integration/unpack/manifest-drift.test.ts',
      'test/integration/unpack/hostile.test.ts',
    ],
  },
  {
    // The incremental path: what is compared with the manifest or the disk, and what is written.
    name: 'unpack-incremental',
    mutate: ['src/unpack/apply.ts:234-330'],
    tests: ['test/integration/unpack/manifest-drift.test.ts', 'test/integration/unpack/incremental.test.ts'],
  },
];
