// OrganizationDirectory on AWS Organizations (called from the management or a delegated admin account).
import {
  type Account,
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { type ApiPacer, ORGANIZATIONS } from '#core/members/quotas.ts';
import type { OrgAccount, OrganizationDirectory } from '#ports';

function toOrgAccount(a: Account): OrgAccount | undefined {
  if (!a.Id) return undefined;
  const status = a.Status === 'SUSPENDED' || a.Status === 'PENDING_CLOSURE' ? a.Status : 'ACTIVE';
  return { id: a.Id, name: a.Name ?? a.Id, status };
}

export class AwsOrganizationDirectory implements OrganizationDirectory {
  readonly #org: OrganizationsClient;
  readonly #pacer: ApiPacer | undefined;
  #described: Promise<{ id: string; arn: string; managementAccountId: string }> | undefined;

  /** pacer: keeps each list API under a rate (10,000 accounts are 500 pages of 20). */
  constructor(options: { client?: OrganizationsClient; pacer?: ApiPacer } = {}) {
    this.#org = options.client ?? new OrganizationsClient({ region: 'us-east-1', retryMode: 'adaptive' });
    this.#pacer = options.pacer;
  }

  describe(): Promise<{ id: string; arn: string; managementAccountId: string }> {
    // The organization's identity never changes for the life of the process.
    this.#described ??= (async () => {
      const out = await this.#org.send(new DescribeOrganizationCommand({}));
      const o = out.Organization;
      if (!o?.Id || !o.Arn || !o.MasterAccountId)
        throw new Error('DescribeOrganization returned no organization');
      return { id: o.Id, arn: o.Arn, managementAccountId: o.MasterAccountId };
    })();
    this.#described.catch(() => {
      this.#described = undefined;
    });
    return this.#described;
  }

  async listAccounts(): Promise<OrgAccount[]> {
    const accounts: OrgAccount[] = [];
    let token: string | undefined;
    do {
      await this.#pacer?.take('ListAccounts');
      const page = await this.#org.send(
        new ListAccountsCommand({ MaxResults: ORGANIZATIONS.pageSize, NextToken: token }),
      );
      for (const a of page.Accounts ?? []) {
        const account = toOrgAccount(a);
        if (account) accounts.push(account);
      }
      token = page.NextToken;
    } while (token);
    return accounts;
  }

  async listAccountsInOu(ouId: string): Promise<OrgAccount[]> {
    const accounts: OrgAccount[] = [];
    const parents = [ouId];
    for (let parent = parents.shift(); parent; parent = parents.shift()) {
      let token: string | undefined;
      do {
        await this.#pacer?.take('ListAccountsForParent');
        const page = await this.#org.send(
          new ListAccountsForParentCommand({
            ParentId: parent,
            MaxResults: ORGANIZATIONS.pageSize,
            NextToken: token,
          }),
        );
        for (const a of page.Accounts ?? []) {
          const account = toOrgAccount(a);
          if (account) accounts.push(account);
        }
        token = page.NextToken;
      } while (token);
      do {
        await this.#pacer?.take('ListOrganizationalUnitsForParent');
        const page = await this.#org.send(
          new ListOrganizationalUnitsForParentCommand({
            ParentId: parent,
            MaxResults: ORGANIZATIONS.pageSize,
            NextToken: token,
          }),
        );
        for (const ou of page.OrganizationalUnits ?? []) if (ou.Id) parents.push(ou.Id);
        token = page.NextToken;
      } while (token);
    }
    return accounts;
  }

  /** Full ARN, as ModifyImageAttribute's OrganizationalUnitArn wants it (roots are accepted too). */
  async ouArn(ouId: string): Promise<string> {
    const org = await this.describe();
    const partition = org.arn.split(':')[1] ?? 'aws';
    const kind = ouId.startsWith('r-') ? 'root' : 'ou';
    return `arn:${partition}:organizations::${org.managementAccountId}:${kind}/${org.id}/${ouId}`;
  }
}
