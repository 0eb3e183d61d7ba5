// What the status page shows, as one JSON document: the releases (newest first) with their rollout, and per
// release a matrix regions × waves × accounts whose cells hold a state and its time; plus the adoption view.
// Pure functions over the stores, so the page, `status --json` and the tests read the same thing.
import { type AdoptionDeps, type AdoptionRow, adoptionView } from '#core/members/adoption.ts';
import { FAILED_REFRESH, type RolloutSummary, rolloutSummary } from '#core/rollout/rollout.ts';
import type { Release, ReleaseStore, RolloutRecord, RolloutStore, StreamPin } from '#ports';

export type CellState =
  | 'pending'
  | 'announced'
  | 'updated'
  | 'already-current'
  | 'skipped-older'
  /** The account could not launch the image: its launch templates stayed (the reason is the cell's). */
  | 'refused'
  | 'failed'
  | 'halted'
  | 'aborted';

export interface Cell {
  accountId: string;
  state: CellState;
  at?: string;
  instanceRefresh?: string;
  /** Why the account refused the image (a launch check), for a `refused` cell. */
  reason?: string;
}

export interface WaveColumn {
  name: string;
  state: string;
  bakeUntil?: string;
  /** Per region, the wave's cells: all of them, or in a summary only failures and accounts not reported. */
  regions: Record<string, Cell[]>;
  /** Per region, how many of the wave's accounts are in each state. */
  counts: Record<string, Partial<Record<CellState, number>>>;
  /** Per region, cells left out of `regions` by the summary (reported and not failed). */
  hidden: Record<string, number>;
}

/** A wave of at most this many accounts lists every cell; a larger one lists what needs a look. */
export const LIST_ALL_UP_TO = 50;
/** What a summary still lists: failures, and accounts that have not reported. */
const NEEDS_A_LOOK = new Set<CellState>(['failed', 'halted', 'aborted', 'pending', 'announced']);

export interface ReleaseView {
  releaseId: string;
  stream: string;
  revision: string;
  sequence: number;
  createdAt: string;
  completedAt?: string;
  rollout?: RolloutSummary['state'];
  rollbackOf?: string;
  halted: RolloutSummary['halted'];
  regions: Record<
    string,
    { state: string; imageId?: string; updatedAt: string; reason?: string; bootLog?: string }
  >;
  waves: WaveColumn[];
}

export interface PageState {
  generatedAt: string;
  releases: ReleaseView[];
  pins: StreamPin[];
  /** Every row, or past LIST_ALL_UP_TO rows only those behind the current release (at most 200). */
  adoption: AdoptionRow[];
  /** Rows left out of `adoption` by the summary. */
  adoptionHidden: number;
}

/** One cell: the account's report for the region if any, else whether its wave was sent the region. */
export function cellFor(
  release: Release,
  rollout: RolloutRecord | undefined,
  wave: number,
  region: string,
  accountId: string,
): Cell {
  const report = release.accounts[`${accountId}/${region}`];
  if (report) {
    const failed = report.instanceRefresh !== undefined && FAILED_REFRESH.has(report.instanceRefresh);
    const refused = report.refused ?? [];
    return {
      accountId,
      state: refused.length > 0 ? 'refused' : failed ? 'failed' : report.outcome,
      at: report.updatedAt,
      ...(report.instanceRefresh ? { instanceRefresh: report.instanceRefresh } : {}),
      ...(refused.length > 0
        ? { reason: refused.map((r) => `${r.launchTemplateName}: ${r.check}: ${r.reason}`).join('; ') }
        : {}),
    };
  }
  const w = rollout?.waves[wave];
  const sentAt = w
    ? w.announcedAt[region]
    : release.regions[region]?.state === 'announced'
      ? release.regions[region]?.updatedAt
      : undefined;
  if (sentAt) return { accountId, state: 'announced', at: sentAt };
  if (w && (w.state === 'halted' || w.state === 'aborted'))
    return { accountId, state: w.state, ...(w.finishedAt ? { at: w.finishedAt } : {}) };
  if (rollout && (rollout.state === 'halted' || rollout.state === 'aborted'))
    return { accountId, state: rollout.state === 'halted' ? 'halted' : 'aborted' };
  return { accountId, state: 'pending' };
}

