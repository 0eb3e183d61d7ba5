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
/** How a stream's snapshots are taken: EBS direct APIs (the changed blocks only) or CreateSnapshot of a volume. */
export const SnapshotMethod = z.enum(['direct', 'create-snapshot']);
export type SnapshotMethod = z.infer<typeof SnapshotMethod>;

/**
 * Who signed a tarball: a KMS key ARN, or `sha256:<hex>` (the SHA-256 of a PEM public key's DER
 * SubjectPublicKeyInfo) for a key pair held outside AWS.
 */
export const SignerKeyId = z
  .string()
  .regex(
    /^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+|sha256:[0-9a-f]{64})$/,
    'a signer is a KMS key ARN or sha256:<hex of a public key>',
  );

export const SourceObject = z.object({
  bucket: z.string().min(1),
  key: z.string().min(1),
  etag: z.string().min(1),
  versionId: z.string().optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional()
    .describe(
      'SHA-256 of the exact bytes uploaded (x-amz-meta-sha256); on a signed tarball, the signed digest.',
    ),
  signer: SignerKeyId.optional().describe(
    "The trusted key whose signature over sha256 ingest verified: a KMS key ARN, or sha256:<hex> of a PEM public key's DER. Absent: the tarball is unsigned (its stream does not require provenance).",
  ),
  signature: z
    .string()
    .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64')
    .optional()
    .describe(
      'The signature, base64 of the DER ECDSA P-256 signature over sha256 (as KMS Sign, openssl dgst -sha256 -sign and cosign sign-blob make it): anyone holding the public key can verify it.',
    ),
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

/**
 * A builder finished a region's snapshot with the EBS direct APIs. EBS sends no "EBS Snapshot Notification" for
 * those, so the builder tells register itself, on the central bus; register treats it as a succeeded one.
 */
export const SnapshotCompletedDetail = ReleaseFields.extend({
  region: Region.describe('The region the snapshot is in (the event itself is put on the central bus).'),
  snapshotId: z
    .string()
    .regex(/^snap-[0-9a-f]{8,17}$/, 'not a snapshot id such as snap-0123456789abcdef0')
    .describe('The completed snapshot, tagged with the release.'),
  method: SnapshotMethod.describe('How it was written: `direct` (EBS direct APIs).'),
  parentSnapshotId: z
    .string()
    .regex(/^snap-[0-9a-f]{8,17}$/)
    .optional()
    .describe("The stream's previous snapshot it was written on; absent for a first snapshot."),
  changedBlocks: z.number().int().nonnegative().describe('Blocks put (CompleteSnapshot ChangedBlocksCount).'),
  bytesPut: z.number().int().nonnegative().describe('Bytes put: changedBlocks × 512 KiB.'),
  completedAt: z.iso.datetime().describe('When EBS reported the snapshot completed.'),
});

export const BuildFailedDetail = ReleaseFields.extend({
  region: Region,
  reason: z.string().min(1),
  attempts: z.number().int().nonnegative(),
  failedAt: z.iso.datetime(),
});

/**
 * An upload that tried to replace a published revision with other content (the release keeps its original
 * tarball, the bucket is versioned; the upload is refused, and recorded on the release), or that is not a tar
 * archive at all (refused before it took a sequence).
 */
export const RevisionConflictDetail = ReleaseFields.partial({ sequence: true, releaseId: true }).extend({
  reason: z.string().min(1),
  existing: SourceObject.optional().describe(
    'The object the release was built from; absent when the upload was refused before it had a release (not a tar archive: no sequence was taken, and sequence and releaseId are absent too).',
  ),
  rejected: SourceObject.describe('The refused upload.'),
  rejectedAt: z.iso.datetime(),
});

/**
 * What ingest found wrong with an upload to a stream that requires provenance, before anything was built:
 * - `unsigned`: the object carries no signature (x-amz-meta-stemcell-signature);
 * - `no-sha256`: it records no SHA-256 (x-amz-meta-sha256), so there is nothing the signature can be over;
 * - `bytes`: S3's own SHA-256 checksum of the uploaded bytes is not the recorded (signed) one;
 * - `untrusted-signer`: it names a signer (x-amz-meta-stemcell-signer) the stream does not trust;
 * - `signature`: the signature does not verify over the recorded SHA-256 with the trusted key(s);
 * - `key`: the trusted key cannot verify ECDSA P-256 / SHA-256 signatures (a configuration fault).
 */
export const PROVENANCE_CHECKS = [
  'unsigned',
  'no-sha256',
  'bytes',
  'untrusted-signer',
  'signature',
  'key',
] as const;
export const ProvenanceCheck = z.enum(PROVENANCE_CHECKS);

/**
 * An upload refused for its provenance. It never became a release: no sequence was taken, no build queued,
 * so the detail has no sequence or releaseId.
 */
export const ProvenanceRejectedDetail = z.object({
  version: z.literal(DETAIL_VERSION).describe("The detail's version: bumped only by a breaking change."),
  stream: StreamName.describe('The image stream, as in the object key streams/<stream>/<revision>.tar….'),
  revision: Revision.describe('The revision of the stream, as in the object key.'),
  reason: z.string().min(1).describe('Names the object and what failed.'),
  check: ProvenanceCheck.describe(
    'Which provenance check refused the upload: unsigned, no-sha256, bytes, untrusted-signer, signature, key.',
  ),
  rejected: SourceObject.describe('The refused upload (signer: the key it claimed, when it named one).'),
  rejectedAt: z.iso.datetime(),
});

/** An upload refused: other content under a published revision, or (no sequence, no release) its provenance. */
// Provenance first: a provenance refusal also has every field of a revision conflict, which would strip its check.
export const ReleaseRejectedDetail = z.union([ProvenanceRejectedDetail, RevisionConflictDetail]);

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

/**
 * What a member's subscriber checks, as the member, before it moves a launch template to an image, in order:
 * the image's signer is one the member trusts (its own STEMCELL_TRUSTED_SIGNERS, src/core/members/signer.ts);
 * then (src/core/images/launchable.ts) the image is visible to the account; its key is usable (the key
 * described, the Auto Scaling role's grant present); the account's Allowed AMIs setting admits it; the template's
 * instance type runs its architecture and boot mode; EC2's RunInstances dry run accepts it.
 */
export const LAUNCH_CHECKS = [
  'signer',
  'image',
  'key',
  'allowed-images',
  'instance-type',
  'dry-run',
] as const;
export const LaunchCheck = z.enum(LAUNCH_CHECKS);

export const LaunchTemplateUpdatedDetail = ReleaseFields.extend({
  accountId: AccountId,
  region: Region,
  imageId: z.string().min(1),
  launchTemplateId: z
    .string()
    .min(1)
    .optional()
    .describe('The template reported on; absent only with outcome nothing-to-move.'),
  launchTemplateName: z
    .string()
    .min(1)
    .optional()
    .describe('Its name; absent only with outcome nothing-to-move.'),
  versionNumber: z
    .number()
    .int()
    .positive()
    .optional()
    .describe(
      'The new default version, or the unchanged one when the update was skipped or refused; absent only with outcome nothing-to-move.',
    ),
  outcome: z
    .enum(['updated', 'already-current', 'skipped-older', 'nothing-to-move', 'refused'])
    .describe(
      'nothing-to-move: the account has no launch template of the stream in the region (the management account, say). It is reported once, without a template, so the account counts as done and is not told again. refused: the account could not launch the image (see refusal), so the launch template stayed where it is.',
    ),
  refusal: z
    .object({ check: LaunchCheck, reason: z.string().min(1) })
    .optional()
    .describe(
      "Set with outcome refused only: the check that failed (signer: the image's tarball was not signed by a key the member trusts; image, key, allowed-images, instance-type, dry-run: the account cannot launch it) and why, in EC2's or KMS's own words where they gave them.",
    ),
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
}).superRefine((detail, ctx) => {
  if ((detail.outcome === 'refused') !== (detail.refusal !== undefined))
    ctx.addIssue({
      code: 'custom',
      path: ['refusal'],
      message: 'refusal is set exactly when outcome is refused',
    });
  if (detail.outcome === 'nothing-to-move') return;
  for (const field of ['launchTemplateId', 'launchTemplateName', 'versionNumber'] as const)
    if (detail[field] === undefined)
      ctx.addIssue({ code: 'custom', path: [field], message: `required with outcome ${detail.outcome}` });
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
  'Snapshot Completed': SnapshotCompletedDetail,
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
export type SnapshotCompleted = z.infer<typeof SnapshotCompletedDetail>;
export type ReleaseRejected = z.infer<typeof ReleaseRejectedDetail>;
export type ProvenanceRejected = z.infer<typeof ProvenanceRejectedDetail>;
export type ProvenanceCheck = z.infer<typeof ProvenanceCheck>;
export type LaunchTemplateUpdated = z.infer<typeof LaunchTemplateUpdatedDetail>;
export type LaunchCheck = z.infer<typeof LaunchCheck>;
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
export const SnapshotCompletedEvent = EventBridgeSchema.extend({
  source: z.literal(EVENT_SOURCE),
  'detail-type': z.literal('Snapshot Completed'),
  detail: SnapshotCompletedDetail,
});
export type SnapshotCompletedEnvelope = z.infer<typeof SnapshotCompletedEvent>;

/** Parses a detail against its detail-type's schema; throws a ZodError naming the field at fault. */
export function parseStemcellDetail<T extends StemcellDetailType>(
  detailType: T,
  detail: unknown,
): StemcellDetail<T> {
  return StemcellDetailSchemas[detailType].parse(detail) as StemcellDetail<T>;
}
