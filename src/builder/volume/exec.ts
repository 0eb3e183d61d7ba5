// Running the system tools that own partitions, filesystems and loop devices (sgdisk, mkfs.ext4, losetup, …).

import { execFile } from 'node:child_process';
import { DependencyError } from '#errors';

export class ToolError extends DependencyError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string) {
    super(
      `${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
    this.name = 'ToolError';
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Runs a tool to completion and returns its stdout; a non-zero exit throws with the tool's stderr. */
export function run(
  cmd: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      {
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 10 * 60_000,
        env: { ...process.env, LC_ALL: 'C', ...opts.env },
      },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = typeof err.code === 'number' ? err.code : null;
        if (err.code === 'ENOENT') return reject(new Error(`${cmd}: not installed (run npm run setup)`));
        reject(new ToolError(`${cmd} ${args.join(' ')}`, code, stderr || err.message));
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
