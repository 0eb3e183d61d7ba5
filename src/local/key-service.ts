// The local KMS: a keyring under <root>/keys. Each customer key has a random 256-bit master key in its own file
// (mode 0600) and a JSON record (owner account, aliases, grants). Data keys are wrapped with AES-256-GCM under the
// master key, with the encryption context as additional authenticated data, so a wrong context fails to decrypt
// as on KMS. Like a KMS ciphertext blob, the wrapped key names its key, so decrypt needs no key id.
// Who may use a key is decided as KMS does (key-policy.ts): the key's account, a principal its key policy allows
// (not a service-linked role: it has no IAM policy of its own), or a grantee for the operations of its grant.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, DataKey, KeyService } from '#ports';
import { systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir, writeFileAtomic, writeJsonAtomic } from './json-state.ts';
import {
  accountOf,
  allowingStatement,
  isServiceLinkedRole,
  type KeyPolicy,
  type KeyRequest,
} from './key-policy.ts';

const MAGIC = Buffer.from('SCK1');
const GRANT_OPERATIONS = new Set([
  'Decrypt',
  'Encrypt',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'ReEncryptFrom',
  'ReEncryptTo',
  'CreateGrant',
  'RetireGrant',
  'DescribeKey',
  'GenerateDataKeyPair',
  'GenerateDataKeyPairWithoutPlaintext',
  'Sign',
  'Verify',
  'GetPublicKey',
  'GenerateMac',
  'VerifyMac',
  'DeriveSharedSecret',
]);

export interface LocalGrant {
  grantId: string;
  granteePrincipal: string;
  /** the account the grantee principal belongs to */
  granteeAccountId: string;
  operations: string[];
  createdAt: string;
}
interface KeyRecord {
  keyId: string;
  arn: string;
  accountId: string;
  region: string;
  description: string;
  aliases: string[];
  grants: LocalGrant[];
  createdAt: string;
  /** Absent: the default key policy (the key's account only). */
  policy?: KeyPolicy;
}

export interface LocalKeyServiceOptions {
  /** The account that creates keys here (the home account). */
  accountId: string;
  region: string;
  clock?: Clock;
  /** The organization an account belongs to (aws:PrincipalOrgID); none known when absent. */
  organizationOf?: (accountId: string) => string | undefined;
}

/** Where a key request comes from: the caller, and the service acting for it (kms:ViaService). */
export interface KeyCaller {
  /** IAM principal ARN, or an account id (its root). */
  principal: string;
  viaService?: string;
}

export class LocalKeyService implements KeyService {
  readonly accountId: string;
  readonly region: string;
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #organizationOf: (accountId: string) => string | undefined;

  constructor(root: string, options: LocalKeyServiceOptions) {
    this.accountId = options.accountId;
    this.region = options.region;
    this.#dir = join(root, 'keys');
    this.#clock = options.clock ?? systemClock;
    this.#organizationOf = options.organizationOf ?? (() => undefined);
  }

  async generateDataKey(keyId: string, context: Record<string, string>): Promise<DataKey> {
    const key = this.#requireKey(keyId);
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#masterKey(key), iv);
    cipher.setAAD(contextAad(context));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const id = Buffer.from(key.keyId);
    const ciphertext = Buffer.concat([MAGIC, Buffer.from([id.length]), id, iv, cipher.getAuthTag(), sealed]);
    return { plaintext, ciphertext };
  }

