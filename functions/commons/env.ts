// The environment of every deployed function, declared once and parsed once per container: a missing or bad
// variable is reported at the cold start, all of them in one error, instead of one by one as each code path
// first reads it. Names as serverless.yml (provider and function `environment`) and infra/member.yml set them.
import { z } from 'zod';
import { AwsClientEnv, envError, envIssues, optionalEnv } from '#aws/client-env.ts';
import { Region } from '#events/stemcell.ts';

const text = optionalEnv(z.string());
const arn = optionalEnv(z.string().regex(/^arn:[a-z-]+:/, 'not an ARN'));

export const FunctionEnv = AwsClientEnv.extend({
  /** Set by Lambda. */
  AWS_REGION: Region,
  AWS_LAMBDA_FUNCTION_NAME: text,
  /** The home region. @defaultValue AWS_REGION */
  STEMCELL_HOME_REGION: optionalEnv(Region),
  /** stemcell.config.yml as text (small configs, tests); else read from s3://STEMCELL_BUCKET/STEMCELL_CONFIG_KEY. */
  STEMCELL_CONFIG: text,
  STEMCELL_BUCKET: text,
  STEMCELL_CONFIG_KEY: text,
  STEMCELL_BUS_NAME: text,
  STEMCELL_KMS_KEY_ID: text,
  /** The DynamoDB release table. */
  STEMCELL_TABLE: text,
  /** Build queues are named <prefix><region>.fifo (DLQs <prefix><region>-dlq.fifo) in this account. */
  STEMCELL_BUILD_QUEUE_PREFIX: text,
  /** The boot gate's queue URL (announce sends, boot-check consumes): a `!Ref` of the queue. */
  STEMCELL_BOOT_CHECK_QUEUE_URL: optionalEnv(z.url({ error: 'not a queue URL' })),
  /** SSM parameter, in each build region, with its smoke-instance settings (infra/region.yml). */
  STEMCELL_SMOKE_PARAMETER: text,
  STEMCELL_BAKE_TARGET_ARN: arn,
  STEMCELL_BAKE_ROLE_ARN: arn,
  STEMCELL_BAKE_DLQ_ARN: arn,
  /** Role assumed in member accounts (expire reads their launch templates). */
  STEMCELL_MEMBER_ROLE_NAME: text,
  /** The member accounts' bus the subscriber rules target (infra/member.yml BusName). */
  STEMCELL_MEMBER_BUS_NAME: text,
  STEMCELL_SUBSCRIBER_ROLE_ARN: arn,
  STEMCELL_SUBSCRIBER_DLQ_ARN: arn,
  /** Subscriber: where member accounts report back. */
  STEMCELL_CENTRAL_BUS_ARN: arn,
  /** Subscriber: write <prefix><stream>/<region>/image-id when set. */
  STEMCELL_SSM_PREFIX: text,
  /** Expire: hours between deprecating an image and deregistering it. @defaultValue 7 days */
  EXPIRE_GRACE_HOURS: optionalEnv(z.coerce.number().min(0, 'must be a number of hours ≥ 0')),
  /** Subscriber: "false" turns instance refreshes off. */
  STEMCELL_INSTANCE_REFRESH: optionalEnv(z.enum(['true', 'false'])),
});
export type FunctionEnv = z.infer<typeof FunctionEnv>;

type Name = keyof FunctionEnv;
const withConfig = ['STEMCELL_TABLE'] as const satisfies Name[];
const bakeTimer = ['STEMCELL_BAKE_TARGET_ARN', 'STEMCELL_BAKE_ROLE_ARN'] as const satisfies Name[];

/** What each function cannot run without, beyond AWS_REGION. */
export const REQUIRED = {
  ingest: [...withConfig, 'STEMCELL_BUILD_QUEUE_PREFIX'],
  register: withConfig,
  announce: [...withConfig, ...bakeTimer],
  'boot-check': [...withConfig, ...bakeTimer, 'STEMCELL_SMOKE_PARAMETER'],
  reconcile: [...withConfig, ...bakeTimer, 'STEMCELL_BUILD_QUEUE_PREFIX'],
  'sync-subscribers': withConfig,
  expire: withConfig,
  subscriber: ['STEMCELL_CENTRAL_BUS_ARN'],
  'sweep-smoke-instances': [],
} as const satisfies Record<string, readonly Name[]>;
export type FunctionName = keyof typeof REQUIRED;

/** A function's environment, with the variables it requires known to be set. */
export type EnvOf<F extends FunctionName> = FunctionEnv & {
  [K in (typeof REQUIRED)[F][number]]-?: NonNullable<FunctionEnv[K]>;
};

/**
 * Parses `env` for function `fn`: every variable checked for its form, the ones the function needs checked
 * for presence, and, without an inline STEMCELL_CONFIG, where the config file lives.
 */
export function parseFunctionEnv<F extends FunctionName>(
  fn: F,
  env: NodeJS.ProcessEnv = process.env,
): EnvOf<F> {
  const need: Name[] = [...REQUIRED[fn]];
  // The subscriber reads a config only when given one inline; every other function reads one.
  if (fn !== 'subscriber' && !env.STEMCELL_CONFIG) need.push('STEMCELL_BUCKET', 'STEMCELL_CONFIG_KEY');
  const parsed = FunctionEnv.safeParse(env);
  const lines = envIssues(parsed.error, env);
  for (const name of need)
    if (!env[name] && !lines.some((l) => l.startsWith(`${name}:`))) lines.push(`${name}: not set`);
  if (!parsed.success || lines.length > 0) throw envError(lines, `function ${fn}`, parsed.error);
  return parsed.data as EnvOf<F>;
}
