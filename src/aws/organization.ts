// OrganizationDirectory on AWS Organizations (called from the management or a delegated admin account).
import {
  type Account,
  DescribeOrganizationCommand,
  OrganizationsClient,
  paginateListAccounts,
  paginateListAccountsForParent,
  paginateListOrganizationalUnitsForParent,
} from '@aws-sdk/client-organizations';
import type { OrgAccount, OrganizationDirectory } from '#ports';

function toOrgAccount(a: Account): OrgAccount | undefined {
  if (!a.Id) return undefined;
  const status = a.Status === 'SUSPENDED' || a.Status === 'PENDING_CLOSURE' ? a.Status : 'ACTIVE';
  return { id: a.Id, name: a.Name ?? a.Id, status };
}

export class AwsOrganizationDirectory implements OrganizationDirectory {
  readonly #org: OrganizationsClient;
  #described: Promise<{ id: string; arn: string; managementAccountId: string }> | undefined;

  constructor(options: { client?: OrganizationsClient } = {}) {
    this.#org = options.client ?? new OrganizationsClient({ region: 'us-east-1', retryMode: 'adaptive' });
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
    for await (const page of paginateListAccounts({ client: this.#org }, {})) {
      for (const a of page.Accounts ?? []) {
        const account = toOrgAccount(a);
        if (account) accounts.push(account);
      }
    }
    return accounts;
  }

  async listAccountsInOu(ouId: string): Promise<OrgAccount[]> {
    const accounts: OrgAccount[] = [];
    const parents = [ouId];
    for (let parent = parents.shift(); parent; parent = parents.shift()) {
      for await (const page of paginateListAccountsForParent({ client: this.#org }, { ParentId: parent })) {
        for (const a of page.Accounts ?? []) {
          const account = toOrgAccount(a);
          if (account) accounts.push(account);
        }
      }
      for await (const page of paginateListOrganizationalUnitsForParent(
        { client: this.#org },
        { ParentId: parent },
      )) {
        for (const ou of page.OrganizationalUnits ?? []) if (ou.Id) parents.push(ou.Id);
      }
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
