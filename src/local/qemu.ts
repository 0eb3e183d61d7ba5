// Boots a raw disk under qemu with the firmware of its boot mode and watches the serial console for a marker:
// SeaBIOS (qemu's default) for legacy-bios, OVMF for x86_64 UEFI, AAVMF on `-M virt` for arm64. The disk is an
// NVMe device, as on EC2's Nitro instances, and is opened with snapshot=on: the guest's writes go to a
// throw-away overlay, so the booted image stays exactly as built. Used by the local boot checker and the e2e
// boot test.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { arch } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Architecture, BootMode } from '#core/model/types.ts';
import { consoleLines } from '#core/release/boot-check.ts';

/** Firmware files (Debian's ovmf and qemu-efi-aarch64 packages), with the writable variable store's template. */
export const FIRMWARE = {
  ovmf: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/usr/share/OVMF/OVMF_VARS_4M.fd' },
  aavmf: { code: '/usr/share/AAVMF/AAVMF_CODE.fd', vars: '/usr/share/AAVMF/AAVMF_VARS.fd' },
} as const;

/** A kernel that panicked will never print the marker: fail at once instead of waiting for the timeout. */
const PANIC = /Kernel panic - not syncing[^\n]*/;
/** Console kept in memory for the marker search and the last lines; the whole console goes to the log file. */
const TAIL_BYTES = 64 * 1024;

export interface QemuBootOptions {
  disk: string;
  architecture: Architecture;
  bootMode: Exclude<BootMode, 'none'>;
  marker: string;
  /** Where the serial console is written, whole. */
  consoleLog: string;
  /** A directory for the UEFI variable store copy. */
  workDir: string;
  memoryMiB?: number;
  /** Hard stop: qemu is killed after this long even if nobody asks (the caller's own timeout is shorter). */
  killAfterMs?: number;
}

export type QemuBootState =
  | { state: 'booting'; startedAt: Date }
  | { state: 'marker-seen'; startedAt: Date; seconds: number }
  | { state: 'stopped'; startedAt: Date; reason: string };

/**
 * Whether to ask for KVM for this guest. Only when STEMCELL_QEMU_ACCEL=kvm (or auto) says so, the guest is the
 * host's architecture and /dev/kvm is read-write: a /dev/kvm that opens is no proof. On the machines this
 * project is built on (nested under another hypervisor) KVM runs SeaBIOS and then hangs in Linux's early boot,
 * and qemu's `-accel kvm -accel tcg` falls back only when KVM fails to start. TCG is the default.
 */
