// What filesystem a partition holds, as blkid sees it (nothing on a blank partition).
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
