// What `npm run mutation` mutates, in groups that each run as one Stryker run, and the test files each group
// may run. Per mutant only the files whose coverage reaches it run, so a group's list is an upper bound;
// slow suites (loop devices, GNU tar parity, e2e) stay out, which keeps a full run well under an hour.
// `mutate` entries may carry a line range (file.ts:10-90) to keep a large file to its paths that matter.

import { readFileSync } from 'node:fs';

export const GOAL = 90;

/**
 * `file:first-last` line ranges of the named methods or functions, found by name (a method starts at
 * `name(` after its modifiers and ends at the first `}` back at its indentation), so the ranges follow
 * the code as it changes. A name that is not found is an error: the group must be updated.
 */
export function methods(file: string, ...names: string[]): string[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  return names.map((name) => {
    const head = new RegExp(
      `^(\\s*)(?:export )?(?:private |protected |public |static |async |function )*${name}\\s*[(<]`,
    );
    const start = lines.findIndex((line) => head.test(line));
    if (start === -1) throw new Error(`mutation groups: no method ${name} in ${file}`);
    const indent = head.exec(lines[start] ?? '')?.[1] ?? '';
    const end = lines.findIndex((line, i) => i > start && line === `${indent}}`);
    if (end === -1) throw new Error(`mutation groups: no end of ${name} in ${file}`);
    return `${file}:${start + 1}-${end + 1}`;
  });
}

export interface Group {
  name: string;
  mutate: string[];
  tests: string[];
  /** Set in the environment of the group's test runs. */
  env?: Record<string, string>;
}

