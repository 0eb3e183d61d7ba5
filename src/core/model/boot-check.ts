// The boot-check port (qemu locally, a smoke instance on EC2), beside the core's plain types so src/ports.ts
// stays within its size; src/ports.ts re-exports it.
import type { Architecture, BootMode } from './types.ts';

export interface BootCheckRequest {
  /** Deterministic per release and region: a retried start finds the check already running. */
  checkId: string;
  region: string;
  imageId: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'>;
  marker: string;
  timeoutSeconds: number;
  /** Release tags, put on whatever the check creates (the smoke instance). */
  tags: Record<string, string>;
}
/**
 * What a checker sees of a boot; the core decides on timeouts, so the same rules hold in both worlds.
 * - `waiting`: not booting yet (a free qemu slot, an instance still pending, the host short of space or capacity);
 * - `booting`: since `startedAt`, the marker not seen yet;
 * - `marker-seen`: success, `seconds` after the boot started;
 * - `stopped`: the machine is gone without the marker (qemu exited, kernel panic, instance stopped, a
 *   status check failed, or the checker does not know the check).
 */
export type BootObservation =
  | {
      state: 'waiting';
      /**
       * Set while the host, not the image, holds the boot back (a full data folder, no instance capacity): the
       * check waits without a limit, and never fails for it.
       */
      hostCondition?: string;
      /** When this wait began, if later than the request (a boot retried once the host condition cleared). */
      since?: string;
    }
  | { state: 'booting'; startedAt: string; lastLines: string[] }
  | { state: 'marker-seen'; startedAt: string; seconds: number; consoleLog: string }
  | { state: 'stopped'; startedAt?: string; reason: string; lastLines: string[]; consoleLog?: string };
export interface BootChecker {
  readonly mode: 'qemu' | 'instance';
  /**
   * Starts booting the image (idempotent on checkId). Throws BootHostError (src/core/model/errors.ts) when the
   * host cannot run it now: the check waits and asks again.
   */
  start(request: BootCheckRequest): Promise<void>;
  /** Looks at the boot, once; never waits for it. */
  observe(request: BootCheckRequest): Promise<BootObservation>;
  /** Stops the machine and keeps its console log; idempotent. Returns where the log is. */
  stop(request: BootCheckRequest): Promise<{ consoleLog?: string; lastLines: string[] }>;
}
