// Rollout in waves: "Image Ready" goes to wave 1's accounts; once that wave has every region and its bake time
// is over, and it is healthy (every account reported, no instance refresh failed, its alarm OK), the next wave
// gets the same images. An unhealthy wave halts the release ("Release Halted"): no later wave moves until an
// operator resumes it. Pins hold new revisions back. The state lives in the RolloutStore, next to the release;
// the bake timer is a port (EventBridge Scheduler on AWS, the local clock locally) that calls announce back.
import { InputError } from '#errors';
import type { ImageReady, LaunchTemplateUpdated } from '#events/stemcell.ts';
import type {
  Alarms,
  BakeTimer,
  EventPublisher,
  HaltRecord,
  OrganizationDirectory,
  Release,
  ReleaseStore,
  RolloutRecord,
  RolloutStore,
  RolloutTimerInput,
  WaveRecord,
} from '#ports';
import type { BaseDeps } from '../deps.ts';
import { emit } from '../model/emit.ts';
import { ReleaseNotFoundError, streamConfig } from '../model/errors.ts';

export interface RolloutDeps extends BaseDeps {
  releases: ReleaseStore;
  events: EventPublisher;
  organization: OrganizationDirectory;
  rollouts: RolloutStore;
  timer: BakeTimer;
  alarms?: Alarms;
}

/** Deps that may lack the rollout ports (deployments and tests without waves). */
export type MaybeRolloutDeps = Omit<RolloutDeps, 'rollouts' | 'timer'> & {
  rollouts?: RolloutStore;
  timer?: BakeTimer;
};

/** An operator command or a state the release is not in. */
export class RolloutStateError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'RolloutStateError';
  }
}

/** Refresh outcomes that make a wave unhealthy. */
export const FAILED_REFRESH = new Set<string>(['failed', 'cancelled', 'rolled-back']);

function requireRolloutPorts(deps: MaybeRolloutDeps, what: string): RolloutDeps {
  if (!deps.rollouts || !deps.timer)
    throw new Error(
      `${what}: the stream has rollout waves, but this deployment has no rollout store or timer`,
    );
  return deps as RolloutDeps;
}

/** Accounts of the stream's subscriber scope, split into the configured waves (no rollout: none). */
export async function resolveWaves(
  deps: { config: BaseDeps['config']; organization: OrganizationDirectory },
  stream: string,
): Promise<WaveRecord[] | undefined> {
  const config = streamConfig(deps.config, stream, 'rollout');
  if (!config.rollout) return undefined;
  const active = (accounts: { id: string; status: string }[]) =>
    accounts.filter((a) => a.status === 'ACTIVE').map((a) => a.id);
  const scope = config.subscribers.scope;
  const inScope = new Set<string>();
  if (scope === 'organization')
    for (const id of active(await deps.organization.listAccounts())) inScope.add(id);
  else
    for (const ou of scope.ous)
      for (const id of active(await deps.organization.listAccountsInOu(ou))) inScope.add(id);
  const assigned = new Set<string>();
  const waves: WaveRecord[] = [];
  for (const wave of config.rollout.waves) {
    let selected: string[];
    if (!wave.ous?.length && !wave.accounts?.length) selected = [...inScope];
    else {
      selected = [...(wave.accounts ?? [])];
      for (const ou of wave.ous ?? []) selected.push(...active(await deps.organization.listAccountsInOu(ou)));
    }
    const accounts = [...new Set(selected)].filter((a) => inScope.has(a) && !assigned.has(a)).sort();
    for (const a of accounts) assigned.add(a);
    waves.push({
      name: wave.name,
      accounts,
      bakeMinutes: wave.bakeMinutes,
      ...(wave.alarmArn ? { alarmArn: wave.alarmArn } : {}),
      state: 'pending',
      announcedAt: {},
    });
  }
  return waves;
}

/** Read-modify-write with the store's version check; `change` returns false to write nothing. */
async function update(
  deps: RolloutDeps,
  releaseId: string,
  change: (record: RolloutRecord) => boolean | Promise<boolean>,
): Promise<RolloutRecord | undefined> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const record = await deps.rollouts.get(releaseId);
    if (!record) return undefined;
    const expected = record.version;
    if (!(await change(record))) return record;
    if (await deps.rollouts.put({ ...record, version: expected + 1 }, expected)) {
      return { ...record, version: expected + 1 };
    }
  }
  throw new Error(`rollout of ${releaseId}: too many concurrent updates`);
}

