// Crash-test hook: kill -9 of this very process at a named point of its work, so the crash tests and the
// gauntlet stop it exactly where a crash hurts most (between two writes), not at a moment guessed from outside.
// STEMCELL_KILL_AT=<point> kills at the first pass through <point>, <point>@<n> at the n-th. Unset, it does
// nothing. The points are listed where they are passed (grep `checkpoint?.(`).
import { writeSync } from 'node:fs';

/** Called at a named point; returns normally unless this process is to die there. */
export type Checkpoint = (point: string) => void;

export function killPointsFromEnv(env: NodeJS.ProcessEnv = process.env): Checkpoint | undefined {
  const spec = env.STEMCELL_KILL_AT;
  if (!spec) return undefined;
  const at = spec.lastIndexOf('@');
  const point = at > 0 ? spec.slice(0, at) : spec;
  const nth = at > 0 ? Number(spec.slice(at + 1)) : 1;
  if (!Number.isInteger(nth) || nth < 1)
    throw new Error(`STEMCELL_KILL_AT=${spec}: expected <point> or <point>@<n> with n ≥ 1`);
  let passes = 0;
  return (name) => {
    if (name !== point || ++passes !== nth) return;
    // Said synchronously, so whoever watches stderr knows where it died.
    writeSync(2, `kill point ${name}${nth > 1 ? `@${nth}` : ''}: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}
