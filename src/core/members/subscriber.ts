// subscriber: runs in a member account. On "Image Ready" for stream S in region R, move every launch template
// tagged stemcell:stream=S in R to the new image: a new version from the default one, made the default. Never
// backwards: the default version's description records the sequence it holds. Then the optional SSM parameter
// and instance refresh, and a "Launch Template Updated" report back to the central bus (how each refresh ends
// is reported later, from Auto Scaling's end event: src/core/members/subscriber-refresh.ts). Deliveries for one
// account and stream are serialised upstream (a FIFO queue per member account); the re-read after the write
// (settleDefault) keeps "never backwards" true even when two deliveries do run at once.
import { type ImageReady, INSTANCE_REFRESH_SEVERITY, type LaunchTemplateUpdated } from '#events/stemcell.ts';
import type { InstanceRefreshStatus, LaunchTemplate, LaunchTemplateVersion, MemberAccount } from '#ports';
import type { SubscriberDeps } from '../deps.ts';
import { emit } from '../model/emit.ts';
import {
  clientToken,
  expandParameterName,
  instanceRefreshTag,
  launchTemplateVersionDescription,
  sequenceFromVersionDescription,
  TAG,
} from '../model/naming.ts';

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
  const unchanged = (outcome: 'skipped-older' | 'already-current', versionNumber: number) => ({
    ...base,
    outcome,
    versionNumber,
    instanceRefresh: 'not-requested' as const,
    refreshedGroups: [],
  });
  const versions = await member.listLaunchTemplateVersions(template.launchTemplateId);
  const current = versions.find((v) => v.versionNumber === template.defaultVersionNumber);
  const held = sequenceFromVersionDescription(current?.versionDescription, image.stream);
  // Older than the default, or than any version stemcell wrote (a concurrent delivery may be between its
  // create and its set-default): never a step back.
  if (
    (held !== undefined && held > image.sequence) ||
    highest(versions, image.stream).sequence > image.sequence
  )
    return unchanged('skipped-older', template.defaultVersionNumber);
  if (held === image.sequence || (held === undefined && current?.imageId === image.imageId)) {
    // Already current: a repeated event. Its refresh, if any, was started the first time.
    return unchanged('already-current', template.defaultVersionNumber);
  }

  // The token makes a retry after a crash (version created, default not yet set) return the same version.
  const created = await createVersion(member, template, image);
  await member.setDefaultVersion(template.launchTemplateId, created.versionNumber);
  const settled = await settleDefault(member, template.launchTemplateId, image.stream);
  if (settled !== created.versionNumber) {
    // A delivery of a higher sequence won the race; the default is its version, not ours.
    deps.logger.info('a higher sequence holds the launch template', {
      launchTemplateId: template.launchTemplateId,
      sequence: image.sequence,
      versionNumber: settled,
    });
    return unchanged('skipped-older', settled);
  }

  const refresh = await refreshGroups(deps, member, template, image, created.versionNumber);
  return { ...base, outcome: 'updated', versionNumber: created.versionNumber, ...refresh };
}

/**
 * A new version with the image, idempotent on the release. A duplicate delivery running at the same time may
 * have created it from another source version (the default moved in between): EC2 then refuses the reused
 * token with IdempotentParameterMismatch, and the version that delivery made is ours too.
 */
async function createVersion(
  member: MemberAccount,
  template: LaunchTemplate,
  image: ImageReady,
): Promise<LaunchTemplateVersion> {
  const versionDescription = launchTemplateVersionDescription(image);
  try {
    return await member.createLaunchTemplateVersion(template.launchTemplateId, {
      sourceVersion: template.defaultVersionNumber,
      imageId: image.imageId,
      versionDescription,
      clientToken: clientToken('launch-template', image.releaseId, image.region, template.launchTemplateId),
    });
  } catch (err) {
    if (!(err instanceof Error) || err.name !== 'IdempotentParameterMismatch') throw err;
    const versions = await member.listLaunchTemplateVersions(template.launchTemplateId);
    const made = versions.find(
      (v) => v.versionDescription === versionDescription && v.imageId === image.imageId,
    );
    if (!made) throw err;
    return made;
  }
}

/** The stemcell-written version of the template with the highest sequence for the stream (0 when none). */
function highest(
  versions: LaunchTemplateVersion[],
  stream: string,
): { sequence: number; versionNumber: number } {
  let best = { sequence: 0, versionNumber: 0 };
  for (const v of versions) {
    const sequence = sequenceFromVersionDescription(v.versionDescription, stream);
    if (sequence !== undefined && sequence > best.sequence)
      best = { sequence, versionNumber: v.versionNumber };
  }
  return best;
}

const SETTLE_ROUNDS = 8;

/**
 * The re-read after the write. Two deliveries that both read before either wrote can leave the default at the
 * lower sequence (the later set-default wins). Every writer re-reads after its write and, while the default
 * holds a lower sequence than some version stemcell wrote, sets the highest one; it stops only on a read
 * that shows the highest as default. The writer whose final read comes last saw every create and every set,
 * so the template ends at the highest sequence whatever the interleaving. Returns the default version.
 */
export async function settleDefault(
  member: MemberAccount,
  launchTemplateId: string,
  stream: string,
): Promise<number> {
  for (let round = 0; round < SETTLE_ROUNDS; round++) {
    const [template] = (await member.listLaunchTemplates(TAG.stream, stream)).filter(
      (t) => t.launchTemplateId === launchTemplateId,
    );
    if (!template) throw new Error(`launch template ${launchTemplateId} is no longer tagged for ${stream}`);
    const versions = await member.listLaunchTemplateVersions(launchTemplateId);
    const top = highest(versions, stream);
    const current = versions.find((v) => v.versionNumber === template.defaultVersionNumber);
    const held = sequenceFromVersionDescription(current?.versionDescription, stream);
    // An operator's own version (no sequence) as default is theirs to keep.
    if (held === undefined || held >= top.sequence) return template.defaultVersionNumber;
    await member.setDefaultVersion(launchTemplateId, top.versionNumber);
  }
  throw new Error(
    `launch template ${launchTemplateId}: the default version kept changing for ${SETTLE_ROUNDS} re-reads`,
  );
}

async function refreshGroups(
  deps: SubscriberDeps,
  member: MemberAccount,
  template: LaunchTemplate,
  image: ImageReady,
  versionNumber: number,
): Promise<Pick<TemplateOutcome, 'instanceRefresh' | 'refreshedGroups'>> {
  const stream = image.stream;
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
    // Which refresh is stemcell's, for which version and revision: Auto Scaling's end event names only the
    // group and the refresh id. Tagged before the describe, so that a refresh whose end event came before the
    // tag (and was ignored) has ended by the describe, which then reports it.
    await member.tagAutoScalingGroup(group.name, {
      [TAG.instanceRefresh]: instanceRefreshTag({
        instanceRefreshId,
        launchTemplateId: template.launchTemplateId,
        versionNumber,
        revision: image.revision,
      }),
    });
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

function worstRefresh(
  a: TemplateOutcome['instanceRefresh'],
  b: TemplateOutcome['instanceRefresh'],
): TemplateOutcome['instanceRefresh'] {
  return INSTANCE_REFRESH_SEVERITY.indexOf(a) >= INSTANCE_REFRESH_SEVERITY.indexOf(b) ? a : b;
}