export type ImageReadyOutcome = 'published' | 'pinned' | 'halted' | 'aborted';

/**
 * announce calls this instead of publishing "Image Ready" itself. Without rollout waves the event goes to every
 * account in scope, as before; with waves, to the accounts of the waves already open, and the timer of the
 * current wave starts once it has every region. A pinned stream holds the image back ('pinned').
 */
export async function publishImageReady(
  deps: MaybeRolloutDeps,
  release: Release,
  detail: ImageReady,
  resources: string[],
): Promise<ImageReadyOutcome> {
  // A rollback release (src/core/rollout/rollback.ts) carries its marker in the rollout store.
  const rollbackOf = (await deps.rollouts?.get(release.releaseId))?.rollbackOf;
  if (rollbackOf) detail = { ...detail, rollbackOf };
  const pin = await deps.rollouts?.getPin(release.stream);
  if (pin && pin.revision !== release.revision && rollbackOf !== pin.revision) {
    deps.logger.info('stream pinned: image held back', {
      releaseId: release.releaseId,
      region: detail.region,
      pinnedTo: pin.revision,
    });
    return 'pinned';
  }
  // A rollback goes to every account at once: its images already ran in the fleet before.
  const waves = rollbackOf ? undefined : await resolveWaves(deps, release.stream);
  if (!waves) {
    await emit(deps.events, 'Image Ready', detail, deps.config.busName, resources);
    return 'published';
  }
  const rollout = requireRolloutPorts(deps, `release ${release.releaseId}`);
  const first = waves[0];
  if (first) first.state = 'announcing';
  // The first region of the release creates the record; a concurrent creator loses the put and re-reads.
  await rollout.rollouts.put(
    { releaseId: release.releaseId, stream: release.stream, state: 'rolling', waves, images: {}, version: 1 },
    0,
  );
  // Record the region's image first (whatever the state: a resume sends it on), then deliver outside any
  // read-modify-write, so a halt that a delivery triggers (local buses deliver at once) never races it.
  const recorded = await update(rollout, release.releaseId, (r) => {
    if (r.images[detail.region]) return false;
    r.images[detail.region] = detail;
    return true;
  });
  if (recorded?.state === 'halted' || recorded?.state === 'aborted') {
    deps.logger.info('image ready held: release not rolling', {
      releaseId: release.releaseId,
      state: recorded.state,
    });
    return recorded.state;
  }
  const record = await deliver(rollout, release.releaseId);
  if (record) await startBakeIfReady(rollout, release, record);
  deps.logger.info('image ready to waves', { releaseId: release.releaseId, region: detail.region });
  return 'published';
}

/** Waves that receive the release: every wave opened so far, halted ones included (a resume passes them). */
const OPEN = new Set<WaveRecord['state']>(['announcing', 'baking', 'healthy', 'halted']);

/**
 * Sends every recorded region's "Image Ready" to the accounts of open waves that do not have it yet, then stamps
 * those waves. Emit first, stamp second: a crash in between sends again (subscribers are idempotent).
 */
async function deliver(deps: RolloutDeps, releaseId: string): Promise<RolloutRecord | undefined> {
  const record = await deps.rollouts.get(releaseId);
  if (!record || record.state === 'aborted') return record;
  const sent: { wave: number; region: string }[] = [];
  for (const [region, detail] of Object.entries(record.images).sort(([a], [b]) => a.localeCompare(b))) {
    const audience = new Set<string>();
    record.waves.forEach((w, i) => {
      if (!OPEN.has(w.state) || w.announcedAt[region]) return;
      for (const a of w.accounts) audience.add(a);
      sent.push({ wave: i, region });
    });
    if (audience.size === 0) continue;
    await emit(
      deps.events,
      'Image Ready',
      { ...detail, audience: [...audience].sort() },
      deps.config.busName,
      [`arn:aws:ec2:${region}::image/${detail.imageId}`],
    );
  }
  if (sent.length === 0) return record;
  const now = deps.clock.now().toISOString();
  return update(deps, releaseId, (r) => {
    for (const { wave, region } of sent) {
      const w = r.waves[wave];
      if (w) w.announcedAt[region] ??= now;
    }
    return true;
  });
}

