// The local KMS: a keyring under <root>/keys. Each customer key has a random 256-bit master key in its own file
// (mode 0600) and a JSON record (owner account, aliases, grants). Data keys are wrapped with AES-256-GCM under the
// master key, with the encryption context as additional authenticated data, so a wrong context fails to decrypt
// as on KMS. Like a KMS ciphertext blob, the wrapped key names its key, so decrypt needs no key id.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, DataKey, KeyService } from '#ports';
import { systemClock } from './clock.ts';
import { LocalServiceError } from './errors.ts';
import { readJson, readJsonDir, writeFileAtomic, writeJsonAtomic } from './json-state.ts';

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
}

export interface LocalKeyServiceOptions {
  /** The account that creates keys here (the home account). */
  accountId: string;
  region: string;
  clock?: Clock;
}

export class LocalKeyService implements KeyService {
  readonly accountId: string;
  readonly region: string;
  private readonly dir: string;
  private readonly clock: Clock;

  constructor(root: string, options: LocalKeyServiceOptions) {
    this.accountId = options.accountId;
    this.region = options.region;
    this.dir = join(root, 'keys');
    this.clock = options.clock ?? systemClock;
  }

  async generateDataKey(keyId: string, context: Record<string, string>): Promise<DataKey> {
    const key = this.requireKey(keyId);
    const plaintext = randomBytes(32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.masterKey(key), iv);
    cipher.setAAD(contextAad(context));
    const sealed = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const id = Buffer.from(key.keyId);
    const ciphertext = Buffer.concat([MAGIC, Buffer.from([id.length]), id, iv, cipher.getAuthTag(), sealed]);
    return { plaintext, ciphertext };
  }

  async decrypt(
    ciphertext: Buffer,
    context: Record<string, string>,
    callerAccountId: string,
  ): Promise<Buffer> {
    const blob = parseBlob(ciphertext);
    const key = this.requireKey(blob.keyId);
    if (callerAccountId !== key.accountId && !hasGrant(key, callerAccountId, 'Decrypt')) {
      throw new LocalServiceError(
        'AccessDeniedException',
        `User: arn:aws:iam::${callerAccountId}:root is not authorized to perform: kms:Decrypt on resource: ${key.arn} because no resource-based policy or grant allows the kms:Decrypt action (key ${key.keyId} belongs to account ${key.accountId})`,
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.masterKey(key), blob.iv);
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
    const key = this.requireKey(keyId);
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
        createdAt: this.clock.now().toISOString(),
      });
      this.saveRecord(key);
    }
    return { grantId };
  }

  async describeKey(keyId: string): Promise<{ keyId: string; arn: string; accountId: string }> {
    const key = this.requireKey(keyId);
    return { keyId: key.keyId, arn: key.arn, accountId: key.accountId };
  }

  // ---------------------------------------------------------------- local-only

  /** CreateKey (+ CreateAlias): a new customer managed key owned by `accountId` (default: this service's). */
  createKey(input: { alias?: string; description?: string; accountId?: string } = {}): {
    keyId: string;
    arn: string;
  } {
    const accountId = input.accountId ?? this.accountId;
    if (input.alias) {
      assertAlias(input.alias);
      if (this.findKey(input.alias, accountId)) {
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
      createdAt: this.clock.now().toISOString(),
    };
    writeFileAtomic(this.masterKeyPath(keyId), randomBytes(32), 0o600);
    this.saveRecord(key);
    return { keyId, arn: key.arn };
  }

  /** The key an alias names, created on first use: how local mode provides config's `kmsKeyId: alias/stemcell`. */
  ensureKey(alias: string, description = ''): { keyId: string; arn: string } {
    const existing = this.findKey(alias, this.accountId);
    return existing ? { keyId: existing.keyId, arn: existing.arn } : this.createKey({ alias, description });
  }

  listGrants(keyId: string): LocalGrant[] {
    return this.requireKey(keyId).grants;
  }

  // ---------------------------------------------------------------- internals

  private records(): KeyRecord[] {
    return readJsonDir<KeyRecord>(this.dir);
  }

  /** Resolves a key id, key ARN, alias name (alias/x) or alias ARN, as KMS does. */
  private findKey(ref: string, defaultAccount = this.accountId): KeyRecord | undefined {
    const aliasArn = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(alias\/.+)$/.exec(ref);
    const keyArn = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/(.+)$/.exec(ref);
    if (keyArn) return this.records().find((k) => k.arn === ref);
    if (aliasArn)
      return this.records().find(
        (k) => k.accountId === aliasArn[2] && k.aliases.includes(aliasArn[3] as string),
      );
    if (ref.startsWith('alias/'))
      return this.records().find((k) => k.accountId === defaultAccount && k.aliases.includes(ref));
    return readJson<KeyRecord | undefined>(join(this.dir, `${safeName(ref)}.json`), undefined);
  }

  private requireKey(ref: string): KeyRecord {
    const key = this.findKey(ref);
    if (!key) throw new LocalServiceError('NotFoundException', `Key '${ref}' does not exist`, 400);
    return key;
  }

  private masterKey(key: KeyRecord): Buffer {
    return readFileSync(this.masterKeyPath(key.keyId));
  }

  private masterKeyPath(keyId: string): string {
    return join(this.dir, `${safeName(keyId)}.key`);
  }

  private saveRecord(key: KeyRecord): void {
    writeJsonAtomic(join(this.dir, `${safeName(key.keyId)}.json`), key);
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

function hasGrant(key: KeyRecord, accountId: string, operation: string): boolean {
  return key.grants.some((g) => g.granteeAccountId === accountId && g.operations.includes(operation));
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
