// stemcell.config.yml: the declarative description of streams, sharing and (for local mode) the organization.
// The schema is the source of truth; the types come from it.
import { z } from 'zod';
import { AccountId, Architecture, BootMode, Region, StreamName } from '#events/stemcell.ts';

const OuId = z
  .string()
  .regex(
    /^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$/,
    'not an OU or root id such as ou-ab12-cd34ef56',
  );

/**
 * The boot gate: each region's image is booted before "Image Ready" leaves. `mode` absent means the world's
 * default: qemu in local mode, a smoke instance on AWS. The timeout is bounded so polls fit the boot-check
 * queue's redelivery budget (docs/design/boot-gate.md).
 */
export const BootCheckConfig = z.strictObject({
  mode: z.enum(['qemu', 'instance', 'none']).optional(),
  marker: z.string().min(1).max(200).default('login:'),
  timeoutSeconds: z.number().int().min(10).max(900).default(180),
  allowUnverified: z
    .boolean()
    .default(false)
    .describe('Lets `mode: none` through on a stream whose subscribers refresh their instances.'),
});
export type BootCheckConfig = z.infer<typeof BootCheckConfig>;

/**
 * One wave of a rollout: the accounts it reaches (by OU and/or account id; neither = every account in scope not
 * in an earlier wave), how long it bakes before the next wave, and an optional CloudWatch alarm that must be OK.
 */
export const RolloutWave = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'wave names are [A-Za-z0-9][A-Za-z0-9._-]{0,63}'),
  ous: z.array(OuId).optional(),
  accounts: z.array(AccountId).optional(),
  bakeMinutes: z.number().min(0).max(10080).describe('Fractions allowed (the demo bakes for seconds).'),
  alarmArn: z
    .string()
    .regex(/^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$/, 'not a CloudWatch alarm ARN')
    .optional(),
});
export type RolloutWave = z.infer<typeof RolloutWave>;

export const Rollout = z
  .strictObject({ waves: z.array(RolloutWave).min(1, 'list at least one wave') })
  .superRefine((rollout, ctx) => {
    const names = new Set<string>();
    rollout.waves.forEach((wave, i) => {
      if (names.has(wave.name))
        ctx.addIssue({ code: 'custom', path: ['waves', i, 'name'], message: `duplicate wave ${wave.name}` });
      names.add(wave.name);
      const everythingElse = !wave.ous?.length && !wave.accounts?.length;
      if (everythingElse && i !== rollout.waves.length - 1)
        ctx.addIssue({
          code: 'custom',
          path: ['waves', i],
          message: 'only the last wave may omit ous and accounts ("everything else in scope")',
        });
    });
  });
export type Rollout = z.infer<typeof Rollout>;

const Sharing = z.strictObject({
  organization: z.boolean().default(false),
  ous: z.array(OuId).default([]),
});
type Sharing = z.infer<typeof Sharing>;
type Scope = 'organization' | { ous: string[] };

/** Sharing that reaches exactly the subscriber scope: what a stream gets when it sets no `sharing`. */
export function sharingForScope(scope: Scope): Sharing {
  return scope === 'organization'
    ? { organization: true, ous: [] }
    : { organization: false, ous: [...scope.ous] };
}

/**
 * The OUs of the scope (or "the whole organization") that the sharing does not reach. An OU is reached when the
 * sharing names the organization, the root (r-…), or the OU itself: the configuration does not know the OU
 * tree, so a parent OU in `sharing.ous` does not count for its children.
 */
export function sharingGaps(sharing: Sharing, scope: Scope): string[] {
  if (sharing.organization || sharing.ous.some((ou) => ou.startsWith('r-'))) return [];
  if (scope === 'organization') return ['organization'];
  return scope.ous.filter((ou) => !sharing.ous.includes(ou));
}

const StreamFields = z.strictObject({
  regions: z.array(Region).min(1, 'list at least one region'),
  architecture: Architecture.default('x86_64'),
  bootMode: BootMode.default('legacy-bios'),
  volumeSizeGiB: z.number().int().min(1).max(16384).default(4),
  keep: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(3)
    .describe('Images kept per region; older ones are deprecated, then deregistered with their snapshots.'),
  sharing: Sharing.optional().describe(
    "Who may launch the stream's images. Default: exactly the subscriber scope. When set, it must reach at least every account of the scope (refused otherwise): no account is told about an image it cannot launch.",
  ),
  subscribers: z
    .strictObject({
      scope: z
        .union([z.literal('organization'), z.strictObject({ ous: z.array(OuId).min(1) })])
        .default('organization')
        .describe('Who receives "Image Ready": the whole organization, or the accounts under these OUs.'),
      ssmParameter: z
        .string()
        .startsWith('/')
        .optional()
        .describe(
          'SSM parameter written in each member account with the new image id; {stream} and {region} expand.',
        ),
      instanceRefresh: z.boolean().default(true),
    })
    .default({ scope: 'organization', instanceRefresh: true }),
  bootCheck: BootCheckConfig.default({ marker: 'login:', timeoutSeconds: 180, allowUnverified: false }),
  rollout: Rollout.optional().describe(
    'Waves with bake time; without it, one wave: every account in scope at once.',
  ),
});