/** Timer name: EventBridge Scheduler names are [0-9a-zA-Z-_.]{1,64}; the wave (and wait) part always fits. */
export function timerName(releaseId: string, wave: number, wait = 0): string {
  const suffix = `-wave-${wave}${wait > 0 ? `-wait-${wait}` : ''}`;
  return `stemcell-${releaseId.replace(/[^0-9a-zA-Z-_.]/g, '-')}`.slice(0, 64 - suffix.length) + suffix;
}

/**
 * A wave whose bake time is over while an instance refresh it started is still running (reported "started",
 * no end event yet) is not healthy yet: it is judged again after a step of its bake time (at most
 * REFRESH_WAIT_MINUTES), up to REFRESH_WAITS times; a refresh still running after that halts the release.
 * A failure reported meanwhile halts it at once (onLaunchTemplateReport).
 */
export const REFRESH_WAIT_MINUTES = 5;
export const REFRESH_WAITS = 12;
/** One wait step of a wave, in minutes (a few seconds at least: the demo bakes for seconds). */
export function refreshWaitMinutes(wave: Pick<WaveRecord, 'bakeMinutes'>): number {
  return Math.min(REFRESH_WAIT_MINUTES, Math.max(wave.bakeMinutes, 0.05));
}

/** The current wave has every region: it bakes, and the timer calls announce back when that is over. */
async function startBakeIfReady(deps: RolloutDeps, release: Release, record: RolloutRecord): Promise<void> {
  const index = record.waves.findIndex((w) => w.state === 'announcing');
  const wave = record.waves[index];
  if (!wave) return;
  const regions = Object.keys(release.regions);
  if (!regions.every((region) => wave.announcedAt[region])) return;
  const at = new Date(deps.clock.now().getTime() + wave.bakeMinutes * 60_000);
  const updated = await update(deps, release.releaseId, (r) => {
    const w = r.waves[index];
    if (w?.state !== 'announcing') return false;
    w.state = 'baking';
    w.bakeUntil = at.toISOString();
    return true;
  });
  if (updated?.waves[index]?.state !== 'baking') return;
  const bakeUntil = new Date(updated.waves[index]?.bakeUntil ?? at);
  await deps.timer.schedule(timerName(release.releaseId, index), bakeUntil, {
    kind: 'stemcell-rollout-timer',
    releaseId: release.releaseId,
    wave: index,
  });
  deps.logger.info('wave baking', { releaseId: release.releaseId, wave: wave.name, until: bakeUntil });
}

export interface WaveHealth {
  healthy: boolean;
  reason?: string;
  accounts: { accountId: string; region: string }[];
  /** Healthy so far, but these accounts' instance refreshes have not ended yet. */
  refreshing?: { accountId: string; region: string }[];
}

/**
 * A wave is healthy when no account of it reported a failed, cancelled or rolled-back instance refresh, every
 * account that follows the stream reported each region, and its alarm (if any) is OK. Followers are the
 * account/region pairs that reported for an earlier release of the stream: an account without a tagged launch
 * template (the management account, say) never reports, and its silence is no failure; a follower's is.
 */
