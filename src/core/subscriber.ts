// subscriber: runs in a member account. On "Image Ready" for stream S in region R, move every launch template
// tagged stemcell:stream=S in R to the new image: a new version from the default one, made the default. Never
// backwards: the default version's description records the sequence it holds. Then the optional SSM parameter
// and instance refresh, and a "Launch Template Updated" report back to the central bus.
import type { ImageReady, LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { InstanceRefreshStatus, LaunchTemplate, MemberAccount } from '#ports';
import type { SubscriberDeps } from './deps.ts';
import { emit } from './emit.ts';
import {
  clientToken,
  expandParameterName,
  launchTemplateVersionDescription,
  sequenceFromVersionDescription,
  TAG,
} from './naming.ts';

export interface TemplateOutcome {
  launchTemplateId: string;
  launchTemplateName: string;
  outcome: LaunchTemplateUpdated['outcome'];
  /** The default version after this call. */
  versionNumber: number;
  instanceRefresh: LaunchTemplateUpdated['instanceRefresh'];
  /** Auto Scaling groups whose instance refresh this call started. */
  refreshedGroups: string[];
}

export interface SubscriberResult {
  accountId: string;
  region: string;
  ssmParameter?: string;
  templates: TemplateOutcome[];
}

export async function applyImageReady(deps: SubscriberDeps, image: ImageReady): Promise<SubscriberResult> {
  const member = deps.members.forAccount(deps.accountId, image.region);
  const settings = deps.settings(image.stream);
  const templates = await member.listLaunchTemplates(TAG.stream, image.stream);
  const outcomes: TemplateOutcome[] = [];
  for (const template of templates) outcomes.push(await moveTemplate(deps, member, template, image));

  // The parameter follows the newest sequence only: written when some template moved or already holds it.
  let ssmParameter: string | undefined;
  if (settings.ssmParameter && outcomes.some((o) => o.outcome !== 'skipped-older')) {
    ssmParameter = expandParameterName(settings.ssmParameter, image.stream, image.region);
    await member.putParameter(ssmParameter, image.imageId);
  }

  const updatedAt = deps.clock.now().toISOString();
  for (const o of outcomes) {
    await emit(
      deps.events,
      'Launch Template Updated',
      {
        version: 1,
        stream: image.stream,
        revision: image.revision,
        sequence: image.sequence,
        releaseId: image.releaseId,
        accountId: deps.accountId,
        region: image.region,
        imageId: image.imageId,
        launchTemplateId: o.launchTemplateId,
        launchTemplateName: o.launchTemplateName,
        versionNumber: o.versionNumber,
        outcome: o.outcome,
        ...(ssmParameter ? { ssmParameter } : {}),
        instanceRefresh: o.instanceRefresh,
        updatedAt,
      },
      deps.centralBus,
    );
  }
  deps.logger.info('image ready applied', {
    releaseId: image.releaseId,
    region: image.region,
    templates: outcomes.map((o) => `${o.launchTemplateName}:${o.outcome}`),
  });
  return {
    accountId: deps.accountId,
    region: image.region,
    ...(ssmParameter ? { ssmParameter } : {}),
    templates: outcomes,
  };
}

async function moveTemplate(
  deps: SubscriberDeps,
  member: MemberAccount,
  template: LaunchTemplate,
  image: ImageReady,
): Promise<TemplateOutcome> {
  const base = {
    launchTemplateId: template.launchTemplateId,
    launchTemplateName: template.launchTemplateName,
  };
  const current = await member.getLaunchTemplateVersion(
    template.launchTemplateId,
    template.defaultVersionNumber,
  );
  const held = sequenceFromVersionDescription(current.versionDescription, image.stream);
  if (held !== undefined && held > image.sequence) {
    return {
      ...base,
      outcome: 'skipped-older',
      versionNumber: template.defaultVersionNumber,
      instanceRefresh: 'not-requested',
      refreshedGroups: [],
    };
  }
  if (held === image.sequence || (held === undefined && current.imageId === image.imageId)) {
    // Already current: a repeated event. Its refresh, if any, was started the first time.
    return {
      ...base,
      outcome: 'already-current',
      versionNumber: template.defaultVersionNumber,
      instanceRefresh: 'not-requested',
      refreshedGroups: [],
    };
  }

  // The token makes a retry after a crash (version created, default not yet set) return the same version.
  const created = await member.createLaunchTemplateVersion(template.launchTemplateId, {
    sourceVersion: template.defaultVersionNumber,
    imageId: image.imageId,
    versionDescription: launchTemplateVersionDescription(image),
    clientToken: clientToken('launch-template', image.releaseId, image.region, template.launchTemplateId),
  });
  await member.setDefaultVersion(template.launchTemplateId, created.versionNumber);

  const refresh = await refreshGroups(deps, member, template, image.stream);
  return { ...base, outcome: 'updated', versionNumber: created.versionNumber, ...refresh };
}

async function refreshGroups(
  deps: SubscriberDeps,
  member: MemberAccount,
  template: LaunchTemplate,
  stream: string,
): Promise<Pick<TemplateOutcome, 'instanceRefresh' | 'refreshedGroups'>> {
  if (!deps.settings(stream).instanceRefresh)
    return { instanceRefresh: 'not-requested', refreshedGroups: [] };
  const groups = (await member.listAutoScalingGroups(TAG.stream, stream)).filter(
    (g) => g.tags[TAG.refresh] === 'true' && g.launchTemplateId === template.launchTemplateId,
  );
  if (groups.length === 0) return { instanceRefresh: 'not-requested', refreshedGroups: [] };
  const refreshedGroups: string[] = [];
  let instanceRefresh: TemplateOutcome['instanceRefresh'] = 'already-running';
  for (const group of groups) {
    if (await member.instanceRefreshInProgress(group.name)) continue;
    const { instanceRefreshId } = await member.startInstanceRefresh(group.name);
    refreshedGroups.push(group.name);
    // A describe at report time: a refresh that already ended is reported as such (rollout waves judge it).
    const status = await member.describeInstanceRefresh?.(group.name, instanceRefreshId);
    instanceRefresh = worstRefresh(instanceRefresh, refreshOutcome(status));
  }
  return { instanceRefresh, refreshedGroups };
}

/** Auto Scaling's refresh status as a "Launch Template Updated" instanceRefresh value. */
export function refreshOutcome(
  status: InstanceRefreshStatus | undefined,
): TemplateOutcome['instanceRefresh'] {
  switch (status) {
    case 'Successful':
      return 'succeeded';
    case 'Failed':
    case 'RollbackFailed':
      return 'failed';
    case 'Cancelling':
    case 'Cancelled':
      return 'cancelled';
    case 'RollbackInProgress':
    case 'RollbackSuccessful':
      return 'rolled-back';
    default:
      return 'started';
  }
}

const REFRESH_SEVERITY: TemplateOutcome['instanceRefresh'][] = [
  'not-requested',
  'already-running',
  'started',
  'succeeded',
  'cancelled',
  'rolled-back',
  'failed',
];
function worstRefresh(
  a: TemplateOutcome['instanceRefresh'],
  b: TemplateOutcome['instanceRefresh'],
): TemplateOutcome['instanceRefresh'] {
  return REFRESH_SEVERITY.indexOf(a) >= REFRESH_SEVERITY.indexOf(b) ? a : b;
}
