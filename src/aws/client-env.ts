// The SDK client settings of a process (Lambda function, builder agent, CLI) read from its environment, so a
// deployment or a test points every client AwsClients builds at one endpoint without code changes. The names
// are the SDK's own where it has one (AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE); reading them here
// matters because the SDK applies AWS_ENDPOINT_URL to a client, yet still sends SQS requests to the host of
// their QueueUrl.
import { z } from 'zod';
import { Region } from '#events/stemcell.ts';
import type { ClientSettings } from './clients.ts';

/** An unset variable and an empty one mean the same: absent. */
export const optionalEnv = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

export const AwsClientEnv = z.object({
  /** One endpoint for every service (an emulator, a VPC or FIPS endpoint). */
  AWS_ENDPOINT_URL: optionalEnv(z.url({ protocol: /^https?$/, error: 'not an http(s) URL' })),
  AWS_MAX_ATTEMPTS: optionalEnv(z.coerce.number().int().min(1).max(20)),
  AWS_RETRY_MODE: optionalEnv(z.enum(['standard', 'adaptive', 'legacy'])),
  /** "true": S3 buckets in the URL path, for endpoints on an IP address. */
  STEMCELL_S3_FORCE_PATH_STYLE: optionalEnv(z.enum(['true', 'false'])),
  /** Where the global Organizations API is served in this partition (us-east-1 in the aws partition). */
  STEMCELL_ORGANIZATIONS_REGION: optionalEnv(Region),
});
export type AwsClientEnv = z.infer<typeof AwsClientEnv>;

/** Client settings from already-parsed variables: only what is set is passed on. */
export function clientSettings(env: AwsClientEnv): ClientSettings {
  return {
    ...(env.AWS_ENDPOINT_URL ? { endpoint: env.AWS_ENDPOINT_URL } : {}),
    ...(env.AWS_MAX_ATTEMPTS ? { maxAttempts: env.AWS_MAX_ATTEMPTS } : {}),
    ...(env.AWS_RETRY_MODE ? { retryMode: env.AWS_RETRY_MODE } : {}),
    ...(env.STEMCELL_S3_FORCE_PATH_STYLE === 'true' ? { forcePathStyle: true } : {}),
    ...(env.STEMCELL_ORGANIZATIONS_REGION ? { organizationsRegion: env.STEMCELL_ORGANIZATIONS_REGION } : {}),
  };
}

/** One line per bad variable, naming it and what is wrong with it. */
export function envIssues(error: z.ZodError | undefined, env: NodeJS.ProcessEnv): string[] {
  return (error?.issues ?? []).map((i) => {
    const name = String(i.path[0] ?? '(environment)');
    return env[name] ? `${name}: ${i.message} (got ${JSON.stringify(env[name])})` : `${name}: not set`;
  });
}

/** Every bad variable in one error. */
export function envError(lines: string[], what: string, cause?: z.ZodError): Error {
  return new Error(`${what}: bad environment:\n  ${lines.join('\n  ')}`, cause ? { cause } : {});
}

/** The client settings from `env` (process.env by default), or an error naming every bad variable. */
export function clientSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): ClientSettings {
  const parsed = AwsClientEnv.safeParse(env);
  if (!parsed.success) throw envError(envIssues(parsed.error, env), 'AWS client settings', parsed.error);
  return clientSettings(parsed.data);
}
