// Wiring of the status page for the CLI: `stemcell dev --ui HOST:PORT` (beside the running local stack) and
// `stemcell status --serve [HOST:]PORT` (over a data folder or the deployment's table, until interrupted).
import { join } from 'node:path';
import { type AdoptionRow, adoptionView } from '#core/members/adoption.ts';
import { parseListen, type StatusServer, startStatusServer } from './server.ts';
import { type PageDeps, pageState } from './state.ts';

const ADOPTION_EVERY_MS = 3_000;

export async function startStatusPage(
  deps: PageDeps,
  listen: string,
  options: { dataDir?: string } = {},
): Promise<StatusServer> {
  const { host, port } = parseListen(listen);
  // Adoption reads every member account's launch templates: at most once per ADOPTION_EVERY_MS, shared by the
  // live stream's ticks and every client (10,000 accounts are 20,000 reads per region pair).
  let adoption: { at: number; rows: Promise<AdoptionRow[]> } | undefined;
  const adoptionRows = () => {
    if (!adoption || Date.now() - adoption.at > ADOPTION_EVERY_MS) {
      const rows = adoptionView(deps);
      rows.catch(() => {
        adoption = undefined;
      });
      adoption = { at: Date.now(), rows };
    }
    return adoption.rows;
  };
  return startStatusServer({
    host,
    port,
    state: (options) => pageState(deps, { ...options, adoption: adoptionRows }),
    // A boot-check console log the builder recorded for the region (a path under the data folder locally).
    bootLogPath: async (releaseId, region) => {
      const release = await deps.releases.get(releaseId);
      const log = (release?.regions[region] as { bootLog?: string } | undefined)?.bootLog;
      if (!log) return undefined;
      return options.dataDir && !log.startsWith('/') ? join(options.dataDir, log) : log;
    },
  });
}

export async function serveStatusPage(deps: PageDeps, listen: string): Promise<void> {
  const server = await startStatusPage(deps, listen);
  process.stderr.write(`stemcell status page: ${server.url} (read-only; Ctrl-C stops)\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
}
