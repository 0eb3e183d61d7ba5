// expire: keep the newest N images per stream and region (by sequence) and retire the older ones, never one that
// anything can still launch from. Deprecation comes first; deregistration waits a grace period after it (7 days by
// default); the snapshot is deleted only once its image is deregistered.
//
// "In use" is every image that:
// - any launch-template version an Auto Scaling group references names: `$Default`, `$Latest` or an explicit
//   version, whether or not the template is tagged for stemcell;
// - the default version of any launch template tagged for the stream names (new instances launch from it);
// - a running (or stopped) instance uses, where the account lets us see its instances.
// Asked in every account that can launch the stream's images: its sharing audience and its subscriber scope.
import type { ImageInfo, MemberAccount } from '#ports';
import type { ExpireDeps } from '../deps.ts';
import { releaseFromTags, TAG } from '../model/naming.ts';

export const DEFAULT_EXPIRE_GRACE_MS = 7 * 24 * 3_600_000;

export interface ExpireOptions {
  /**
   * How long an image stays deprecated before it is deregistered. 0 does both in one run.
   * @defaultValue 7 days (DEFAULT_EXPIRE_GRACE_MS)
   */
  graceMs?: number;
  /** Only these streams; all configured streams by default. */
  streams?: string[];
  /** Decide and report, change nothing. */
  dryRun?: boolean;
}

export interface ExpiredImage {
  stream: string;
  region: string;
  imageId: string;
  sequence: number;
  action: 'deprecated' | 'deregistered';
  snapshotDeleted?: string;
  /** Deprecated, and waiting for the grace period to end: when it may be deregistered. */
  deregisterAfter?: string;
}

export interface ExpireResult {
  dryRun: boolean;
  expired: ExpiredImage[];
  /** Images past the keep count that stay because something can still launch from them. */
  keptInUse: Array<{ stream: string; region: string; imageId: string; accounts: string[]; uses: string[] }>;
  /** Deprecated images whose grace period has not ended. */
  waiting: Array<{ stream: string; region: string; imageId: string; deregisterAfter: string }>;
  /** Images past the keep count that stay because a stream is pinned to them or a rollback points at them. */
  keptProtected?: Array<{ stream: string; region: string; imageId: string; reason: string }>;
}

export async function expireImages(deps: ExpireDeps, options: ExpireOptions = {}): Promise<ExpireResult> {
  const graceMs = options.graceMs ?? DEFAULT_EXPIRE_GRACE_MS;
  const dryRun = options.dryRun ?? false;
  const now = deps.clock.now();
  const result: ExpireResult = { dryRun, expired: [], keptInUse: [], waiting: [] };
  for (const stream of options.streams ?? Object.keys(deps.config.streams)) {
    const config = deps.config.streams[stream];
    if (!config) throw new Error(`expire: unknown stream ${JSON.stringify(stream)}`);
    const accounts = await audience(deps, stream);
    for (const region of config.regions) {
      const { images, snapshots } = deps.imaging(region);
      const ours = (await images.listByTag(TAG.stream, stream))
        .filter((image) => image.state !== 'deregistered')
        .map((image) => ({ image, sequence: releaseFromTags(image.tags)?.sequence }))
        .filter((x): x is { image: ImageInfo; sequence: number } => x.sequence !== undefined)
        .sort((a, b) => b.sequence - a.sequence);
      const candidates = ours.slice(Math.max(1, config.keep));
      if (candidates.length === 0) continue;

      const inUse = await imagesInUse(deps, stream, region, accounts);
      const kept = (await deps.protectedImages?.(stream, region)) ?? new Map<string, string>();
      for (const { image, sequence } of candidates) {
        const why = kept.get(image.imageId);
        if (why) {
          result.keptProtected = [
            ...(result.keptProtected ?? []),
            { stream, region, imageId: image.imageId, reason: why },
          ];
          continue;
        }
        const users = inUse.get(image.imageId);
        if (users) {
          result.keptInUse.push({
            stream,
            region,
            imageId: image.imageId,
            accounts: [...users.accounts].sort(),
            uses: [...users.uses].sort(),
          });
          continue;
        }
        const base = { stream, region, imageId: image.imageId, sequence };
        const deprecatedAt = image.deprecatedAt ? new Date(image.deprecatedAt) : undefined;
        const since = deprecatedAt && deprecatedAt <= now ? deprecatedAt : undefined;
        if (!since) {
          if (!dryRun) await images.deprecate(image.imageId, now);
          if (graceMs > 0) {
            const deregisterAfter = new Date(now.getTime() + graceMs).toISOString();
            result.expired.push({ ...base, action: 'deprecated', deregisterAfter });
            continue;
          }
        } else if (now.getTime() - since.getTime() < graceMs) {
          const deregisterAfter = new Date(since.getTime() + graceMs).toISOString();
          result.waiting.push({ stream, region, imageId: image.imageId, deregisterAfter });
          continue;
        }
        // Deregister first: the snapshot goes only once no image can be launched from it.
        if (!dryRun) {
          await images.deregister(image.imageId);
          await snapshots.delete(image.snapshotId);
        }
        result.expired.push({ ...base, action: 'deregistered', snapshotDeleted: image.snapshotId });
        deps.logger.info(dryRun ? 'image would expire' : 'image expired', {
          stream,
          region,
          imageId: image.imageId,
          sequence,
        });
      }
    }
  }
  return result;
}

