import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DescribeOrganizationCommand,
  ListAccountsCommand,
  ListAccountsForParentCommand,
  ListOrganizationalUnitsForParentCommand,
  OrganizationsClient,
} from '@aws-sdk/client-organizations';
import { mockClient } from 'aws-sdk-client-mock';
import { AwsOrganizationDirectory } from '#aws/organization.ts';

const client = () =>
  new OrganizationsClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });

describe('Class: AwsOrganizationDirectory', () => {
  it('pages through ListAccounts', async () => {
    const c = client();
    const mock = mockClient(c);
    mock
      .on(ListAccountsCommand)
      .resolvesOnce({ Accounts: [{ Id: '1', Name: 'a', Status: 'ACTIVE' }], NextToken: 'n' })
      .resolvesOnce({ Accounts: [{ Id: '2', Name: 'b', Status: 'SUSPENDED' }] });
    const accounts = await new AwsOrganizationDirectory({ client: c }).listAccounts();
    assert.deepEqual(accounts, [
      { id: '1', name: 'a', status: 'ACTIVE' },
      { id: '2', name: 'b', status: 'SUSPENDED' },
    ]);
    assert.equal(mock.commandCalls(ListAccountsCommand)[1]?.args[0].input.NextToken, 'n');
  });

  it('walks nested OUs for the accounts under an OU', async () => {
    // prepare
    const c = client();
    const mock = mockClient(c);
    mock
      .on(ListAccountsForParentCommand, { ParentId: 'ou-top' })
      .resolves({ Accounts: [{ Id: '1', Name: 'a' }] });
    mock
      .on(ListAccountsForParentCommand, { ParentId: 'ou-child' })
      .resolves({ Accounts: [{ Id: '2', Name: 'b' }] });
    mock
      .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-top' })
      .resolves({ OrganizationalUnits: [{ Id: 'ou-child' }] });
    mock
      .on(ListOrganizationalUnitsForParentCommand, { ParentId: 'ou-child' })
      .resolves({ OrganizationalUnits: [] });
    // act
    const accounts = await new AwsOrganizationDirectory({ client: c }).listAccountsInOu('ou-top');
    // assess
    assert.deepEqual(
      accounts.map((a) => a.id),
      ['1', '2'],
    );
  });

  it('spells OU and root ARNs in full, describing the organization once', async () => {
    const c = client();
    const mock = mockClient(c);
    mock.on(DescribeOrganizationCommand).resolves({
      Organization: {
        Id: 'o-abc',
        Arn: 'arn:aws:organizations::999:organization/o-abc',
        MasterAccountId: '999',
      },
    });
    const org = new AwsOrganizationDirectory({ client: c });
    assert.equal(await org.ouArn('ou-ab12-3'), 'arn:aws:organizations::999:ou/o-abc/ou-ab12-3');
    assert.equal(await org.ouArn('r-ab12'), 'arn:aws:organizations::999:root/o-abc/r-ab12');
    assert.equal(mock.commandCalls(DescribeOrganizationCommand).length, 1);
  });
});