export const GROUPS: Group[] = [
  {
    name: 'core-release',
    mutate: [
      'src/core/release/ingest.ts',
      'src/core/release/register.ts',
      'src/core/release/announce.ts',
      'src/core/release/image-ready.ts',
      'src/core/release/account-reports.ts',
      'src/core/release/region-state.ts',
      'src/core/release/build-failure.ts',
      'src/core/model/emit.ts',
      'src/core/model/errors.ts',
      'src/core/model/naming.ts',
    ],
    tests: [
      'test/unit/core/release/ingest.test.ts',
      'test/unit/core/release/ingest-details.test.ts',
      'test/unit/core/release/register-announce.test.ts',
      'test/unit/core/release/announce-details.test.ts',
      'test/unit/core/release/guards.test.ts',
      'test/unit/core/model/naming.test.ts',
      'test/unit/core/release/release-details.test.ts',
      'test/unit/core/release/failures.test.ts',
      'test/unit/core/release/region-state.test.ts',
      'test/unit/core/release/account-reports.test.ts',
      'test/unit/functions/handlers.test.ts',
      'test/unit/events/samples.test.ts',
    ],
  },
  {
    name: 'core-members',
    mutate: [
      'src/core/members/subscriber.ts',
      'src/core/members/forwarding-rules.ts',
      'src/core/images/expire.ts',
      'src/core/deps.ts',
    ],
    // Run it a module at a time (--only=src/core/images/expire.ts, …): the whole group is ~600 mutants.
    tests: [
      'test/unit/core/members/subscriber.test.ts',
      'test/unit/core/members/subscriber-rules.test.ts',
      'test/unit/core/members/subscriber-local.test.ts',
      // subscriber-concurrency.test.ts stays out: 250 random schedules take ~45 s per mutant here.
      'test/unit/core/members/forwarding-rules.test.ts',
      'test/unit/core/members/forwarding-rules-cases.test.ts',
      'test/unit/core/images/expire.test.ts',
      'test/unit/core/images/expire-rules.test.ts',
      'test/unit/core/release/guards.test.ts',
      // handlers.test.ts and subscriber-refresh.test.ts stay out (subscriber-refresh.ts has its own group): they
      // import the Lambda handlers, which bring the AWS SDK's types into the checker's program (3,100 files
      // instead of 240, ~10× the type-check time per mutant); the handlers only parse and shape around the core
      // functions the tests above call.
    ],
  },
  {
    // The subscriber's second report (how an instance refresh it started ended). Its own group: its test also
    // drives the subscriber handler, whose AWS SDK types make each type check ~10× slower than core-members'.
    name: 'subscriber-refresh',
    mutate: ['src/core/members/subscriber-refresh.ts'],
    tests: ['test/unit/core/members/subscriber-refresh.test.ts'],
  },
  {
    // Whether every account can launch the new image: the launch check the subscriber runs before a move, the
    // verdict over launch templates, the launch permissions announce sets and reads back, instance type fit,
    // and the local launch model's EC2 and KMS rules.
    name: 'launch-model',
    mutate: [
      'src/core/images/launchable.ts',
      'src/core/images/launch.ts',
      'src/core/images/launch-permissions.ts',
      'src/core/images/instance-types.ts',
      'src/local/launch-model.ts',
    ],
    tests: [
      'test/unit/core/images/launchable.test.ts',
      'test/unit/core/images/launch.test.ts',
      'test/unit/local/launch-model.test.ts',
      'test/unit/core/release/register-announce.test.ts',
    ],
  },
  {
    // The reconciler: what a crash left unfinished, re-driven through the same core functions.
    name: 'reconcile',
    mutate: ['src/core/release/reconcile.ts'],
    tests: ['test/unit/core/release/reconcile.test.ts'],
  },
  {
    // The boot gate: no "Image Ready" before the image booted; a failed boot fails the region. The gate and the
    // boot-check worker's core are one module (announce asks, advanceBootCheck looks once and decides).
    name: 'boot-gate',
    mutate: ['src/core/release/boot-gate.ts', 'src/core/release/boot-check.ts'],
    tests: [
      'test/unit/core/release/boot-gate.test.ts',
      'test/unit/core/release/boot-gate-rules.test.ts',
      'test/unit/core/release/region-state.test.ts',
    ],
  },
  {
    // Release waves: who gets "Image Ready" when, a wave's health, halt / resume / abort, rollback and pin,
    // and the adoption view of who runs what.
    name: 'waves',
    mutate: [
      'src/core/rollout/rollout.ts',
      'src/core/rollout/bake-timer.ts',
      'src/core/rollout/rollback.ts',
      'src/core/members/adoption.ts',
    ],
    tests: [
      'test/unit/core/rollout/rollout.test.ts',
      'test/unit/core/rollout/rollout-refresh.test.ts',
      'test/unit/core/rollout/waves.test.ts',
      'test/unit/core/rollout/rollback.test.ts',
      'test/unit/core/members/adoption.test.ts',
      // onRolloutTimer (bake-timer.ts): a baked last wave completes the release
      'test/unit/core/release/announce-details.test.ts',
    ],
  },
  {
    name: 'local-queues',
    mutate: ['src/local/fifo-queue.ts', 'src/local/event-bus.ts', 'src/local/event-bus-entries.ts'],
    tests: [
      'test/unit/local/fifo-queue.test.ts',
      'test/unit/local/fifo-queue-visibility.test.ts',
      'test/unit/local/fifo-queue-sqs.test.ts',
      'test/unit/local/event-bus.test.ts',
      'test/unit/local/event-bus-durable.test.ts',
      'test/unit/local/event-bus-api.test.ts',
      'test/unit/contract-local.test.ts',
    ],
  },
  {
    name: 'event-pattern',
    mutate: ['src/local/event-pattern.ts'],
    // The narrow files first: a mutant they kill then skips the 300-row conformance table.
    tests: [
      'test/unit/local/event-pattern-errors.test.ts',
      'test/unit/local/event-pattern-operators.test.ts',
      'test/unit/local/event-pattern.test.ts',
      'test/unit/local/event-pattern-conformance.test.ts',
    ],
  },
  {
    name: 'worker',
    mutate: ['src/builder/worker.ts'],
    tests: [
      'test/unit/builder/worker.test.ts',
      'test/unit/builder/worker-guards.test.ts',
      'test/unit/builder/worker-outcomes.test.ts',
      'test/unit/builder/worker-verify.test.ts',
      'test/unit/builder/agent.test.ts',
    ],
  },
  {
    // The unpacker's safety paths: chroot-style names, parents that must be real directories, links, the
    // manifest's word checked against the disk before anything follows a name, removal.
    name: 'unpack-safety',
    // Resolved when the group runs (a getter): a method that moved fails this group only, not every run.
    get mutate() {
      return [
        ...methods('src/unpack/tar-reader.ts', 'normalisePath'),
        // The applier (apply.ts) on top of TreeWrites (tree-writes.ts) on top of TreeState (tree-state.ts).
        ...methods(
          'src/unpack/apply.ts',
          'apply',
          'ensureParents',
          'ensureImplicitDir',
          'resetImpliedDir',
          'applyDir',
          'applySymlink',
          'applyHardlink',
        ),
        ...methods('src/unpack/tree-writes.ts', 'applyMetadata', 'removeSeen', 'removeByWalk'),
        ...methods(
          'src/unpack/tree-state.ts',
          'oldState',
          'diskOrManifest',
          'underWiped',
          'diskState',
          'removeOld',
          'removeDiskEntry',
        ),
      ];
    },
    tests: [
      'test/unit/unpack/tar-reader.test.ts',
      'test/unit/unpack/normalise-path.test.ts',
      'test/integration/unpack/manifest-drift.test.ts',
      'test/integration/unpack/manifest-drift-dirs.test.ts',
      'test/integration/unpack/hostile.test.ts',
      'test/integration/unpack/revision-paths.test.ts',
      'test/integration/unpack/revision-bookkeeping.test.ts',
      // Since the applier's split, the safety methods (tree-writes.ts, tree-state.ts) also serve the paths these
      // suites drive: the removal walk under directories that were there before, owners of directories and
      // links, duplicates. Without them the run of 8 December left such mutants alive that these suites kill.
      'test/integration/unpack/incremental.test.ts',
      'test/integration/unpack/incremental-content.test.ts',
      'test/integration/unpack/incremental-links.test.ts',
      'test/integration/unpack/gnu-tar-parity.test.ts',
      'test/integration/unpack/byte-names.test.ts',
    ],
  },
  {
    // The incremental path: what is compared with the manifest or the disk, and what is written.
    name: 'unpack-incremental',
    // Every file is written on the applier's own thread (the same FileWriter the writer's thread runs): the
    // coverage Stryker reads is this thread's, so mutants reached only on the other thread would count as
    // uncovered. The unpack integration suites pass with it set (271 cases).
    env: { STEMCELL_UNPACK_WRITER: 'here' },
    get mutate() {
      return [
        ...methods('src/unpack/apply.ts', 'applyFile', 'quickCheckSkip'),
        ...methods('src/unpack/file-writer.ts', 'begin', 'endWhole', 'sameContent', 'create', 'removeOld'),
      ];
    },
    tests: [
      'test/integration/unpack/manifest-drift.test.ts',
      'test/integration/unpack/incremental.test.ts',
      'test/integration/unpack/incremental-content.test.ts',
      'test/integration/unpack/incremental-links.test.ts',
      'test/integration/unpack/manifest-drift-dirs.test.ts',
      // re-linking a hardlink whose target got a new inode (inodeReplaced), checked over an earlier revision
      'test/integration/unpack/revision-paths.test.ts',
      // the 1 MiB and 16 MiB bounds at their edges, the size check before the hash, manifest vs disk compare
      'test/integration/unpack/incremental-survivors.test.ts',
      // --trust-mtime's quick check, and sparse files (written whole, compared with the disk without a manifest)
      'test/integration/unpack/quick-check.test.ts',
      'test/integration/unpack/sparse.test.ts',
    ],
  },
];