export async function waveHealth(
  deps: { alarms?: Alarms; releases: ReleaseStore },
  release: Release,
  wave: WaveRecord,
): Promise<WaveHealth> {
  const regions = Object.keys(release.regions).sort();
  const followers = new Set<string>();
  for (const earlier of await deps.releases.list(release.stream)) {
    if (earlier.sequence < release.sequence)
      for (const key of Object.keys(earlier.accounts)) followers.add(key);
  }
  const failed: WaveHealth['accounts'] = [];
  const missing: WaveHealth['accounts'] = [];
  const refreshing: WaveHealth['accounts'] = [];
  for (const accountId of wave.accounts) {
    for (const region of regions) {
      const key = `${accountId}/${region}`;
      const record = release.accounts[key];
      if (!record) {
        if (followers.has(key)) missing.push({ accountId, region });
      } else if (record.instanceRefresh && FAILED_REFRESH.has(record.instanceRefresh))
        failed.push({ accountId, region });
      else if (record.instanceRefresh === 'started') refreshing.push({ accountId, region });
    }
  }
  if (failed.length > 0)
    return { healthy: false, reason: `instance refresh failed: ${accountList(failed)}`, accounts: failed };
  if (missing.length > 0)
    return {
      healthy: false,
      reason: `no "Launch Template Updated" report within the bake time from ${accountList(missing)}`,
      accounts: missing,
    };
  if (wave.alarmArn) {
    if (!deps.alarms)
      return { healthy: false, reason: `alarm ${wave.alarmArn}: no alarm service`, accounts: [] };
    const state = await deps.alarms.state(wave.alarmArn);
    if (state !== 'OK')
      return { healthy: false, reason: `alarm ${wave.alarmArn} is ${state ?? 'missing'}`, accounts: [] };
  }
  return { healthy: true, accounts: [], ...(refreshing.length > 0 ? { refreshing } : {}) };
}

/** "<account> in <region>, …": who a wave verdict is about, in reasons and halts. */
function accountList(xs: WaveHealth['accounts']): string {
  return xs.map((x) => `${x.accountId} in ${x.region}`).join(', ');
}

export type TimerResult =
  | { outcome: 'next-wave'; wave: string }
  | { outcome: 'rollout-complete' }
  | { outcome: 'halted'; reason: string }
  | { outcome: 'waiting'; reason: string }
  | { outcome: 'ignored'; reason: string };

/** The bake timer of one wave fired: judge the wave, then open the next one or halt. */
export async function onBakeElapsed(deps: RolloutDeps, input: RolloutTimerInput): Promise<TimerResult> {
  const release = await deps.releases.get(input.releaseId);
  if (!release) throw new ReleaseNotFoundError(input.releaseId, `bake timer of wave ${input.wave}`);
  const record = await deps.rollouts.get(input.releaseId);
  const wave = record?.waves[input.wave];
  if (!record || !wave) return { outcome: 'ignored', reason: `no wave ${input.wave} in ${input.releaseId}` };
  if (record.state !== 'rolling' || wave.state !== 'baking')
    return { outcome: 'ignored', reason: `release ${record.state}, wave ${wave.name} ${wave.state}` };
  const health = await waveHealth(deps, release, wave);
  if (!health.healthy) {
    const reason = health.reason ?? 'unhealthy';
    await halt(deps, release, input.wave, reason, health.accounts);
    return { outcome: 'halted', reason };
  }
  if (health.refreshing) {
    const list = accountList(health.refreshing);
    const wait = (input.wait ?? 0) + 1;
    const step = refreshWaitMinutes(wave);
    if (wait > REFRESH_WAITS) {
      const minutes = Math.round(REFRESH_WAITS * step * 100) / 100;
      const reason = `instance refresh still running ${minutes} minutes after the bake time: ${list}`;
      await halt(deps, release, input.wave, reason, health.refreshing);
      return { outcome: 'halted', reason };
    }
    const at = new Date(deps.clock.now().getTime() + step * 60_000);
    await deps.timer.schedule(timerName(release.releaseId, input.wave, wait), at, { ...input, wait });
    const reason = `waiting for the instance refresh of ${list} (${wait}/${REFRESH_WAITS})`;
    deps.logger.info('wave waits for instance refreshes', {
      releaseId: release.releaseId,
      wave: wave.name,
      reason,
    });
    return { outcome: 'waiting', reason };
  }
  return openNextWave(deps, release, input.wave, (w) => {
    w.state = 'healthy';
    w.finishedAt = deps.clock.now().toISOString();
  });
}

/** Marks wave `done` finished (via `finish`), opens the next wave in every region announced so far. */
async function openNextWave(
  deps: RolloutDeps,
  release: Release,
  done: number,
  finish: (wave: WaveRecord, record: RolloutRecord) => void,
): Promise<TimerResult> {
  let next: WaveRecord | undefined;
  const record = await update(deps, release.releaseId, (r) => {
    const w = r.waves[done];
    if (!w) return false;
    finish(w, r);
    next = r.waves[done + 1];
    if (next) next.state = 'announcing';
    else r.state = 'complete';
    return true;
  });
  if (!record) throw new RolloutStateError(`release ${release.releaseId} has no rollout`);
  if (!next) {
    deps.logger.info('rollout complete', { releaseId: release.releaseId });
    return { outcome: 'rollout-complete' };
  }
  const index = done + 1;
  const opened = record.waves[index];
  const delivered = await deliver(deps, release.releaseId);
  if (delivered) await startBakeIfReady(deps, release, delivered);
  deps.logger.info('wave opened', { releaseId: release.releaseId, wave: opened?.name });
  return { outcome: 'next-wave', wave: opened?.name ?? String(index) };
}

