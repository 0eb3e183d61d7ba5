// Loaded into every test file's process (`node --test --import ./test/support/exit-guard.ts`). Once all of a file's
// tests are done, a handle it left open (a server, an interval, a child process) may not keep the file's process,
// and so CI, waiting for ever: a minute later (time for the file's own root `after` hooks, which run after this
// one) the process ends with a failure that says what was open. Unlike `--test-force-exit`, which ended files
// whose later suites had not run yet and dropped their results silently (38 of 1,426 unit tests missing from a
// passing run, 3 files cut short), this arms only after the file's last test has finished.
import { after } from 'node:test';

const GRACE_MS = 60_000;

// Only in a test file's own process: the runner that spawns them has no tests of its own.
if (process.env.NODE_TEST_CONTEXT) {
  after(() => {
    setTimeout(() => {
      const handles = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo();
      process.stderr.write(
        `exit guard: ${process.argv[1] ?? 'this test file'} kept its process alive ${GRACE_MS / 1000} s after its ` +
          `last test (open: ${handles.join(', ') || 'unknown'}); close what it opens in finally / after\n`,
      );
      process.exit(1);
    }, GRACE_MS).unref();
  });
}
