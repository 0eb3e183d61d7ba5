// Stateful fake of AWS Organizations: accounts under a tree of OUs, paginated lists.
// Kept only for the role-vs-code test (test/support/role-world.ts); why moto cannot stand in there: common.ts.
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { page } from './common.ts';

export interface OrgFixture {
  id: string;
  managementAccountId: string;
  rootId: string;
  /** OU id → parent id (root or OU). */
  ous: Record<string, string>;
  accounts: { id: string; name: string; parent: string; status?: 'ACTIVE' | 'SUSPENDED' }[];
}

export class FakeOrganizations {
  readonly fixture: OrgFixture;
  readonly pageSize = 2;

  constructor(fixture: OrgFixture) {
    this.fixture = fixture;
  }

  client(): OrganizationsClient {
    const client = new OrganizationsClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(client);
    const f = this.fixture;
    const toAccount = (a: OrgFixture['accounts'][number]) => ({
      Id: a.id,
      Name: a.name,
      Status: a.status ?? 'ACTIVE',
    });
    mock.on(DescribeOrganizationCommand).callsFake(() => ({
      Organization: {
        Id: f.id,
        Arn: `arn:aws:organizations::${f.managementAccountId}:organization/${f.id}`,
        MasterAccountId: f.managementAccountId,
      },
    }));
    mock.on(ListAccountsCommand).callsFake((input) => {
      const p = page(f.accounts, input.NextToken, this.pageSize);
      return { Accounts: p.items.map(toAccount), NextToken: p.next };
    });
    mock.on(ListAccountsForParentCommand).callsFake((input) => {
      const p = page(
        f.accounts.filter((a) => a.parent === input.ParentId),
        input.NextToken,
        this.pageSize,
      );
      return { Accounts: p.items.map(toAccount), NextToken: p.next };
    });
    mock.on(ListOrganizationalUnitsForParentCommand).callsFake((input) => {
      const children = Object.entries(f.ous)
        .filter(([, parent]) => parent === input.ParentId)
        .map(([id]) => ({ Id: id, Name: id }));
      const p = page(children, input.NextToken, this.pageSize);
      return { OrganizationalUnits: p.items, NextToken: p.next };
    });
    return client;
  }
}
