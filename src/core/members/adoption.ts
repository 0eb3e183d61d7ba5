// The adoption view: who runs what. Per stream, region and account, the image each tagged launch template's
// default version names, the images the running Auto Scaling groups' instances use, and which release each
// image belongs to. It is an inventory through the MemberAccounts port (locally the accounts' state; on AWS the
// read-only member role expire already assumes), joined with the "Launch Template Updated" reports in the
// release table.
import type { StemcellConfig } from '#config/schema.ts';
import type { MemberAccounts, OrganizationDirectory, Release, ReleaseStore } from '#ports';
import { sequenceFromVersionDescription, TAG } from '../model/naming.ts';

export interface AdoptionDeps {
  config: StemcellConfig;
  organization: OrganizationDirectory;
  members: MemberAccounts;
  releases: ReleaseStore;
}

export interface ImageRef {
  imageId: string;
  /** The release whose image this is (the newest that announced it, so a rollback names itself). */
  releaseId?: string;
  revision?: string;
  sequence?: number;
}

export interface AdoptionRow {
  stream: string;
  region: string;
  accountId: string;
  launchTemplates: (ImageRef & { launchTemplateId: string; name: string; defaultVersion: number })[];
  autoScalingGroups: { name: string; images: ImageRef[] }[];
  /** What the account last reported for this stream and region (from the release table). */
  lastReport?: { releaseId: string; outcome: string; instanceRefresh?: string; at: string };
  /** Newest release announced in the region, and whether every template here is on it. */
  current?: { releaseId: string; imageId: string; adopted: boolean };
}

export async function adoptionView(deps: AdoptionDeps, stream?: string): Promise<AdoptionRow[]> {
  const rows: AdoptionRow[] = [];
  for (const name of stream ? [stream] : Object.keys(deps.config.streams).sort()) {
    const config = deps.config.streams[name];
    if (!config) throw new Error(`adoption: unknown stream ${JSON.stringify(name)}`);
    const releases = (await deps.releases.list(name)).sort((a, b) => b.sequence - a.sequence);
    const accounts = await scopeAccounts(deps, name);
    for (const region of config.regions) {
      const byImage = imageIndex(releases, region);
      const current = releases.find(
        (r) => r.regions[region]?.state === 'announced' && r.regions[region]?.imageId,
      );
      for (const accountId of accounts) {
        const member = deps.members.forAccount(accountId, region);
        const templates = await member.listLaunchTemplates(TAG.stream, name);
        const row: AdoptionRow = {
          stream: name,
          region,
          accountId,
          launchTemplates: [],
          autoScalingGroups: [],
        };
        for (const t of templates) {
          const version = await member.getLaunchTemplateVersion(t.launchTemplateId, t.defaultVersionNumber);
          const ref = describe(byImage, version.imageId ?? '-');
          // A version stemcell did not write still names its image; its description may name a sequence.
          const sequence = ref.sequence ?? sequenceFromVersionDescription(version.versionDescription, name);
          row.launchTemplates.push({
            ...ref,
            ...(sequence !== undefined ? { sequence } : {}),
            launchTemplateId: t.launchTemplateId,
            name: t.launchTemplateName,
            defaultVersion: t.defaultVersionNumber,
          });
        }
        for (const group of await member.listAutoScalingGroups(TAG.stream, name)) {
          const images = (await member.runningImages?.(group.name)) ?? [];
          row.autoScalingGroups.push({ name: group.name, images: images.map((id) => describe(byImage, id)) });
        }
        const report = releases
          .map((r) => ({ r, a: r.accounts[`${accountId}/${region}`] }))
          .find((x) => x.a !== undefined);
        if (report?.a)
          row.lastReport = {
            releaseId: report.r.releaseId,
            outcome: report.a.outcome,
            ...(report.a.instanceRefresh ? { instanceRefresh: report.a.instanceRefresh } : {}),
            at: report.a.updatedAt,
          };
        const currentImage = current?.regions[region]?.imageId;
        if (current && currentImage)
          row.current = {
            releaseId: current.releaseId,
            imageId: currentImage,
            adopted:
              row.launchTemplates.length > 0 && row.launchTemplates.every((t) => t.imageId === currentImage),
          };
        if (row.launchTemplates.length > 0 || row.autoScalingGroups.length > 0 || row.lastReport)
          rows.push(row);
      }
    }
  }
  return rows;
}

async function scopeAccounts(deps: AdoptionDeps, stream: string): Promise<string[]> {
  const scope = deps.config.streams[stream]?.subscribers.scope ?? 'organization';
  const accounts =
    scope === 'organization'
      ? await deps.organization.listAccounts()
      : (await Promise.all(scope.ous.map((ou) => deps.organization.listAccountsInOu(ou)))).flat();
  return [...new Set(accounts.map((a) => a.id))].sort();
}

/** imageId → the newest release (releases come newest first) that holds it in the region. */
function imageIndex(releases: Release[], region: string): Map<string, Release> {
  const index = new Map<string, Release>();
  for (const release of releases) {
    const imageId = release.regions[region]?.imageId;
    if (imageId && !index.has(imageId)) index.set(imageId, release);
  }
  return index;
}

function describe(index: Map<string, Release>, imageId: string): ImageRef {
  const release = index.get(imageId);
  return release
    ? { imageId, releaseId: release.releaseId, revision: release.revision, sequence: release.sequence }
    : { imageId };
}
