// subscriber: runs in a member account. On "Image Ready" for stream S in region R, move every launch template
// tagged stemcell:stream=S in R to the new image: a new version from the default one, made the default. Never
// backwards: the default version's description records the sequence it holds. Never to an image whose tarball
// a key the account trusts did not sign, when it requires a signer (signer.ts). Never to an image the account
// cannot launch: before a move, the account checks, as itself, that it can (src/core/images/launchable.ts);
// a refusal leaves the template where it is and is reported with its reason. Then the optional SSM parameter
// and instance refresh, and a "Launch Template Updated" report back to the central bus (how each refresh ends
// is reported later, from Auto Scaling's end event: src/core/members/subscriber-refresh.ts). Deliveries for one
// account and stream are serialised upstream (a FIFO queue per member account); the re-read after the write
// (settleDefault) keeps "never backwards" true even when two deliveries do run at once.
import { type ImageReady, INSTANCE_REFRESH_SEVERITY, type LaunchTemplateUpdated } from '#events/stemcell.ts';
import type {
  AutoScalingGroup,
  InstanceRefreshStatus,
  LaunchTemplate,
  LaunchTemplateVersion,
  MemberAccount,
} from '#ports';
import type { SubscriberDeps } from '../deps.ts';
import { checkLaunchable } from '../images/launchable.ts';
import { emit } from '../model/emit.ts';
import {
  clientToken,
  expandParameterName,
  instanceRefreshTag,
  launchTemplateVersionDescription,
  sequenceFromVersionDescription,
  TAG,
} from '../model/naming.ts';
import { signerRefusal } from './signer.ts';

export interface TemplateOutcome {
  launchTemplateId: string;
  launchTemplateName: string;
  outcome: LaunchTemplateUpdated['outcome'];
  /** The default version after this call. */
  versionNumber: number;
  instanceRefresh: LaunchTemplateUpdated['instanceRefresh'];
  /** Auto Scaling groups whose instance refresh this call started. */
  refreshedGroups: string[];
  /** Set with outcome `refused`: the launch check that failed, and why. */
  refusal?: LaunchTemplateUpdated['refusal'];
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
  // Which templates an Auto Scaling group launches (its service-linked role then needs the key's grant).
  let groups: Promise<AutoScalingGroup[]> | undefined;
  const allGroups = () => {
    groups ??= member.listAutoScalingGroups();
    return groups;
  };
  for (const template of templates)
    outcomes.push(await moveTemplate(deps, member, template, image, allGroups));

  // The parameter follows the newest sequence only: written when some template moved or already holds it.
  let ssmParameter: string | undefined;
  if (
    settings.ssmParameter &&
    outcomes.some((o) => o.outcome === 'updated' || o.outcome === 'already-current')
  ) {
    ssmParameter = expandParameterName(settings.ssmParameter, image.stream, image.region);
    await member.putParameter(ssmParameter, image.imageId);
  }

  const updatedAt = deps.clock.now().toISOString();
  // What every report of this delivery says about the image and the account.
  const reported = {
    version: 1,
    stream: image.stream,
    revision: image.revision,
    sequence: image.sequence,
    releaseId: image.releaseId,
    accountId: deps.accountId,
    region: image.region,
    imageId: image.imageId,
  } as const;
  if (templates.length === 0) {
    // Said once, so the account counts as done: otherwise the reconciler, hearing nothing, tells it again and
    // again (the management account, which is in the Organization and launches nothing from the stream).
    await emit(
      deps.events,
      'Launch Template Updated',
      {
        ...reported,
        outcome: 'nothing-to-move',
        instanceRefresh: 'not-requested',
        updatedAt,
      },
      deps.centralBus,
    );
  }
  for (const o of outcomes) {
    await emit(
      deps.events,
      'Launch Template Updated',
      {
        ...reported,
        launchTemplateId: o.launchTemplateId,
        launchTemplateName: o.launchTemplateName,
        versionNumber: o.versionNumber,
        outcome: o.outcome,
        ...(o.refusal ? { refusal: o.refusal } : {}),
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
  groups: () => Promise<AutoScalingGroup[]>,
): Promise<TemplateOutcome> {
  const base = {
    launchTemplateId: template.launchTemplateId,
    launchTemplateName: template.launchTemplateName,
  };
  const unchanged = (outcome: 'skipped-older' | 'already-current' | 'refused', versionNumber: number) => ({
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

  // Signed by a key this account trusts, when it requires a signer: checked before anything else is asked.
  const untrusted = signerRefusal(deps.trustedSigners, image);
  if (untrusted) {
    deps.logger.warn('untrusted signer refused: the launch template stays', {
      releaseId: image.releaseId,
      region: image.region,
      launchTemplateId: template.launchTemplateId,
      signer: image.source.signer ?? 'unsigned',
    });
    return {
      ...unchanged('refused', template.defaultVersionNumber),
      refusal: { check: 'signer', reason: untrusted },
    };
  }

  // Launchable, as this account, with the instance type the new version keeps from the default one.
  const verdict = await checkLaunchable(
    deps.launch.forAccount(deps.accountId, image.region),
    {
      imageId: image.imageId,
      ...(current?.instanceType ? { instanceType: current.instanceType } : {}),
      via: (await groups()).some((g) => g.launchTemplateId === template.launchTemplateId)
        ? 'auto-scaling'
        : 'account',
      kmsKeyId: image.kmsKeyId,
      ...(publisherOf(deps.centralBus) ? { publisherAccountId: publisherOf(deps.centralBus) } : {}),
    },
    deps.clock.now(),
  );
  if (!verdict.launchable) {
    deps.logger.warn('launch check refused: the launch template stays', {
      releaseId: image.releaseId,
      region: image.region,
      launchTemplateId: template.launchTemplateId,
      check: verdict.check,
      reason: verdict.reason,
    });
    return {
      ...unchanged('refused', template.defaultVersionNumber),
      refusal: { check: verdict.check, reason: verdict.reason },
    };
  }
  if (verdict.notes.length > 0)
    deps.logger.info('launch check passed, with notes', {
      launchTemplateId: template.launchTemplateId,
      notes: verdict.notes,
    });

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

/** The publishing account: the central bus's (an ARN on AWS and locally; a bare name names no account). */
function publisherOf(centralBus: string): string | undefined {
  return /^arn:[^:]+:events:[^:]*:(\d{12}):/.exec(centralBus)?.[1];
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
