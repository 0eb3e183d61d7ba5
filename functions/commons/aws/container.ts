// What one Lambda container reads once: its environment (parsed through env.ts's one schema, with what the
// function requires), its SDK clients, its stemcell config and its own account id. Each is made at its first use
// and kept; a failed first read (a throttled STS call, an unreadable config) is tried again on the next.
//
// Configuration on AWS: the stemcell.config.yml text (YAML or JSON) comes from STEMCELL_CONFIG when set (small
// configs, tests), else from the object STEMCELL_CONFIG_KEY in the tarball bucket STEMCELL_BUCKET (what
// serverless.yml deploys: no 4 KB environment limit, and `stemcell` can update it without a redeploy).
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { parse as parseYaml } from 'yaml';
import { clientSettings } from '#aws/client-env.ts';
import { AwsClients } from '#aws/clients.ts';
import { parseConfig } from '#config/load.ts';
import type { StemcellConfig } from '#config/schema.ts';
import { type EnvOf, type FunctionEnv, type FunctionName, parseFunctionEnv } from '../env.ts';

/** A promise kept once it resolves; a rejected one is dropped so that the next call tries again. */
function retained<T>(make: () => Promise<T>): () => Promise<T> {
  let kept: Promise<T> | undefined;
  return () => {
    if (!kept) {
      kept = make();
      kept.catch(() => {
        kept = undefined;
      });
    }
    return kept;
  };
}

export class AwsContainer {
  readonly #source: NodeJS.ProcessEnv;
  readonly #parsed = new Map<FunctionName, FunctionEnv>();
  #first: FunctionEnv | undefined;
  #clients: AwsClients | undefined;
  readonly #config = retained(() => this.#readConfig());
  readonly #accountId = retained(() => this.#callerAccount());

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.#source = env;
  }

  /** Function `fn`'s environment, parsed at its first use (a container runs one function). */
  env<F extends FunctionName>(fn: F): EnvOf<F> {
    let found = this.#parsed.get(fn);
    if (!found) {
      found = parseFunctionEnv(fn, this.#source);
      this.#parsed.set(fn, found);
      this.#first ??= found;
    }
    return found as EnvOf<F>;
  }

  /** The environment parsed by the first entry used: what the container-wide pieces below read. */
  get #env(): FunctionEnv {
    if (!this.#first) throw new Error('AwsContainer: no function environment parsed yet');
    return this.#first;
  }

  get homeRegion(): string {
    return this.#env.STEMCELL_HOME_REGION ?? this.#env.AWS_REGION;
  }

  /** The one AwsClients of the container: every SDK client gets the settings the environment gives. */
  get clients(): AwsClients {
    const e = this.#env;
    this.#clients ??= new AwsClients({
      ...(e.STEMCELL_MEMBER_ROLE_NAME ? { memberRoleName: e.STEMCELL_MEMBER_ROLE_NAME } : {}),
      roleSessionName: e.AWS_LAMBDA_FUNCTION_NAME ?? 'stemcell',
      client: clientSettings(e),
    });
    return this.#clients;
  }

  /** The stemcell config, the deployment's bucket, bus, key and region winning over the file's defaults. */
  config(): Promise<StemcellConfig> {
    return this.#config();
  }

  /** This account's id (STS), read once. */
  ownAccountId(): Promise<string> {
    return this.#accountId();
  }

  async #readConfig(): Promise<StemcellConfig> {
    const e = this.#env;
    return {
      ...(await this.#configFile(e)),
      ...(e.STEMCELL_HOME_REGION ? { homeRegion: e.STEMCELL_HOME_REGION } : {}),
      ...(e.STEMCELL_BUCKET ? { bucket: e.STEMCELL_BUCKET } : {}),
      ...(e.STEMCELL_BUS_NAME ? { busName: e.STEMCELL_BUS_NAME } : {}),
      ...(e.STEMCELL_KMS_KEY_ID ? { kmsKeyId: e.STEMCELL_KMS_KEY_ID } : {}),
    };
  }

  async #configFile(e: FunctionEnv): Promise<StemcellConfig> {
    if (e.STEMCELL_CONFIG) return parseConfig(parseYaml(e.STEMCELL_CONFIG), 'STEMCELL_CONFIG');
    // env.ts requires both for every function that reads its config from the bucket.
    const bucket = e.STEMCELL_BUCKET as string;
    const key = e.STEMCELL_CONFIG_KEY as string;
    const out = await this.clients
      .s3(this.homeRegion)
      .send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await out.Body?.transformToString('utf8');
    if (!text) throw new Error(`s3://${bucket}/${key} is empty`);
    return parseConfig(parseYaml(text), `s3://${bucket}/${key}`);
  }

  async #callerAccount(): Promise<string> {
    const identity = await this.clients.sts(this.homeRegion).send(new GetCallerIdentityCommand({}));
    if (!identity.Account) throw new Error('STS GetCallerIdentity returned no account');
    return identity.Account;
  }
}