/** Stops the release at wave `index`: no later wave receives it; "Release Halted" says why and who. */
export async function halt(
  deps: RolloutDeps,
  release: Release,
  index: number,
  reason: string,
  accounts: HaltRecord['accounts'],
): Promise<boolean> {
  const haltedAt = deps.clock.now().toISOString();
  let halted: HaltRecord | undefined;
  const record = await update(deps, release.releaseId, (r) => {
    const w = r.waves[index];
    if (!w || r.state !== 'rolling') return false;
    w.state = 'halted';
    w.finishedAt = haltedAt;
    halted = { wave: w.name, reason, accounts, at: haltedAt };
    r.halted = halted;
    r.state = 'halted';
    return true;
  });
  if (!record || !halted) return false;
  await emit(
    deps.events,
    'Release Halted',
    {
      version: 1,
      stream: release.stream,
      revision: release.revision,
      sequence: release.sequence,
      releaseId: release.releaseId,
      wave: halted.wave,
      reason,
      accounts,
      wavesReached: record.waves.filter((w) => w.state !== 'pending').map((w) => w.name),
      haltedAt,
    },
    deps.config.busName,
  );
  deps.logger.warn('release halted', { releaseId: release.releaseId, wave: halted.wave, reason });
  return true;
}

/**
 * A "Launch Template Updated" report was recorded: a failed, cancelled or rolled-back instance refresh halts a
 * rolling release at once (no need to wait for the bake time).
 */
export async function onLaunchTemplateReport(
  deps: MaybeRolloutDeps,
  detail: LaunchTemplateUpdated,
): Promise<boolean> {
  if (!FAILED_REFRESH.has(detail.instanceRefresh) || !deps.rollouts || !deps.timer) return false;
  const record = await deps.rollouts.get(detail.releaseId);
  if (record?.state !== 'rolling') return false;
  const index = record.waves.findIndex((w) => w.accounts.includes(detail.accountId));
  if (index < 0) return false;
  // An operator resumed past this wave: its faults, a refresh's end reported late among them, are accepted.
  if (record.waves[index]?.resumedAt) return false;
  const release = await deps.releases.get(detail.releaseId);
  if (!release) return false;
  return halt(
    deps as RolloutDeps,
    release,
    index,
    `instance refresh ${detail.instanceRefresh}: ${detail.accountId} in ${detail.region} (${detail.launchTemplateName})`,
    [{ accountId: detail.accountId, region: detail.region }],
  );
}

/** Finds a release by stream and revision (the operator's handle on it). */
export async function releaseByRevision(
  releases: ReleaseStore,
  stream: string,
  revision: string,
): Promise<Release> {
  const release = (await releases.list(stream)).find((r) => r.revision === revision);
  if (!release) throw new ReleaseNotFoundError(`${stream}/${revision}`, 'no release of that revision');
  return release;
}

/** `stemcell release resume`: the halted wave counts as done, and the next wave opens now. */
export async function resumeRelease(
  deps: RolloutDeps,
  stream: string,
  revision: string,
): Promise<TimerResult> {
  const release = await releaseByRevision(deps.releases, stream, revision);
  const record = await deps.rollouts.get(release.releaseId);
  if (!record) throw new RolloutStateError(`release ${stream}/${revision} has no rollout waves`);
  if (record.state !== 'halted' || !record.halted)
    throw new RolloutStateError(
      `release ${stream}/${revision} is ${record.state}, not halted: nothing to resume`,
    );
  // The wave the halt names: waves resumed past earlier keep their `halted` state, so the first one halted
  // is not necessarily this one.
  const halted = record.halted;
  const index = record.waves.findIndex((w) => w.name === halted.wave);
  return openNextWave(deps, release, index, (w, r) => {
    w.resumedAt = deps.clock.now().toISOString();
    if (r.halted) r.resumed = [...(r.resumed ?? []), r.halted];
    delete r.halted;
    r.state = 'rolling';
  });
}

