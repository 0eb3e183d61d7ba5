// Behavioural contract of OrganizationDirectory (Organizations). The factory builds the same organization
// for every adapter: 2 OUs, 3 accounts in one, 1 in the other.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OrganizationDirectory } from '#ports';

export const ORG_FIXTURE = {
  organizationId: 'o-a1b2c3d4e5',
  managementAccountId: '999999999999',
  ous: [
    { id: 'ou-ab12-11111111', name: 'prod' },
    { id: 'ou-ab12-22222222', name: 'dev' },
  ],
  accounts: [
    { id: '100000000001', name: 'web-prod', ou: 'ou-ab12-11111111' },
    { id: '100000000002', name: 'api-prod', ou: 'ou-ab12-11111111' },
    { id: '100000000003', name: 'db-prod', ou: 'ou-ab12-11111111' },
    { id: '200000000001', name: 'sandbox', ou: 'ou-ab12-22222222' },
  ],
} as const;

export type OrganizationFactory = (
  fixture: typeof ORG_FIXTURE,
) => Promise<{ org: OrganizationDirectory; cleanup?: () => Promise<void> }>;

export function organizationContract(name: string, factory: OrganizationFactory): void {
  describe(`Contract: OrganizationDirectory (${name})`, () => {
    it('describes the organization and lists its accounts', async () => {
      const { org, cleanup } = await factory(ORG_FIXTURE);
      try {
        // act
        const described = await org.describe();
        const accounts = await org.listAccounts();
        // assess
        assert.equal(described.id, ORG_FIXTURE.organizationId);
        assert.equal(described.managementAccountId, ORG_FIXTURE.managementAccountId);
        assert.match(described.arn, /^arn:aws:organizations::999999999999:organization\/o-a1b2c3d4e5$/);
        for (const a of ORG_FIXTURE.accounts) {
          assert.ok(
            accounts.some((x) => x.id === a.id && x.status === 'ACTIVE'),
            `account ${a.id} listed`,
          );
        }
      } finally {
        await cleanup?.();
      }
    });

    it('lists the accounts of one OU and spells its ARN in full', async () => {
      const { org, cleanup } = await factory(ORG_FIXTURE);
      try {
        // act
        const prod = await org.listAccountsInOu('ou-ab12-11111111');
        const arn = await org.ouArn('ou-ab12-22222222');
        // assess
        assert.deepEqual(prod.map((a) => a.id).sort(), ['100000000001', '100000000002', '100000000003']);
        assert.equal(arn, 'arn:aws:organizations::999999999999:ou/o-a1b2c3d4e5/ou-ab12-22222222');
      } finally {
        await cleanup?.();
      }
    });
  });
}