export const StreamConfig = StreamFields.superRefine((stream, ctx) => {
  if (!stream.sharing) return;
  for (const gap of sharingGaps(stream.sharing, stream.subscribers.scope)) {
    ctx.addIssue({
      code: 'custom',
      path: ['subscribers', 'scope'],
      message:
        gap === 'organization'
          ? `every account of the organization would be told about images shared only with ${describeSharing(stream.sharing)}; share with the organization (sharing.organization: true) or narrow the scope`
          : `accounts under ${gap} would be told about images they cannot launch (sharing: ${describeSharing(stream.sharing)}); add ${gap} to sharing.ous or drop it from the scope`,
    });
  }
}).transform(({ sharing, ...stream }) => ({
  ...stream,
  sharing: sharing ?? sharingForScope(stream.subscribers.scope),
}));

export type StreamConfig = z.infer<typeof StreamConfig>;

function describeSharing(sharing: Sharing): string {
  const to = [...(sharing.organization ? ['the organization'] : []), ...sharing.ous];
  return to.length > 0 ? to.join(', ') : 'nobody';
}

const LocalAccount = z.strictObject({ id: AccountId, name: z.string().min(1), ou: OuId });
const LocalLaunchTemplate = z.strictObject({
  account: AccountId,
  region: Region,
  name: z.string().min(1),
  stream: StreamName,
  imageId: z.string().default('ami-00000000000000000'),
  instanceType: z
    .string()
    .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'not an instance type such as t3.micro')
    .optional()
    .describe(
      "The launch data's instance type; by default a small one of the stream's architecture (t3.micro, t4g.micro).",
    ),
  autoScalingGroup: z.string().optional(),
  refresh: z.boolean().default(true),
});

export const LocalConfig = z.strictObject({
  organizationId: z.string().regex(/^o-[a-z0-9]{10,32}$/, 'not an organization id such as o-a1b2c3d4e5'),
  managementAccountId: AccountId,
  ous: z.array(z.strictObject({ id: OuId, name: z.string().min(1) })).min(1),
  accounts: z.array(LocalAccount).min(1),
  launchTemplates: z.array(LocalLaunchTemplate).default([]),
});
export type LocalConfig = z.infer<typeof LocalConfig>;

export const StemcellConfig = z
  .strictObject({
    homeRegion: Region,
    kmsKeyId: z
      .string()
      .min(1)
      .default('alias/stemcell')
      .describe('Customer managed key (id, ARN or alias) that encrypts volumes, snapshots and images.'),
    bucket: z.string().min(3).default('stemcell-tarballs'),
    busName: z.string().min(1).default('stemcell'),
    streams: z
      .record(StreamName, StreamConfig)
      .refine((s) => Object.keys(s).length > 0, 'define at least one stream'),
    local: LocalConfig.optional(),
  })
  .superRefine((config, ctx) => {
    for (const [name, stream] of Object.entries(config.streams)) {
      // EC2 boots arm64 (Graviton) with UEFI only.
      if (stream.architecture === 'arm64' && stream.bootMode === 'legacy-bios')
        ctx.addIssue({
          code: 'custom',
          path: ['streams', name, 'bootMode'],
          message: 'arm64 images boot with UEFI only: use bootMode: uefi',
        });
      if (
        stream.bootCheck.mode === 'none' &&
        stream.bootMode !== 'none' &&
        stream.subscribers.instanceRefresh &&
        !stream.bootCheck.allowUnverified
      )
        ctx.addIssue({
          code: 'custom',
          path: ['streams', name, 'bootCheck', 'mode'],
          message:
            'bootCheck.mode none with subscribers.instanceRefresh: an image that does not boot would replace every instance; set bootCheck.allowUnverified: true to accept that',
        });
    }
    const local = config.local;
    if (!local) return;
    const ous = new Set(local.ous.map((o) => o.id));
    const accounts = new Set<string>();
    local.accounts.forEach((a, i) => {
      if (!ous.has(a.ou))
        ctx.addIssue({ code: 'custom', path: ['local', 'accounts', i, 'ou'], message: `unknown OU ${a.ou}` });
      if (accounts.has(a.id))
        ctx.addIssue({
          code: 'custom',
          path: ['local', 'accounts', i, 'id'],
          message: `duplicate account ${a.id}`,
        });
      accounts.add(a.id);
    });
    local.launchTemplates.forEach((lt, i) => {
      if (!accounts.has(lt.account) && lt.account !== local.managementAccountId)
        ctx.addIssue({
          code: 'custom',
          path: ['local', 'launchTemplates', i, 'account'],
          message: `unknown account ${lt.account}`,
        });
      if (!config.streams[lt.stream])
        ctx.addIssue({
          code: 'custom',
          path: ['local', 'launchTemplates', i, 'stream'],
          message: `unknown stream ${lt.stream}`,
        });
    });
    for (const [name, stream] of Object.entries(config.streams)) {
      for (const [w, wave] of (stream.rollout?.waves ?? []).entries()) {
        for (const [i, ou] of (wave.ous ?? []).entries()) {
          if (!ous.has(ou))
            ctx.addIssue({
              code: 'custom',
              path: ['streams', name, 'rollout', 'waves', w, 'ous', i],
              message: `unknown OU ${ou}`,
            });
        }
      }
      // A stream whose own fields failed was not transformed: its sharing may be missing.
      for (const [i, ou] of (stream.sharing?.ous ?? []).entries()) {
        if (!ous.has(ou))
          ctx.addIssue({
            code: 'custom',
            path: ['streams', name, 'sharing', 'ous', i],
            message: `unknown OU ${ou}`,
          });
      }
    }
  });
export type StemcellConfig = z.infer<typeof StemcellConfig>;
