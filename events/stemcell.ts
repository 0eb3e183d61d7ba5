// The events stemcell puts on its bus. These schemas are the contract: producers parse what they emit and
// consumers parse what they receive with the same schema, and subscribers outside this repo rely on them.
import { EventBridgeSchema } from '@aws-lambda-powertools/parser/schemas/eventbridge';
import { z } from 'zod';

export const EVENT_SOURCE = 'stemcell';
/** Bumped on any breaking change of a detail; additive fields keep the version. */
export const DETAIL_VERSION = 1;

export const StreamName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'stream names are [a-z0-9][a-z0-9-]{0,62}');
export const Revision = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/, 'revisions are [A-Za-z0-9][A-Za-z0-9._+-]{0,127}');
export const AccountId = z.string().regex(/^\d{12}$/, 'account ids are 12 digits');
export const Region = z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'not a region name such as eu-west-1');
export const Architecture = z.enum(['x86_64', 'arm64']);
export const BootMode = z.enum(['legacy-bios', 'uefi', 'none']);

export const SourceObject = z.object({
  bucket: z.string().min(1),
  key: z.string().min(1),
  etag: z.string().min(1),
  versionId: z.string().optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

const ReleaseFields = z.object({
  version: z.literal(DETAIL_VERSION).describe("The detail's version: bumped only by a breaking change."),
  stream: StreamName.describe('The image stream, as in the object key streams/<stream>/<revision>.tar….'),
  revision: Revision.describe('The revision of the stream, as in the object key.'),
  sequence: z
    .number()
    .int()
    .positive()
    .describe('Per-stream order of releases, assigned at ingest: compare sequences, never timestamps.'),
  releaseId: z.string().min(1).describe('The release: <stream>#<sequence>, zero-padded.'),
});

export const ReleaseStartedDetail = ReleaseFields.extend({
  regions: z.array(Region).min(1),
  source: SourceObject,
  startedAt: z.iso.datetime(),
});

export const ImageReadyDetail = ReleaseFields.extend({
  region: Region,
  imageId: z.string().min(1),
  imageName: z.string().min(1),
  architecture: Architecture,
  bootMode: BootMode,
  encrypted: z.literal(true),
  kmsKeyId: z.string().min(1),
  snapshotId: z.string().min(1),
  source: SourceObject.required({ sha256: true }),
  createdAt: z.iso.datetime(),
  audience: z
    .array(AccountId)
    .min(1)
    .optional()
    .describe(
      'The accounts this delivery is for (the open waves of a rollout). Member rules match their own account id here; an event without it is for every account in scope.',
    ),
  rollbackOf: Revision.optional().describe(
    'Set on a rollback release: the revision whose images it points at.',
  ),
});

export const ReleaseCompleteDetail = ReleaseFields.extend({
  images: z.array(z.object({ region: Region, imageId: z.string().min(1) })).min(1),
  completedAt: z.iso.datetime(),
});

export const BuildFailedDetail = ReleaseFields.extend({
  region: Region,
  reason: z.string().min(1),
  attempts: z.number().int().nonnegative(),
  failedAt: z.iso.datetime(),
});

/**
 * An upload that tried to replace a published revision with other content. The release keeps its original
 * tarball (the bucket is versioned); the upload is refused, and recorded on the release.
 */
export const ReleaseRejectedDetail = ReleaseFields.extend({
  reason: z.string().min(1),
  existing: SourceObject.describe('The object the release was built from.'),
  rejected: SourceObject.describe('The refused upload of the same key.'),
  rejectedAt: z.iso.datetime(),
});

/**
 * Instance-refresh outcomes of "Launch Template Updated", least to most telling: announce keeps the worst it
 * heard per account and region, and the subscriber reports the worst of the groups it refreshed.
 */
export const INSTANCE_REFRESH_SEVERITY = [
  'not-requested',
  'already-running',
  'started',
  'succeeded',
  'cancelled',
  'rolled-back',
  'failed',
] as const;

export const LaunchTemplateUpdatedDetail = ReleaseFields.extend({
  accountId: AccountId,
  region: Region,
  imageId: z.string().min(1),
  launchTemplateId: z.string().min(1),
  launchTemplateName: z.string().min(1),
  versionNumber: z
    .number()
    .int()
    .positive()
    .describe('The new default version, or the unchanged one when the update was skipped.'),
  outcome: z.enum(['updated', 'already-current', 'skipped-older']),
  ssmParameter: z.string().optional(),
  instanceRefresh: z
    .enum(INSTANCE_REFRESH_SEVERITY)
    .describe(
      'started / already-running / not-requested when the subscriber moved the template; succeeded, failed, cancelled or rolled-back once the refresh it started ended (a describe at report time). failed, cancelled and rolled-back make a rollout wave unhealthy.',
    ),
  refresh: z
    .object({ autoScalingGroupName: z.string().min(1), instanceRefreshId: z.string().min(1) })
    .optional()
    .describe(
      "Set on the subscriber's second report for a template: the instance refresh it started ended (Auto Scaling's end event reached the member account), and instanceRefresh says how. Absent on the report the subscriber sends when it moves the template.",
    ),
  updatedAt: z.iso.datetime(),
});

export const ReleaseHaltedDetail = ReleaseFields.extend({
  wave: z.string().min(1).describe('The wave whose health failed; no later wave receives this release.'),
  reason: z.string().min(1),
  accounts: z
    .array(z.object({ accountId: AccountId, region: Region }))
    .describe("Accounts at fault (account/region pairs, sorted), empty when the wave's alarm fired."),
  wavesReached: z
    .array(z.string().min(1))
    .describe('Waves that received the release before the halt, in order.'),
  haltedAt: z.iso.datetime(),
});

export const StemcellDetailSchemas = {
  'Release Started': ReleaseStartedDetail,
  'Image Ready': ImageReadyDetail,
  'Release Complete': ReleaseCompleteDetail,
  'Build Failed': BuildFailedDetail,
  'Release Rejected': ReleaseRejectedDetail,
  'Launch Template Updated': LaunchTemplateUpdatedDetail,
  'Release Halted': ReleaseHaltedDetail,
} as const;
export type StemcellDetailType = keyof typeof StemcellDetailSchemas;
export const StemcellDetailTypes = Object.keys(StemcellDetailSchemas) as StemcellDetailType[];

export type ReleaseStarted = z.infer<typeof ReleaseStartedDetail>;
export type ImageReady = z.infer<typeof ImageReadyDetail>;
export type ReleaseComplete = z.infer<typeof ReleaseCompleteDetail>;
export type BuildFailed = z.infer<typeof BuildFailedDetail>;
export type ReleaseRejected = z.infer<typeof ReleaseRejectedDetail>;
export type LaunchTemplateUpdated = z.infer<typeof LaunchTemplateUpdatedDetail>;
export type ReleaseHalted = z.infer<typeof ReleaseHaltedDetail>;
export type StemcellDetail<T extends StemcellDetailType> = z.infer<(typeof StemcellDetailSchemas)[T]>;

/** EventBridge envelopes as a consumer's Lambda receives them. */
export const ImageReadyEvent = EventBridgeSchema.extend({
  source: z.literal(EVENT_SOURCE),
  'detail-type': z.literal('Image Ready'),
  detail: ImageReadyDetail,
});
export const LaunchTemplateUpdatedEvent = EventBridgeSchema.extend({
  source: z.literal(EVENT_SOURCE),
  'detail-type': z.literal('Launch Template Updated'),
  detail: LaunchTemplateUpdatedDetail,
});
export type ImageReadyEnvelope = z.infer<typeof ImageReadyEvent>;

/** Parses a detail against its detail-type's schema; throws a ZodError naming the field at fault. */
export function parseStemcellDetail<T extends StemcellDetailType>(
  detailType: T,
  detail: unknown,
): StemcellDetail<T> {
  return StemcellDetailSchemas[detailType].parse(detail) as StemcellDetail<T>;
}
