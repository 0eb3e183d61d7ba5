// A wave's health, judged when its bake time is over (src/core/rollout/rollout.ts): who refused the image, whose
// instance refresh failed, who never reported, and the wave's alarm.
import type { Alarms, Release, ReleaseStore, WaveRecord } from '#ports';

/** Refresh outcomes that make a wave unhealthy. */
export const FAILED_REFRESH = new Set<string>(['failed', 'cancelled', 'rolled-back']);

export interface WaveHealth {
  healthy: boolean;
  reason?: string;
  accounts: { accountId: string; region: string }[];
  /** Healthy so far, but these accounts' instance refreshes have not ended yet. */
  refreshing?: { accountId: string; region: string }[];
}

/**
 * A wave is healthy when no account of it refused the image (it could not launch it, so its templates stayed),
 * none reported a failed, cancelled or rolled-back instance refresh, every
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
  const refused: WaveHealth['accounts'] = [];
  const why: string[] = [];
  const failed: WaveHealth['accounts'] = [];
  const missing: WaveHealth['accounts'] = [];
  const refreshing: WaveHealth['accounts'] = [];
  for (const accountId of wave.accounts) {
    for (const region of regions) {
      const key = `${accountId}/${region}`;
      const record = release.accounts[key];
      if (!record) {
        if (followers.has(key)) missing.push({ accountId, region });
      } else if (record.refused && record.refused.length > 0) {
        refused.push({ accountId, region });
        for (const r of record.refused)
          why.push(`${accountId} in ${region} (${r.launchTemplateName}): ${r.check}: ${r.reason}`);
      } else if (record.instanceRefresh && FAILED_REFRESH.has(record.instanceRefresh))
        failed.push({ accountId, region });
      else if (record.instanceRefresh === 'started') refreshing.push({ accountId, region });
    }
  }
  if (refused.length > 0)
    return {
      healthy: false,
      reason: `not launchable, launch templates kept: ${why.join('; ')}`,
      accounts: refused,
    };
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
export function accountList(xs: WaveHealth['accounts']): string {
  return xs.map((x) => `${x.accountId} in ${x.region}`).join(', ');
}