  /** `caller`: an account id or principal ARN, or a KeyCaller naming the service acting for it. */
  async decrypt(
    ciphertext: Buffer,
    context: Record<string, string>,
    caller: string | KeyCaller,
  ): Promise<Buffer> {
    const blob = parseBlob(ciphertext);
    const key = this.#requireKey(blob.keyId);
    const who = typeof caller === 'string' ? { principal: caller } : caller;
    const denied = this.#denial(key, { ...who, operation: 'Decrypt' });
    if (denied) throw new LocalServiceError('AccessDeniedException', denied);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#masterKey(key), blob.iv);
      decipher.setAAD(contextAad(context));
      decipher.setAuthTag(blob.tag);
      return Buffer.concat([decipher.update(blob.sealed), decipher.final()]);
    } catch {
      throw new LocalServiceError(
        'InvalidCiphertextException',
        `ciphertext for key ${key.keyId} does not decrypt with this encryption context (${JSON.stringify(context)})`,
      );
    }
  }

  /** Idempotent like KMS: the same key, grantee and operations return the same grant id. */
  async createGrant(
    keyId: string,
    granteePrincipal: string,
    operations: string[],
  ): Promise<{ grantId: string }> {
    const key = this.#requireKey(keyId);
    if (operations.length === 0)
      throw new LocalServiceError('ValidationException', 'a grant needs at least one operation');
    for (const op of operations) {
      if (!GRANT_OPERATIONS.has(op)) {
        throw new LocalServiceError(
          'ValidationException',
          `grant operation ${JSON.stringify(op)} is not a KMS grant operation`,
        );
      }
    }
    const granteeAccountId = accountOfPrincipal(granteePrincipal);
    const ops = [...new Set(operations)].sort();
    const grantId = createHash('sha256')
      .update(JSON.stringify([key.keyId, granteePrincipal, ops]))
      .digest('hex');
    if (!key.grants.some((g) => g.grantId === grantId)) {
      key.grants.push({
        grantId,
        granteePrincipal,
        granteeAccountId,
        operations: ops,
        createdAt: this.#clock.now().toISOString(),
      });
      this.#saveRecord(key);
    }
    return { grantId };
  }

  async describeKey(keyId: string): Promise<{ keyId: string; arn: string; accountId: string }> {
    const key = this.#requireKey(keyId);
    return { keyId: key.keyId, arn: key.arn, accountId: key.accountId };
  }

  // ---------------------------------------------------------------- local-only

  /** CreateKey (+ CreateAlias): a new customer managed key owned by `accountId` (default: this service's). */
  createKey(input: { alias?: string; description?: string; accountId?: string; policy?: KeyPolicy } = {}): {
    keyId: string;
    arn: string;
  } {
    const accountId = input.accountId ?? this.accountId;
    if (input.alias) {
      assertAlias(input.alias);
      if (this.#findKey(input.alias, accountId)) {
        throw new LocalServiceError(
          'AlreadyExistsException',
          `alias ${input.alias} already exists in account ${accountId}`,
        );
      }
    }
    const keyId = crypto.randomUUID();
    const key: KeyRecord = {
      keyId,
      arn: `arn:aws:kms:${this.region}:${accountId}:key/${keyId}`,
      accountId,
      region: this.region,
      description: input.description ?? '',
      aliases: input.alias ? [input.alias] : [],
      grants: [],
      createdAt: this.#clock.now().toISOString(),
      ...(input.policy ? { policy: input.policy } : {}),
    };
    writeFileAtomic(this.#masterKeyPath(keyId), randomBytes(32), 0o600);
    this.#saveRecord(key);
    return { keyId, arn: key.arn };
  }

  /** The key an alias names, created on first use: how local mode provides config's `kmsKeyId: alias/stemcell`. */
  ensureKey(alias: string, description = '', policy?: KeyPolicy): { keyId: string; arn: string } {
    const existing = this.#findKey(alias, this.accountId);
    if (!existing) return this.createKey({ alias, description, ...(policy ? { policy } : {}) });
    if (policy && JSON.stringify(existing.policy) !== JSON.stringify(policy))
      this.setPolicy(existing.keyId, policy);
    return { keyId: existing.keyId, arn: existing.arn };
  }

  listGrants(keyId: string): LocalGrant[] {
    return this.#requireKey(keyId).grants;
  }

  /** PutKeyPolicy. */
  setPolicy(keyId: string, policy: KeyPolicy): void {
    const key = this.#requireKey(keyId);
    this.#saveRecord({ ...key, policy });
  }

  /**
   * Why `request` would be refused on the key, or undefined when KMS would allow it. EBS asks for the caller it
   * acts for, with kms:ViaService = ec2.<region>.amazonaws.com.
   */
  explainDenial(keyId: string, request: Omit<KeyRequest, 'principalOrgId'>): string | undefined {
    return this.#denial(this.#requireKey(keyId), request);
  }

  /** CreateGrant called by `caller` (another account's principal, as infra/member.yml's custom resource is). */
  async createGrantAs(
    caller: string,
    keyId: string,
    granteePrincipal: string,
    operations: string[],
    options: { isForAwsResource?: boolean } = {},
  ): Promise<{ grantId: string }> {
    const key = this.#requireKey(keyId);
    const denied = this.#denial(key, {
      principal: caller,
      operation: 'CreateGrant',
      grant: { granteePrincipal, operations, isForAwsResource: options.isForAwsResource ?? false },
    });
    if (denied) throw new LocalServiceError('AccessDeniedException', denied);
    return this.createGrant(keyId, granteePrincipal, operations);
  }

  /** RevokeGrant of every grant to `granteePrincipal` (a test removes a member's grant this way). */
  revokeGrants(keyId: string, granteePrincipal: string): number {
    const key = this.#requireKey(keyId);
    const kept = key.grants.filter((g) => g.granteePrincipal !== granteePrincipal);
    this.#saveRecord({ ...key, grants: kept });
    return key.grants.length - kept.length;
  }

  #denial(key: KeyRecord, request: Omit<KeyRequest, 'principalOrgId'>): string | undefined {
    const account = accountOf(request.principal);
    if (!account) return `principal ${request.principal} is not an account id or IAM ARN`;
    const principal = /^\d{12}$/.test(request.principal) ? `arn:aws:iam::${account}:root` : request.principal;
    // The key's own account: its IAM policies decide (the policy's root statement delegates to them).
    if (account === key.accountId) return undefined;
    if (
      key.grants.some((g) => grantCovers(g, principal, account) && g.operations.includes(request.operation))
    )
      return undefined;
    const principalOrgId = this.#organizationOf(account);
    const statement = key.policy && allowingStatement(key.policy, { ...request, principal, principalOrgId });
    if (statement && !isServiceLinkedRole(principal)) return undefined;
    const why = statement
      ? `key policy statement ${statement.Sid} allows it, but ${principal} is a service-linked role with no IAM policy for the key, so it needs a grant`
      : `no key policy statement or grant allows it${principalOrgId ? '' : ` (account ${account} is in no organization the policy names)`}`;
    return `User: ${principal} is not authorized to perform: kms:${request.operation} on resource: ${key.arn}${request.viaService ? ` via ${request.viaService}` : ''}: ${why} (key ${key.keyId} belongs to account ${key.accountId})`;
  }

  // ---------------------------------------------------------------- internals

  #records(): KeyRecord[] {
    return readJsonDir<KeyRecord>(this.#dir);
  }

  /** Resolves a key id, key ARN, alias name (alias/x) or alias ARN, as KMS does. */
  #findKey(ref: string, defaultAccount = this.accountId): KeyRecord | undefined {
    const aliasArn = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(alias\/.+)$/.exec(ref);
    const keyArn = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/(.+)$/.exec(ref);
    if (keyArn) return this.#records().find((k) => k.arn === ref);
    if (aliasArn)
      return this.#records().find(
        (k) => k.accountId === aliasArn[2] && k.aliases.includes(aliasArn[3] as string),
      );
    if (ref.startsWith('alias/'))
      return this.#records().find((k) => k.accountId === defaultAccount && k.aliases.includes(ref));
    return readJson<KeyRecord | undefined>(join(this.#dir, `${safeName(ref)}.json`), undefined);
  }

  #requireKey(ref: string): KeyRecord {
    const key = this.#findKey(ref);
    if (!key) throw new LocalServiceError('NotFoundException', `Key '${ref}' does not exist`, 400);
    return key;
  }

  #masterKey(key: KeyRecord): Buffer {
    return readFileSync(this.#masterKeyPath(key.keyId));
  }

  #masterKeyPath(keyId: string): string {
    return join(this.#dir, `${safeName(keyId)}.key`);
  }

  #saveRecord(key: KeyRecord): void {
    writeJsonAtomic(join(this.#dir, `${safeName(key.keyId)}.json`), key);
  }
}

