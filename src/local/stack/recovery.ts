// What a killed stack left behind, undone as AWS would before the new one starts: its builders are terminated
// instances, so their mounts go and their volumes are detached; the messages they held are visible again at
// once; writes that never reached their rename and blocks no snapshot references are removed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { recoverMounts } from '#builder/quiesce.ts';
import { claimDataFolder, removeOrphanTemporaries } from '../housekeeping.ts';
import { LOCAL_BUILDER_PREFIX } from './builders.ts';
import type { LocalServices } from './services.ts';

export async function recoverPreviousRun(
  services: LocalServices,
  log: (line: string) => void,
): Promise<void> {
  const { dataDir } = services;
  mkdirSync(dataDir, { recursive: true });
  for (const { pid, command } of claimDataFolder(dataDir))
    log(`killed ${pid} (${command.slice(0, 80)}), left running by a previous run`);
  await recoverMounts(join(dataDir, 'mnt'), log);
  const regions = [...services.regions.values()];
  for (const r of regions) {
    const released = await r.volumes.releaseAttachments((id) => id.startsWith(LOCAL_BUILDER_PREFIX));
    if (released.length > 0)
      log(`${r.region}: released ${released.join(', ')} from builders of a previous run`);
  }
  for (const queue of [services.registerQueue, ...regions.map((r) => r.buildQueue)]) {
    // (Member accounts' subscriber queues hold their messages for 2 s only: they come back on their own.)
    const held = queue.releaseInFlight();
    if (held > 0) log(`${queue.name}: ${held} message(s) in flight in a previous run are visible again`);
  }
  // Housekeeping: writes that never reached their rename, and blocks no snapshot references.
  const temporaries = removeOrphanTemporaries(dataDir);
  let blocks = 0;
  for (const r of regions) blocks += (await r.snapshots.collectGarbage()).removedBlocks;
  if (temporaries.length + blocks > 0)
    log(
      `housekeeping: removed ${temporaries.length} orphan temporary file(s), ${blocks} unreferenced block(s)`,
    );
}
