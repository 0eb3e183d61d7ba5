// What filesystem a partition holds, as blkid sees it (nothing on a blank partition), and how big a disk is.
import { stat } from 'node:fs/promises';
import { run } from './exec.ts';

export async function probeFilesystem(device: string): Promise<{ type?: string; label?: string }> {
  // blkid exits 2 when it finds nothing: a blank partition.
  const out = await run('blkid', ['--probe', '--output', 'export', device]).catch(() => '');
  const fields = Object.fromEntries(
    out
      .split('\n')
      .map((line) => line.split('='))
      .filter((kv) => kv.length >= 2)
      .map(([k, ...v]) => [k, v.join('=')]),
  );
  return { type: fields.TYPE, label: fields.LABEL };
}

/** Bytes of a disk: a disk-image file's size, or a block device's. */
export async function deviceBytes(devicePath: string): Promise<number> {
  const s = await stat(devicePath);
  if (s.isFile()) return s.size;
  if (!s.isBlockDevice()) throw new Error(`${devicePath}: not a block device or disk-image file`);
  return Number((await run('blockdev', ['--getsize64', devicePath])).trim());
}