/** Account of a grantee: a 12-digit id, arn:aws:iam::<account>:…, or arn:aws:sts::<account>:…. */
export function accountOfPrincipal(principal: string): string {
  if (/^\d{12}$/.test(principal)) return principal;
  const match = /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(principal);
  if (!match) {
    throw new LocalServiceError(
      'ValidationException',
      `grantee principal ${JSON.stringify(principal)} is not an account id or IAM ARN`,
    );
  }
  return match[1] as string;
}

/** A grant to a principal covers that principal; one to an account (or its root) covers the account's own principals. */
function grantCovers(grant: LocalGrant, principal: string, account: string): boolean {
  if (grant.granteePrincipal === principal) return true;
  const toAccount = /^\d{12}$/.test(grant.granteePrincipal) || /:root$/.test(grant.granteePrincipal);
  return toAccount && grant.granteeAccountId === account && !isServiceLinkedRole(principal);
}

/** KMS binds the context irrespective of key order. */
function contextAad(context: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify(Object.entries(context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

function parseBlob(ciphertext: Buffer): { keyId: string; iv: Buffer; tag: Buffer; sealed: Buffer } {
  const invalid = () =>
    new LocalServiceError(
      'InvalidCiphertextException',
      'ciphertext blob is not one this key service produced',
    );
  if (ciphertext.length < MAGIC.length + 1 || !ciphertext.subarray(0, MAGIC.length).equals(MAGIC))
    throw invalid();
  const idLength = ciphertext[MAGIC.length] as number;
  const idStart = MAGIC.length + 1;
  const ivStart = idStart + idLength;
  const tagStart = ivStart + 12;
  const sealedStart = tagStart + 16;
  const keyId = ciphertext.subarray(idStart, ivStart).toString();
  const iv = ciphertext.subarray(ivStart, tagStart);
  const tag = ciphertext.subarray(tagStart, sealedStart);
  const sealed = ciphertext.subarray(sealedStart);
  if (sealed.length === 0) throw invalid();
  return { keyId, iv, tag, sealed };
}

function assertAlias(alias: string): void {
  if (!/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(alias) || alias.startsWith('alias/aws/')) {
    throw new LocalServiceError(
      'ValidationException',
      `alias ${JSON.stringify(alias)} is not valid (alias/<name>, not alias/aws/…)`,
    );
  }
}

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9-]/g, '_');
}
