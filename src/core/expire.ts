// expire: keep the newest N images per stream and region (by sequence), deprecate the older ones, then
// deregister them and delete their snapshots. Never the newest, and never one that a launch template's default
// version in any account of the stream's subscriber scope still points at.
import type { ImageInfo } from '#ports';
import type { ExpireDeps } from './deps.ts';
import { releaseFromTags, TAG } from './naming.ts';

export interface ExpireOptions {
  /**
   * How long an image stays deprecated before it is deregistered. 0 (the default) does both in one run;
   * a grace period gives launches that still name the image time to move on.
   */
  graceMs?: number;
  /** Only these streams; all configured streams by default. */
  streams?: string[];
}

export interface ExpiredImage {
  stream: string;
  region: string;
  imageId: string;
  sequence: number;
  action: 'deprecated' | 'deregistered';
  snapshotDeleted?: string;
}

export interface ExpireResult {
  expired: ExpiredImage[];
  /** Images past the keep count that stay because a launch template uses them. */
  keptInUse: Array<{ stream: string; region: string; imageId: string; accounts: string[] }>;
  /** Images past the keep count that stay because a stream is pinned to them or a rollback points at them. */
  keptProtected?: Array<{ stream: string; region: string; imageId: string; reason: string }>;
}

export async function expireImages(deps: ExpireDeps, options: ExpireOptions = {}): Promise<ExpireResult> {
  const graceMs = options.graceMs ?? 0;
  const now = deps.clock.now();
  const result: ExpireResult = { expired: [], keptInUse: [] };
  for (const stream of options.streams ?? Object.keys(deps.config.streams)) {
    const config = deps.config.streams[stream];
    if (!config) throw new Error(`expire: unknown stream ${JSON.stringify(stream)}`);
    const accounts = await accountsInScope(deps, stream);
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
          result.keptInUse.push({ stream, region, imageId: image.imageId, accounts: users });
          continue;
        }
        const deprecatedAt = image.deprecatedAt ? new Date(image.deprecatedAt) : undefined;
        if (!deprecatedAt || deprecatedAt > now) {
          await images.deprecate(image.imageId, now);
          if (graceMs > 0) {
            result.expired.push({ stream, region, imageId: image.imageId, sequence, action: 'deprecated' });
            continue;
          }
        } else if (now.getTime() - deprecatedAt.getTime() < graceMs) {
          continue;
        }
        await images.deregister(image.imageId);
        await snapshots.delete(image.snapshotId);
        result.expired.push({
          stream,
          region,
          imageId: image.imageId,
          sequence,
          action: 'deregistered',
          snapshotDeleted: image.snapshotId,
        });
        deps.logger.info('image expired', { stream, region, imageId: image.imageId, sequence });
      }
    }
  }
  return result;
}

async function accountsInScope(deps: ExpireDeps, stream: string): Promise<string[]> {
  const scope = deps.config.streams[stream]?.subscribers.scope ?? 'organization';
  const accounts =
    scope === 'organization'
      ? await deps.organization.listAccounts()
      : (await Promise.all(scope.ous.map((ou) => deps.organization.listAccountsInOu(ou)))).flat();
  // Suspended accounts still hold launch templates that may come back: ask them too.
  return [...new Set(accounts.map((a) => a.id))].sort();
}

/** imageId → accounts whose tagged launch templates' default version uses it, in one region. */
async function imagesInUse(
  deps: ExpireDeps,
  stream: string,
  region: string,
  accounts: string[],
): Promise<Map<string, string[]>> {
  const inUse = new Map<string, string[]>();
  for (const accountId of accounts) {
    const member = deps.members.forAccount(accountId, region);
    for (const template of await member.listLaunchTemplates(TAG.stream, stream)) {
      const version = await member.getLaunchTemplateVersion(
        template.launchTemplateId,
        template.defaultVersionNumber,
      );
      if (!version.imageId) continue;
      const users = inUse.get(version.imageId) ?? [];
      if (!users.includes(accountId)) users.push(accountId);
      inUse.set(version.imageId, users);
    }
  }
  return inUse;
}
