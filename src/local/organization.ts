// The local AWS Organizations: accounts and OUs from the config's `local` section, plus the accounts added or
// removed since (persisted in <root>/organization.json, so `stemcell dev` and a test's second instance agree).
// As on AWS, ListAccounts includes the management account.
import { join } from 'node:path';
import type { LocalConfig } from '#config/schema.ts';
import type { OrgAccount, OrganizationDirectory } from '#ports';
import { LocalServiceError } from './errors.ts';
import { readJson, writeJsonAtomic } from './json-state.ts';

interface MemberRecord {
  id: string;
  name: string;
  /** parent OU id, or the root id */
  ou: string;
  status: OrgAccount['status'];
}
interface OrganizationState {
  /** Changes over the config: accounts added (or moved), and ids removed. */
  added: MemberRecord[];
  removed: string[];
}

export class LocalOrganizationDirectory implements OrganizationDirectory {
  readonly organizationId: string;
  readonly managementAccountId: string;
  /** The organization root, parent of every OU in the local config. */
  readonly rootId: string;
  readonly #config: LocalConfig;
  readonly #path: string;

  constructor(root: string, config: LocalConfig) {
    this.#config = config;
    this.organizationId = config.organizationId;
    this.managementAccountId = config.managementAccountId;
    this.rootId = `r-${config.organizationId.slice(2, 6)}`;
    this.#path = join(root, 'organization.json');
  }

  async describe(): Promise<{ id: string; arn: string; managementAccountId: string }> {
    return {
      id: this.organizationId,
      arn: `arn:aws:organizations::${this.managementAccountId}:organization/${this.organizationId}`,
      managementAccountId: this.managementAccountId,
    };
  }

  async listAccounts(): Promise<OrgAccount[]> {
    return this.#members().map(toOrgAccount);
  }

  async listAccountsInOu(ouId: string): Promise<OrgAccount[]> {
    if (ouId === this.rootId) return this.listAccounts();
    this.#requireOu(ouId);
    return this.#members()
      .filter((m) => m.ou === ouId)
      .map(toOrgAccount);
  }

  async ouArn(ouId: string): Promise<string> {
    if (ouId === this.rootId) {
      return `arn:aws:organizations::${this.managementAccountId}:root/${this.organizationId}/${ouId}`;
    }
    this.#requireOu(ouId);
    return `arn:aws:organizations::${this.managementAccountId}:ou/${this.organizationId}/${ouId}`;
  }

  // ---------------------------------------------------------------- local-only

  /** The account joins the organization under `ou` (InviteAccount + MoveAccount in one step). */
  addAccount(account: { id: string; name: string; ou: string }): void {
    if (!/^\d{12}$/.test(account.id))
      throw new LocalServiceError('InvalidInputException', `account id ${account.id} is not 12 digits`);
    if (account.ou !== this.rootId) this.#requireOu(account.ou);
    const state = this.#state();
    state.added = [...state.added.filter((a) => a.id !== account.id), { ...account, status: 'ACTIVE' }];
    state.removed = state.removed.filter((id) => id !== account.id);
    writeJsonAtomic(this.#path, state);
  }

  /** The account leaves the organization. */
  removeAccount(accountId: string): void {
    if (accountId === this.managementAccountId) {
      throw new LocalServiceError(
        'ConstraintViolationException',
        `the management account ${accountId} cannot leave its organization`,
      );
    }
    if (!this.#members().some((m) => m.id === accountId)) {
      throw new LocalServiceError(
        'AccountNotFoundException',
        `account ${accountId} is not in organization ${this.organizationId}`,
      );
    }
    const state = this.#state();
    state.added = state.added.filter((a) => a.id !== accountId);
    state.removed = [...new Set([...state.removed, accountId])];
    writeJsonAtomic(this.#path, state);
  }

  /** OU of each member account (root id for the management account). */
  parentOf(accountId: string): string | undefined {
    return this.#members().find((m) => m.id === accountId)?.ou;
  }

  // ---------------------------------------------------------------- internals

  #state(): OrganizationState {
    return readJson<OrganizationState>(this.#path, { added: [], removed: [] });
  }

  #members(): MemberRecord[] {
    const state = this.#state();
    const byId = new Map<string, MemberRecord>();
    byId.set(this.managementAccountId, {
      id: this.managementAccountId,
      name: 'management',
      ou: this.rootId,
      status: 'ACTIVE',
    });
    for (const a of this.#config.accounts) byId.set(a.id, { ...a, status: 'ACTIVE' });
    for (const a of state.added) byId.set(a.id, a);
    for (const id of state.removed) byId.delete(id);
    return [...byId.values()];
  }

  #requireOu(ouId: string): void {
    if (!this.#config.ous.some((o) => o.id === ouId)) {
      throw new LocalServiceError(
        'ParentNotFoundException',
        `OU ${ouId} is not in organization ${this.organizationId}`,
      );
    }
  }
}

function toOrgAccount(m: MemberRecord): OrgAccount {
  return { id: m.id, name: m.name, status: m.status };
}
