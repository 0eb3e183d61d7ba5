// Named checks of a long scenario: every check runs (one failing does not hide the next), each phase asserts
// its own at its end, and the run ends with one summary line of them all.
import { isDeepStrictEqual } from 'node:util';

export class Checks {
  readonly failures: string[] = [];
  #total = 0;
  #phaseStart = 0;

  get total(): number {
    return this.#total;
  }

  get failed(): number {
    return this.failures.length;
  }

  ok(name: string, condition: boolean, detail?: unknown): void {
    this.#total++;
    if (!condition)
      this.failures.push(detail === undefined ? name : `${name}: ${JSON.stringify(detail, null, 1)}`);
  }

  equal(name: string, actual: unknown, expected: unknown): void {
    this.ok(name, isDeepStrictEqual(actual, expected), { actual, expected });
  }

  /** Runs a phase; an error that ends it early (a timeout, a step that threw) counts as a failed check. */
  async phase(name: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      if (!(err instanceof PhaseChecksFailed)) {
        this.#total++;
        this.failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
        this.#phaseStart = this.failures.length;
      }
      throw err;
    }
  }

  /** Fails the current phase if any of its checks failed. */
  assertAll(): void {
    const failed = this.failures.slice(this.#phaseStart);
    this.#phaseStart = this.failures.length;
    if (failed.length > 0) throw new PhaseChecksFailed(failed);
  }

  summary(run: { moto: string; regions: number; accounts: number; seconds: number }): string {
    const passed = this.#total - this.failed;
    return `aws e2e: ${this.#total} checks, ${passed} passed, ${this.failed} failed (moto ${run.moto}, ${run.regions} regions, ${run.accounts} accounts, ${run.seconds} s)`;
  }
}

class PhaseChecksFailed extends Error {
  constructor(failed: string[]) {
    super(`${failed.length} check(s) failed:\n- ${failed.join('\n- ')}`);
    this.name = 'PhaseChecksFailed';
  }
}
