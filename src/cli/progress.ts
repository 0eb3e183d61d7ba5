// Progress for long steps. On a terminal: cli-progress bars that redraw in place. Elsewhere (CI logs, pipes):
// one plain line per change, so the log stays readable.
import cliProgress from 'cli-progress';

export interface Progress {
  /** A bar per task: `update(done, total)`; `done(summary)` finishes it. */
  task(
    id: string,
    label: string,
    total: number,
  ): { update(value: number, note?: string): void; done(note?: string): void };
  line(message: string): void;
  stop(): void;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (quiet) {
    const noop = { update() {}, done() {} };
    return { task: () => noop, line() {}, stop() {} };
  }
  if (!stream.isTTY) return plainProgress(stream);
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: '{label} [{bar}] {value}/{total} {note}',
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    task(_id, label, total) {
      const bar = multibar.create(total, 0, { label: label.padEnd(36), note: '' });
      return {
        update: (value, note = '') => bar.update(value, { note }),
        done: (note = 'done') => {
          bar.update(total, { note });
          bar.stop();
        },
      };
    },
    line: (message) => multibar.log(`${message}\n`),
    stop: () => multibar.stop(),
  };
}

function plainProgress(stream: NodeJS.WriteStream): Progress {
  const started = Date.now();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s]`;
  return {
    task(_id, label, total) {
      let last = -1;
      return {
        update(value, note = '') {
          // One line per whole step, not per byte: CI logs stay short.
          if (value === last) return;
          last = value;
          stream.write(`${stamp()} ${label}: ${value}/${total}${note ? ` ${note}` : ''}\n`);
        },
        done(note = 'done') {
          stream.write(`${stamp()} ${label}: ${note}\n`);
        },
      };
    },
    line: (message) => stream.write(`${stamp()} ${message}\n`),
    stop() {},
  };
}