/** The release's waves; without rollout, one wave "all" of the accounts in scope (or that reported). */
export function releaseView(
  release: Release,
  rollout: RolloutRecord | undefined,
  scope: string[],
  options: { allAccounts?: boolean; listAllUpTo?: number } = {},
): ReleaseView {
  const regions = Object.keys(release.regions).sort();
  const reported = Object.values(release.accounts).map((a) => a.accountId);
  const waves =
    rollout && rollout.waves.length > 0
      ? rollout.waves.map((w) => ({
          name: w.name,
          state: w.state,
          accounts: w.accounts,
          bakeUntil: w.bakeUntil,
        }))
      : [
          {
            name: 'all',
            state: release.completedAt ? 'complete' : 'rolling',
            accounts: [...new Set([...scope, ...reported])].sort(),
            bakeUntil: undefined,
          },
        ];
  const summary = rolloutSummary(rollout);
  return {
    releaseId: release.releaseId,
    stream: release.stream,
    revision: release.revision,
    sequence: release.sequence,
    createdAt: release.createdAt,
    ...(release.completedAt ? { completedAt: release.completedAt } : {}),
    ...(summary && rollout?.waves.length ? { rollout: summary.state } : {}),
    ...(rollout?.rollbackOf ? { rollbackOf: rollout.rollbackOf } : {}),
    halted: summary?.halted ?? null,
    regions: Object.fromEntries(
      regions.map((r) => {
        const record = release.regions[r] as Release['regions'][string] & { bootLog?: string };
        return [
          r,
          {
            state: record.state,
            updatedAt: record.updatedAt,
            ...(record.imageId ? { imageId: record.imageId } : {}),
            ...(record.reason ? { reason: record.reason } : {}),
            ...(record.bootLog ? { bootLog: record.bootLog } : {}),
          },
        ];
      }),
    ),
    waves: waves.map((w, i) => {
      const summarise = !options.allAccounts && w.accounts.length > (options.listAllUpTo ?? LIST_ALL_UP_TO);
      const column: WaveColumn = {
        name: w.name,
        state: w.state,
        ...(w.bakeUntil ? { bakeUntil: w.bakeUntil } : {}),
        regions: {},
        counts: {},
        hidden: {},
      };
      for (const r of regions) {
        const cells = w.accounts.map((a) => cellFor(release, rollout, i, r, a));
        const counts: Partial<Record<CellState, number>> = {};
        for (const c of cells) counts[c.state] = (counts[c.state] ?? 0) + 1;
        const listed = summarise ? cells.filter((c) => NEEDS_A_LOOK.has(c.state)) : cells;
        column.regions[r] = listed;
        column.counts[r] = counts;
        column.hidden[r] = cells.length - listed.length;
      }
      return column;
    }),
  };
}

export interface PageDeps extends AdoptionDeps {
  releases: ReleaseStore;
  rollouts: RolloutStore;
}

export async function pageState(
  deps: PageDeps,
  options: {
    limit?: number;
    now?: Date;
    allAccounts?: boolean;
    /** The adoption rows, when the caller keeps them (they read every member account). */
    adoption?: () => Promise<AdoptionRow[]>;
  } = {},
): Promise<PageState> {
  const releases = (await deps.releases.list())
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.sequence - a.sequence)
    .slice(0, options.limit ?? 20);
  const scopes = new Map<string, string[]>();
  const scopeOf = async (stream: string) => {
    let found = scopes.get(stream);
    if (!found) {
      const scope = deps.config.streams[stream]?.subscribers.scope ?? 'organization';
      const accounts =
        scope === 'organization'
          ? await deps.organization.listAccounts()
          : (await Promise.all(scope.ous.map((ou) => deps.organization.listAccountsInOu(ou)))).flat();
      found = [...new Set(accounts.map((a) => a.id))].sort();
      scopes.set(stream, found);
    }
    return found;
  };
  const views: ReleaseView[] = [];
  for (const release of releases) {
    views.push(
      releaseView(release, await deps.rollouts.get(release.releaseId), await scopeOf(release.stream), {
        ...(options.allAccounts ? { allAccounts: true } : {}),
      }),
    );
  }
  const pins: StreamPin[] = [];
  for (const stream of Object.keys(deps.config.streams).sort()) {
    const pin = await deps.rollouts.getPin(stream);
    if (pin) pins.push(pin);
  }
  const adoption = await (options.adoption ? options.adoption() : adoptionView(deps));
  const listed =
    options.allAccounts || adoption.length <= LIST_ALL_UP_TO
      ? adoption
      : adoption.filter((row) => row.current && !row.current.adopted).slice(0, 200);
  return {
    generatedAt: (options.now ?? new Date()).toISOString(),
    releases: views,
    pins,
    adoption: listed,
    adoptionHidden: adoption.length - listed.length,
  };
}
