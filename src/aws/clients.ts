// One SDK client per service, region and account, created once and reused for the life of the process.
// Clients for another account assume a role there through STS; credentials refresh before they expire.
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { OrganizationsClient } from '@aws-sdk/client-organizations';
import { S3Client } from '@aws-sdk/client-s3';
import { SchedulerClient } from '@aws-sdk/client-scheduler';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

/**
 * SDK client configuration every client AwsClients builds receives: one place to point the whole wiring at
 * another endpoint (an emulator, a partition's or FIPS endpoint) or to tune its retries.
 */
export interface ClientSettings {
  /**
   * One endpoint for every service, e.g. an emulator's `http://127.0.0.1:5000`. Set on the client itself (not
   * only through AWS_ENDPOINT_URL), it also wins over the host in an SQS QueueUrl, which SDK v3 otherwise
   * sends each request to.
   * @defaultValue AWS's endpoint for each service and region
   */
  endpoint?: string;
  /** @defaultValue 5 */
  maxAttempts?: number;
  /** @defaultValue 'adaptive' (client-side rate limiting on throttling) */
  retryMode?: 'standard' | 'adaptive' | 'legacy';
  /**
   * The process's own credentials; clients for another account always assume the member role with them.
   * @defaultValue the SDK's default provider chain (environment, instance or Lambda role)
   */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /**
   * S3 addresses buckets in the path (`endpoint/bucket/key`) instead of the host name: emulators on an IP
   * address need it.
   * @defaultValue false
   */
  forcePathStyle?: boolean;
  /**
   * Region of the Organizations API, which is global and served from one region per partition.
   * @defaultValue 'us-east-1' (the aws partition)
   */
  organizationsRegion?: string;
}

/** What each SDK client's constructor receives. */
export interface ClientConfig {
  region: string;
  retryMode: 'standard' | 'adaptive' | 'legacy';
  maxAttempts: number;
  endpoint?: string;
  forcePathStyle?: boolean;
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
}

export interface AwsClientsOptions {
  /** The account these credentials belong to; clients for it need no role assumption. */
  ownAccountId?: string;
  /** Role assumed in member accounts, e.g. the one infra/member.yml creates. */
  memberRoleName?: string;
  /** @defaultValue 'stemcell' */
  roleSessionName?: string;
  /** Configuration of every SDK client built, member accounts' included. */
  client?: ClientSettings;
  /** For tests: the STS client used to assume roles. */
  sts?: STSClient;
}

/** The configuration one client gets from the settings: defaults filled, nothing unset passed on. */
export function clientConfig(settings: ClientSettings, region: string): ClientConfig {
  return {
    region,
    retryMode: settings.retryMode ?? 'adaptive',
    maxAttempts: settings.maxAttempts ?? 5,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.forcePathStyle ? { forcePathStyle: true } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
  };
}

type Ctor<T> = new (config: ClientConfig) => T;

/** Credentials of a role in another account, refreshed by the SDK when they near expiry. */
export function assumedRoleCredentials(
  sts: STSClient,
  roleArn: string,
  sessionName: string,
): AwsCredentialIdentityProvider {
  let cached: AwsCredentialIdentity | undefined;
  return async () => {
    const expiresSoon = cached?.expiration && cached.expiration.getTime() - Date.now() < 5 * 60_000;
    if (cached && !expiresSoon) return cached;
    const out = await sts.send(
      new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName, DurationSeconds: 3600 }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey)
      throw new Error(`AssumeRole ${roleArn} returned no credentials`);
    cached = {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: c.Expiration,
    };
    return cached;
  };
}

export class AwsClients {
  readonly #options: AwsClientsOptions;
  readonly #cache = new Map<string, unknown>();
  readonly #credentials = new Map<string, AwsCredentialIdentityProvider>();

  constructor(options: AwsClientsOptions = {}) {
    this.#options = options;
  }

  /** The client settings every client of this instance is built with. */
  get settings(): ClientSettings {
    return this.#options.client ?? {};
  }

  /** Another AwsClients with the same client settings (and STS client) and other account options. */
  with(options: Omit<AwsClientsOptions, 'client' | 'sts'>): AwsClients {
    return new AwsClients({
      ...options,
      ...(this.#options.client ? { client: this.#options.client } : {}),
      ...(this.#options.sts ? { sts: this.#options.sts } : {}),
    });
  }

  s3(region: string): S3Client {
    return this.#get(S3Client, region);
  }
  sqs(region: string): SQSClient {
    return this.#get(SQSClient, region);
  }
  eventBridge(region: string): EventBridgeClient {
    return this.#get(EventBridgeClient, region);
  }
  dynamodb(region: string): DynamoDBClient {
    return this.#get(DynamoDBClient, region);
  }
  scheduler(region: string): SchedulerClient {
    return this.#get(SchedulerClient, region);
  }
  cloudwatch(region: string): CloudWatchClient {
    return this.#get(CloudWatchClient, region);
  }
  /** Organizations is a global service, served from one region (settings.organizationsRegion). */
  organizations(): OrganizationsClient {
    return this.#get(OrganizationsClient, this.settings.organizationsRegion ?? 'us-east-1');
  }
  sts(region: string): STSClient {
    return this.#options.sts ?? this.#get(STSClient, region);
  }
  ec2(region: string, accountId?: string): EC2Client {
    return this.#get(EC2Client, region, accountId);
  }
  kms(region: string, accountId?: string): KMSClient {
    return this.#get(KMSClient, region, accountId);
  }
  autoScaling(region: string, accountId?: string): AutoScalingClient {
    return this.#get(AutoScalingClient, region, accountId);
  }
  ssm(region: string, accountId?: string): SSMClient {
    return this.#get(SSMClient, region, accountId);
  }

  #get<T>(ctor: Ctor<T>, region: string, accountId?: string): T {
    const foreign = accountId !== undefined && accountId !== this.#options.ownAccountId;
    const key = `${ctor.name}|${region}|${foreign ? accountId : 'self'}`;
    let client = this.#cache.get(key) as T | undefined;
    if (!client) {
      const config = clientConfig(this.settings, region);
      // Path-style addressing is S3's alone.
      if ((ctor as unknown) !== S3Client) delete config.forcePathStyle;
      if (foreign) config.credentials = this.#memberCredentials(accountId, region);
      client = new ctor(config);
      this.#cache.set(key, client);
    }
    return client;
  }

  #memberCredentials(accountId: string, region: string): AwsCredentialIdentityProvider {
    const roleName = this.#options.memberRoleName;
    if (!roleName) {
      throw new Error(`no memberRoleName configured: cannot reach account ${accountId}`);
    }
    let provider = this.#credentials.get(accountId);
    if (!provider) {
      provider = assumedRoleCredentials(
        this.sts(region),
        `arn:aws:iam::${accountId}:role/${roleName}`,
        this.#options.roleSessionName ?? 'stemcell',
      );
      this.#credentials.set(accountId, provider);
    }
    return provider;
  }
}
