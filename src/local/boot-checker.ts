// The local boot checker: what a smoke instance is on AWS, a qemu boot is here. start() restores the image to a
// scratch disk as `stemcell export` does (decrypting its blocks as the owner would launch it) and boots it with
// the firmware of its boot mode; at most as many boots run at once as the machine has cores, the rest wait for
// a slot. The console log is kept under the data folder, next to the release; the scratch disk is removed. A data
// folder without room for the scratch disk is waited out ("data folder full: …"), never blamed on the image.

import { mkdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { DataFolderFullError, freeBytes, isOutOfSpace } from '#builder/space.ts';
import type { BootChecker, BootCheckRequest, BootObservation } from '#ports';
import type { LocalImages } from './images.ts';
import { QemuBoot, type QemuBootOptions } from './qemu.ts';

export interface LocalBootCheckerOptions {
  /** Where console logs (kept) and scratch disks (removed after each boot) go: <dataDir>/boot-checks. */
  dir: string;
  images(region: string): LocalImages;
  /** Boots at once; the machine's cores by default. */
  slots?: number;
  memoryMiB?: number;
  log?: (line: string) => void;
  /** The machine for one boot: qemu, or a scripted one in tests. */
  createBoot?: (options: QemuBootOptions) => BootMachine;
  /** Free bytes of the data folder (statfs by default; tests pass their own). */
  free?: (path: string) => number;
  /** Test hook: runs just before the image is restored to its scratch disk. */
  beforeRestore?: (request: BootCheckRequest) => void | Promise<void>;
}

/** What the checker needs of one boot (QemuBoot's surface). */
export type BootMachine = Pick<QemuBoot, 'start' | 'state' | 'lastLines' | 'stop'>;

interface Entry {
  request: BootCheckRequest;
  consoleLog: string;
  disk: string;
  boot?: BootMachine;
  /** Set when the boot could not even start (restore failed, qemu missing). */
  error?: string;
  /** Set while the data folder lacks the room to restore the image: the host's fault, waited out. */
  hostCondition?: string;
  /** When the boot began waiting for a slot (again, once space returned). */
  waitingSince: Date;
  done: Promise<void>;
}

/** Room beyond the image's own blocks: the console log, the UEFI variable store, the state files meanwhile. */
const SPACE_SLACK = 32 * 2 ** 20;
const SPACE_POLL_MS = 1000;

/** Console logs are named after the check: one per release and region. */
export function consoleLogPath(dir: string, checkId: string): string {
  return join(dir, `${checkId}.console.log`);
}

export class LocalQemuBootChecker implements BootChecker {
  readonly mode = 'qemu' as const;
  readonly #options: LocalBootCheckerOptions;
  readonly #entries = new Map<string, Entry>();
  /**
   * What each stopped check last showed, by checkId: a second look at a decided boot (a duplicate or late
   * delivery racing the one that decided) must see the same verdict, not "stopped" or a fresh boot.
   */
  readonly #finished = new Map<string, { imageId: string; seen: BootObservation; lastLines: string[] }>();
  readonly #slots: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(options: LocalBootCheckerOptions) {
    this.#options = options;
    this.#slots = Math.max(1, options.slots ?? availableParallelism());
  }

  async start(request: BootCheckRequest): Promise<void> {
    if (this.#entries.has(request.checkId)) return;
    if (this.#finished.get(request.checkId)?.imageId === request.imageId) return;
    const entry: Entry = {
      request,
      consoleLog: consoleLogPath(this.#options.dir, request.checkId),
      disk: join(this.#options.dir, 'scratch', `${request.checkId}.raw`),
      waitingSince: new Date(),
      done: Promise.resolve(),
    };
    this.#entries.set(request.checkId, entry);
    entry.done = this.#run(entry);
  }

  async observe(request: BootCheckRequest): Promise<BootObservation> {
    const entry = this.#entries.get(request.checkId);
    if (!entry) {
      const finished = this.#finished.get(request.checkId);
      if (finished?.imageId === request.imageId) return finished.seen;
      return { state: 'stopped', reason: 'no such boot check here', lastLines: [] };
    }
    if (entry.error)
      return { state: 'stopped', reason: entry.error, lastLines: [], consoleLog: entry.consoleLog };
    if (entry.hostCondition) return { state: 'waiting', hostCondition: entry.hostCondition };
    const s = entry.boot?.state();
    if (!entry.boot || !s) return { state: 'waiting', since: entry.waitingSince.toISOString() };
    const startedAt = s.startedAt.toISOString();
    if (s.state === 'marker-seen')
      return { state: 'marker-seen', startedAt, seconds: s.seconds, consoleLog: entry.consoleLog };
    if (s.state === 'stopped')
      return {
        state: 'stopped',
        startedAt,
        reason: s.reason,
        lastLines: entry.boot.lastLines(),
        consoleLog: entry.consoleLog,
      };
    return { state: 'booting', startedAt, lastLines: entry.boot.lastLines() };
  }

  async stop(request: BootCheckRequest): Promise<{ consoleLog?: string; lastLines: string[] }> {
    const entry = this.#entries.get(request.checkId);
    if (!entry) {
      const finished = this.#finished.get(request.checkId);
      if (finished?.imageId !== request.imageId) return { lastLines: [] };
      const consoleLog = 'consoleLog' in finished.seen ? finished.seen.consoleLog : undefined;
      return { ...(consoleLog ? { consoleLog } : {}), lastLines: finished.lastLines };
    }
    // A check still waiting for a slot must not start after this; a boot that already decided keeps its verdict.
    const decided = entry.boot?.state();
    if (!decided || decided.state === 'booting') entry.error ??= 'stopped';
    await entry.boot?.stop();
    await entry.done;
    const lastLines = entry.boot?.lastLines() ?? [];
    this.#finished.set(request.checkId, {
      imageId: request.imageId,
      seen: await this.observe(request),
      lastLines,
    });
    this.#entries.delete(request.checkId);
    return { consoleLog: entry.consoleLog, lastLines };
  }

  /** Stops every boot (the stack shutting down). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#entries.values()].map((e) => this.stop(e.request)));
  }

  async #run(entry: Entry): Promise<void> {
    await this.#acquire();
    try {
      if (entry.error) return;
      const { request } = entry;
      const images = this.#options.images(request.region);
      try {
        if (!(await this.#restore(entry, images))) return;
        const createBoot = this.#options.createBoot ?? ((o: QemuBootOptions) => new QemuBoot(o));
        const boot = createBoot({
          disk: entry.disk,
          architecture: request.architecture,
          bootMode: request.bootMode,
          marker: request.marker,
          consoleLog: entry.consoleLog,
          workDir: join(this.#options.dir, 'scratch'),
          ...(this.#options.memoryMiB ? { memoryMiB: this.#options.memoryMiB } : {}),
          // Nobody may forget a qemu: the gate's timeout, plus slack for a slow poll.
          killAfterMs: (request.timeoutSeconds + 120) * 1000,
        });
        if (entry.error) return;
        entry.boot = boot;
        this.#options.log?.(
          `boot check ${request.checkId}: booting ${request.imageId} (${request.architecture}, ${request.bootMode}) under qemu`,
        );
        await boot.start();
        // Hold the slot until this boot is over.
        while (!entry.error && boot.state()?.state === 'booting')
          await new Promise((r) => setTimeout(r, 100));
        await boot.stop();
      } catch (err) {
        entry.error = `could not boot ${request.imageId}: ${(err as Error).message}`;
      }
    } finally {
      await rm(entry.disk, { force: true }).catch(() => {});
      await rm(`${entry.disk}.efivars.fd`, { force: true }).catch(() => {});
      this.#release();
    }
  }

  /**
   * Restores the image to the scratch disk. A data folder without the room for it (checked first, or an ENOSPC
   * or EDQUOT on the way) is the host's condition, not the image's: said once, waited out, restored again.
   * False when the check was stopped meanwhile.
   */
  async #restore(entry: Entry, images: LocalImages): Promise<boolean> {
    const { request } = entry;
    const dir = this.#options.dir;
    const free = this.#options.free ?? freeBytes;
    await mkdir(dirname(entry.disk), { recursive: true });
    const needed = images.restoreBytes(request.imageId) + SPACE_SLACK;
    for (;;) {
      if (entry.error) return false;
      try {
        const room = free(dir);
        if (room < needed) throw new DataFolderFullError(dir, room, needed);
        await this.#options.beforeRestore?.(request);
        await images.restore(request.imageId, entry.disk, images.ownerOf(request.imageId));
        return true;
      } catch (err) {
        if (!(err instanceof DataFolderFullError) && !isOutOfSpace(err)) throw err;
        const full =
          err instanceof DataFolderFullError ? err : new DataFolderFullError(dir, free(dir), needed);
        await rm(entry.disk, { force: true }).catch(() => {});
        entry.hostCondition = full.message;
        this.#options.log?.(`boot check ${request.checkId}: ${full.message}; waiting for space`);
        while (!entry.error && free(dir) < needed) await new Promise((r) => setTimeout(r, SPACE_POLL_MS));
        delete entry.hostCondition;
        entry.waitingSince = new Date();
        if (!entry.error)
          this.#options.log?.(`boot check ${request.checkId}: space is back; restoring again`);
      }
    }
  }

  async #acquire(): Promise<void> {
    if (this.#running < this.#slots) {
      this.#running++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#running--;
  }
}
