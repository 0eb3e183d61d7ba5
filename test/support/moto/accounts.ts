// Principals on the moto server: the home (management) account's own keys, and every other account reached as
// AWS Organizations sets it up, through its OrganizationAccountAccessRole. moto ties the keys STS hands out to
// the account of the role, so a client built here acts as that account for every later call.
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity } from '@smithy/types';

/** moto's default account: what plain (non-STS) keys act as. */
export const HOME_ACCOUNT = '123456789012';
const HOME_KEYS: AwsCredentialIdentity = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
};

export interface ClientConfig {
  region: string;
  endpoint: string;
  credentials: () => Promise<AwsCredentialIdentity>;
  forcePathStyle: boolean;
  maxAttempts: number;
}

export class MotoAccounts {
  readonly endpoint: string;
  readonly #roles = new Map<string, Promise<AwsCredentialIdentity>>();
  readonly #sts: STSClient;

  constructor(endpoint: string) {
    this.endpoint = endpoint;
    this.#sts = new STSClient(this.#config('us-east-1', async () => HOME_KEYS));
  }

  /** Keys of a role (its account is in its ARN), as Lambda or EC2 hand them to the code they run. */
  assumeRole(roleArn: string, sessionName = 'stemcell-e2e'): Promise<AwsCredentialIdentity> {
    const key = `${roleArn}|${sessionName}`;
    let found = this.#roles.get(key);
    if (!found) {
      found = this.#sts
        .send(new AssumeRoleCommand({ RoleArn: roleArn, RoleSessionName: sessionName }))
        .then((out) => {
          const c = out.Credentials;
          if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole ${roleArn}: no keys`);
          return {
            accessKeyId: c.AccessKeyId,
            secretAccessKey: c.SecretAccessKey,
            sessionToken: c.SessionToken,
          };
        });
      found.catch(() => this.#roles.delete(key));
      this.#roles.set(key, found);
    }
    return found;
  }

  /** An operator of the account: the management account itself, or its OrganizationAccountAccessRole. */
  credentials(account: string): Promise<AwsCredentialIdentity> {
    if (account === HOME_ACCOUNT) return Promise.resolve(HOME_KEYS);
    return this.assumeRole(`arn:aws:iam::${account}:role/OrganizationAccountAccessRole`, 'operator');
  }

  config(account: string, region: string): ClientConfig {
    return this.#config(region, () => this.credentials(account));
  }

  /** An SDK v3 client of a service, in an account and Region, pointed at moto. */
  client<T>(ctor: new (config: ClientConfig) => T, account: string, region: string): T {
    return new ctor(this.config(account, region));
  }

  #config(region: string, credentials: () => Promise<AwsCredentialIdentity>): ClientConfig {
    return { region, endpoint: this.endpoint, credentials, forcePathStyle: true, maxAttempts: 3 };
  }
}