/** Every account that may launch the stream's images: its sharing audience and its subscriber scope. */
async function audience(deps: ExpireDeps, stream: string): Promise<string[]> {
  const config = deps.config.streams[stream];
  const scope = config?.subscribers.scope ?? 'organization';
  const sharing = config?.sharing ?? { organization: false, ous: [] };
  const wholeOrg = scope === 'organization' || sharing.organization;
  const ous = [...new Set([...(scope === 'organization' ? [] : scope.ous), ...sharing.ous])];
  const accounts = wholeOrg
    ? await deps.organization.listAccounts()
    : (await Promise.all(ous.map((ou) => deps.organization.listAccountsInOu(ou)))).flat();
  // Suspended accounts still hold launch templates that may come back: ask them too.
  return [...new Set(accounts.map((a) => a.id))].sort();
}

interface Users {
  accounts: Set<string>;
  /** What refers to the image, e.g. "200000000001 asg web-asg → lt-… v3". */
  uses: Set<string>;
}

/** imageId → who can still launch from it, in one region. */
async function imagesInUse(
  deps: ExpireDeps,
  stream: string,
  region: string,
  accounts: string[],
): Promise<Map<string, Users>> {
  const inUse = new Map<string, Users>();
  const note = (imageId: string | undefined, accountId: string, use: string) => {
    if (!imageId) return;
    const users = inUse.get(imageId) ?? { accounts: new Set(), uses: new Set() };
    users.accounts.add(accountId);
    users.uses.add(`${accountId} ${use}`);
    inUse.set(imageId, users);
  };
  for (const accountId of accounts) {
    const member = deps.members.forAccount(accountId, region);
    const versionsOf = cachedVersions(member);
    for (const group of await member.listAutoScalingGroups()) {
      if (!group.launchTemplateId) continue;
      const versions = await versionsOf(group.launchTemplateId);
      const wanted = group.launchTemplateVersion ?? '$Default';
      const version =
        wanted === '$Latest'
          ? versions.reduce(
              (a, b) => (b.versionNumber > a.versionNumber ? b : a),
              versions[0] ?? { versionNumber: 0 },
            )
          : wanted === '$Default'
            ? versions.find((v) => v.defaultVersion)
            : versions.find((v) => String(v.versionNumber) === wanted);
      note(version?.imageId, accountId, `asg ${group.name} → ${group.launchTemplateId} ${wanted}`);
    }
    for (const template of await member.listLaunchTemplates(TAG.stream, stream)) {
      const versions = await versionsOf(template.launchTemplateId);
      const version = versions.find((v) => v.versionNumber === template.defaultVersionNumber);
      note(version?.imageId, accountId, `launch template ${template.launchTemplateName} default`);
    }
    for (const imageId of (await member.instanceImageIds?.()) ?? []) note(imageId, accountId, 'instance');
  }
  return inUse;
}

function cachedVersions(member: MemberAccount) {
  const cache = new Map<string, ReturnType<MemberAccount['listLaunchTemplateVersions']>>();
  return (launchTemplateId: string) => {
    let versions = cache.get(launchTemplateId);
    if (!versions) {
      versions = member.listLaunchTemplateVersions(launchTemplateId).catch((err: unknown) => {
        // A group may still name a template deleted since: nothing launches from it. Any other failure
        // (throttling, a missing permission) leaves the use unknown, and an image in use never goes on a guess.
        if (err instanceof Error && err.name === 'InvalidLaunchTemplateId.NotFound') return [];
        throw new Error(
          `expire: cannot read the versions of launch template ${launchTemplateId} in ${member.accountId}/${member.region}: ${err instanceof Error ? err.message : String(err)}`,
          { cause: err },
        );
      });
      cache.set(launchTemplateId, versions);
    }
    return versions;
  };
}
