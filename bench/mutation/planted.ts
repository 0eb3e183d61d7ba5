// The eight bugs a review planted that the suite once let through, planted again one at a time: each must make
// its test fail, and the test must pass again once the bug is removed. Run: `npm run mutation:planted`.
// A pattern that no longer occurs exactly once means the code moved: update the list, don't delete the case.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

interface Planted {
  name: string;
  file: string;
  from: string;
  to: string;
  test: string;
}

const PLANTED: Planted[] = [
  {
    name: 'announce: no refusal of an unencrypted image',
    file: 'src/core/release/announce.ts',
    from: 'if (!image.encrypted)',
    to: 'if (false)',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: "worker: no check of the tarball's sha256 against the published one",
    file: 'src/builder/worker.ts',
    from: 'if (job.source.sha256 && job.source.sha256 !== applied.inputSha256)',
    to: 'if (false)',
    test: 'test/unit/builder/worker-guards.test.ts',
  },
  {
    name: 'unpack: no check that a manifest-known path became a symlink',
    file: 'src/unpack/apply.ts',
    from: 'if (old && this.old && lstatSync(abs).isSymbolicLink())',
    to: 'if (false)',
    test: 'test/integration/unpack/manifest-drift.test.ts',
  },
  {
    name: 'subscriber: new version copied from version 1, not the default',
    file: 'src/core/members/subscriber.ts',
    from: 'sourceVersion: template.defaultVersionNumber,',
    to: 'sourceVersion: 1,',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'rule planning: a rule with 6 targets is kept',
    file: 'src/core/members/forwarding-rules.ts',
    from: 'wanted.has(t.id) && !assigned.has(t.id) && plan.targets.length < opts.maxTargetsPerRule',
    to: 'wanted.has(t.id) && !assigned.has(t.id)',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'rule planning: an account held by two rules stays in both',
    file: 'src/core/members/forwarding-rules.ts',
    from: 'wanted.has(t.id) && !assigned.has(t.id) &&',
    to: 'wanted.has(t.id) &&',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'rule planning: a target with a stale ARN is never put again',
    file: 'src/core/members/forwarding-rules.ts',
    from: 'if (t.arn !== desired.arn) plan.add.push(desired);',
    to: '',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'ingest: no guard on an event from another bucket',
    file: 'src/core/release/ingest.ts',
    from: 'if (!deps.objects || deps.objects.bucket !== object.bucket) return undefined;',
    to: 'if (!deps.objects) return undefined;',
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'register: a snapshot in error behind "succeeded" is retried to the DLQ',
    file: 'src/core/release/register.ts',
    from: "if (notification.result === 'failed' || snapshot.state === 'error')",
    to: "if (notification.result === 'failed')",
    test: 'test/unit/core/release/guards.test.ts',
  },
  {
    name: 'local FIFO: changeVisibility succeeds on a message whose visibility expired',
    file: 'src/local/fifo-queue.ts',
    from: ' || message.invisibleUntil <= now)',
    to: ')',
    test: 'test/unit/local/fifo-queue-visibility.test.ts',
  },
];

function runTest(test: string): boolean {
  const run = spawnSync(process.execPath, ['--test', '--test-reporter=dot', test], { encoding: 'utf8' });
  return run.status === 0;
}

const only = process.argv[2];
let failures = 0;
for (const bug of PLANTED.filter((b) => !only || b.name.includes(only))) {
  const original = readFileSync(bug.file, 'utf8');
  const occurrences = original.split(bug.from).length - 1;
  if (occurrences !== 1) {
    console.log(`STALE   ${bug.name}: pattern found ${occurrences} times in ${bug.file}`);
    failures++;
    continue;
  }
  let caught: boolean;
  try {
    writeFileSync(bug.file, original.replace(bug.from, bug.to));
    caught = !runTest(bug.test);
  } finally {
    writeFileSync(bug.file, original);
  }
  const passesClean = runTest(bug.test);
  const ok = caught && passesClean;
  if (!ok) failures++;
  console.log(
    `${ok ? 'CAUGHT ' : 'MISSED '} ${bug.name} — ${bug.test}: fails with the bug: ${caught}, passes without: ${passesClean}`,
  );
}
console.log(failures === 0 ? 'every planted bug was caught' : `${failures} planted bug(s) not caught`);
process.exitCode = failures === 0 ? 0 : 1;