export function kvmUsable(guest: Architecture): boolean {
  const wanted = process.env.STEMCELL_QEMU_ACCEL ?? 'tcg';
  if (wanted !== 'kvm' && wanted !== 'auto') return false;
  const host = arch() === 'x64' ? 'x86_64' : arch() === 'arm64' ? 'arm64' : arch();
  if (host !== guest) return false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** qemu's command line for a boot mode; exported for tests and for the README's "boot it yourself". */
export function qemuCommand(
  opts: Pick<QemuBootOptions, 'disk' | 'architecture' | 'bootMode' | 'memoryMiB'> & { varsFile?: string },
): { cmd: string; args: string[] } {
  const common = [
    ...['-m', String(opts.memoryMiB ?? 512), '-smp', '1'],
    ...['-nodefaults', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot'],
    ...['-drive', `file=${opts.disk},format=raw,if=none,id=root,snapshot=on`],
    ...['-device', 'nvme,drive=root,serial=stemcell-root'],
  ];
  const pflash = (code: string, vars: string) => [
    ...['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${code}`],
    ...['-drive', `if=pflash,format=raw,unit=1,file=${vars}`],
  ];
  if (opts.architecture === 'arm64') {
    if (opts.bootMode !== 'uefi') throw new Error(`arm64 boots with UEFI only, not ${opts.bootMode}`);
    if (!opts.varsFile) throw new Error('UEFI boot needs a copy of the firmware variable store');
    // cortex-a72 rather than max: no pointer-authentication emulation, markedly faster under TCG.
    return {
      cmd: 'qemu-system-aarch64',
      args: [
        ...['-M', 'virt', '-cpu', 'cortex-a72'],
        ...(kvmUsable('arm64') ? ['-accel', 'kvm'] : []),
        ...['-accel', 'tcg'],
        ...pflash(FIRMWARE.aavmf.code, opts.varsFile),
        ...common,
      ],
    };
  }
  // Ask for KVM when it can work and fall back to TCG when it cannot start (qemu tries -accel in order).
  const accel = [...(kvmUsable('x86_64') ? ['-accel', 'kvm'] : []), '-accel', 'tcg'];
  if (opts.bootMode === 'uefi') {
    if (!opts.varsFile) throw new Error('UEFI boot needs a copy of the firmware variable store');
    return {
      cmd: 'qemu-system-x86_64',
      args: ['-M', 'q35', ...accel, ...pflash(FIRMWARE.ovmf.code, opts.varsFile), ...common],
    };
  }
  return { cmd: 'qemu-system-x86_64', args: ['-M', 'q35', ...accel, ...common] };
}

/** One qemu boot: spawned by start(), looked at by state(), ended by stop(). */
export class QemuBoot {
  readonly options: QemuBootOptions;
  #child: ChildProcess | undefined;
  #log: WriteStream | undefined;
  #tail = '';
  #state: QemuBootState | undefined;
  #exited: Promise<void> = Promise.resolve();
  #killTimer: NodeJS.Timeout | undefined;

  constructor(options: QemuBootOptions) {
    this.options = options;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const o = this.options;
    for (const file of [o.disk, ...firmwareFiles(o)]) {
      if (!existsSync(file))
        throw new Error(
          `boot check: ${file} is missing (${o.architecture} ${o.bootMode}); run scripts/setup.sh`,
        );
    }
    let varsFile: string | undefined;
    if (o.bootMode === 'uefi') {
      const template = o.architecture === 'arm64' ? FIRMWARE.aavmf.vars : FIRMWARE.ovmf.vars;
      await mkdir(o.workDir, { recursive: true });
      varsFile = join(o.workDir, `${basename(o.disk)}.efivars.fd`);
      await copyFile(template, varsFile);
    }
    const { cmd, args } = qemuCommand({ ...o, ...(varsFile ? { varsFile } : {}) });
    await mkdir(dirname(o.consoleLog), { recursive: true });
    const log = createWriteStream(o.consoleLog);
    this.#log = log;
    log.write(`# ${cmd} ${args.join(' ')}\n`);
    const startedAt = new Date();
    this.#state = { state: 'booting', startedAt };
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const onData = (chunk: Buffer) => {
      log.write(chunk);
      this.#tail = (this.#tail + chunk.toString('latin1')).slice(-TAIL_BYTES);
      if (this.#state?.state !== 'booting') return;
      if (this.#tail.includes(o.marker)) {
        this.#decide({
          state: 'marker-seen',
          startedAt,
          seconds: (Date.now() - startedAt.getTime()) / 1000,
        });
      } else {
        const panic = PANIC.exec(this.#tail);
        if (panic) this.#decide({ state: 'stopped', startedAt, reason: panic[0].trim() });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.#exited = new Promise((resolve) => {
      child.on('error', (err) => {
        this.#decide({ state: 'stopped', startedAt, reason: `${cmd} did not start: ${err.message}` });
        resolve();
      });
      child.on('close', (code, signal) => {
        this.#decide({
          state: 'stopped',
          startedAt,
          reason: `qemu exited (${signal ?? `code ${code}`}) before "${o.marker}" appeared`,
        });
        resolve();
      });
    });
    this.#killTimer = setTimeout(() => void this.stop(), o.killAfterMs ?? 30 * 60_000);
    this.#killTimer.unref();
  }

  state(): QemuBootState | undefined {
    return this.#state;
  }

  lastLines(count = 20): string[] {
    return consoleLines(this.#tail, count);
  }

  /** Kills qemu (if it still runs) and closes the log; resolves once both are done. */
  async stop(): Promise<void> {
    clearTimeout(this.#killTimer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await this.#exited;
    const log = this.#log;
    if (log && !log.closed) await new Promise<void>((resolve) => log.end(resolve));
  }

  /** First decision wins: the marker then an exit is a pass; a panic then the kill is a failure. */
  #decide(state: QemuBootState): void {
    if (this.#state?.state !== 'booting') return;
    this.#state = state;
    // Decided: qemu has nothing more to tell. A short grace keeps a panic's trace in the log.
    if (state.state === 'marker-seen') void this.stop();
    else setTimeout(() => void this.stop(), 500).unref();
  }
}

function firmwareFiles(o: Pick<QemuBootOptions, 'architecture' | 'bootMode'>): string[] {
  if (o.bootMode !== 'uefi') return [];
  const fw = o.architecture === 'arm64' ? FIRMWARE.aavmf : FIRMWARE.ovmf;
  return [fw.code, fw.vars];
}

/** Boots once and waits for the verdict (tests, `stemcell boot`-style callers). */
export async function bootUntilMarker(
  opts: QemuBootOptions & { timeoutMs: number },
): Promise<
  | { passed: true; seconds: number; lastLines: string[] }
  | { passed: false; reason: string; lastLines: string[] }
> {
  const boot = new QemuBoot(opts);
  await boot.start();
  try {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const s = boot.state();
      if (s?.state === 'marker-seen')
        return { passed: true, seconds: s.seconds, lastLines: boot.lastLines() };
      if (s?.state === 'stopped') {
        await boot.stop();
        return { passed: false, reason: s.reason, lastLines: boot.lastLines() };
      }
      if (Date.now() > deadline)
        return {
          passed: false,
          reason: `"${opts.marker}" not seen within ${opts.timeoutMs / 1000} s`,
          lastLines: boot.lastLines(),
        };
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await boot.stop();
  }
}