/** `stemcell release abort`: no further wave ever receives this release. */
export async function abortRelease(
  deps: RolloutDeps,
  stream: string,
  revision: string,
): Promise<RolloutRecord> {
  const release = await releaseByRevision(deps.releases, stream, revision);
  const at = deps.clock.now().toISOString();
  const record = await update(deps, release.releaseId, (r) => {
    if (r.state === 'complete' || r.state === 'aborted')
      throw new RolloutStateError(`release ${stream}/${revision} is ${r.state}: nothing to abort`);
    for (const w of r.waves) {
      if (w.state === 'pending' || w.state === 'announcing' || w.state === 'baking') {
        w.state = 'aborted';
        w.finishedAt = at;
      }
    }
    r.state = 'aborted';
    return true;
  });
  if (!record) throw new RolloutStateError(`release ${stream}/${revision} has no rollout waves`);
  deps.logger.warn('release aborted', { releaseId: release.releaseId });
  return record;
}

/** Release Complete waits for the rollout: true when there is none, or its last wave is healthy. */
export async function rolloutFinished(deps: MaybeRolloutDeps, releaseId: string): Promise<boolean> {
  const record = await deps.rollouts?.get(releaseId);
  return !record || record.state === 'complete';
}

/**
 * Who may be told about a release's image in a region right now: what the reconciler asks before it delivers
 * "Image Ready" again or to a late joiner, so that it never outruns the waves or a pin. Without a rollout (or
 * once it is complete, and for a rollback) everyone in scope; a rolling release only the accounts of waves
 * already sent that region; a halted or aborted release, or a stream pinned to another revision, nobody.
 */
export type ReleaseAudience = 'everyone' | 'nobody' | ReadonlySet<string>;
export async function releaseAudience(
  deps: { rollouts?: RolloutStore },
  release: Release,
  region: string,
): Promise<ReleaseAudience> {
  if (!deps.rollouts) return 'everyone';
  const record = await deps.rollouts.get(release.releaseId);
  const pin = await deps.rollouts.getPin(release.stream);
  if (pin && pin.revision !== release.revision && record?.rollbackOf !== pin.revision) return 'nobody';
  if (!record || record.state === 'complete') return 'everyone';
  if (record.state !== 'rolling') return 'nobody';
  return new Set(record.waves.filter((w) => w.announcedAt[region]).flatMap((w) => w.accounts));
}

export function admits(audience: ReleaseAudience, accountId: string): boolean {
  return audience === 'everyone' || (audience !== 'nobody' && audience.has(accountId));
}

/**
 * Whether the reconciler should hand a registered, unannounced image to announce again: not while the stream
 * is pinned to another revision (announce would hold it back again, on every run), nor when a halted or
 * aborted rollout already recorded that region (a resume sends it on).
 */
export async function mayReannounce(
  deps: { rollouts?: RolloutStore },
  release: Release,
  region: string,
): Promise<boolean> {
  if (!deps.rollouts) return true;
  const record = await deps.rollouts.get(release.releaseId);
  const pin = await deps.rollouts.getPin(release.stream);
  if (pin && pin.revision !== release.revision && record?.rollbackOf !== pin.revision) return false;
  return !(record && (record.state === 'halted' || record.state === 'aborted') && record.images[region]);
}

/** What `status --json`, the demo and the status page say about a release's rollout. */
export interface RolloutSummary {
  state: RolloutRecord['state'];
  waves: { name: string; state: WaveRecord['state']; accounts: string[]; bakeUntil?: string }[];
  halted: (HaltRecord & { reason: string }) | null;
}
export function rolloutSummary(record: RolloutRecord | undefined): RolloutSummary | undefined {
  if (!record) return undefined;
  return {
    state: record.state,
    waves: record.waves.map((w) => ({
      name: w.name,
      state: w.state,
      accounts: w.accounts,
      ...(w.bakeUntil ? { bakeUntil: w.bakeUntil } : {}),
    })),
    halted: record.halted ?? null,
  };
}
