// Behavioural contract of OrganizationDirectory (Organizations). The factory builds the same organization
// for every adapter: 2 OUs, 3 accounts in one, 1 in the other. A service that picks its own ids (AWS gives every
// new account, OU and organization one) says which it gave each fixture id.
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

export type OrganizationFactory = (fixture: typeof ORG_FIXTURE) => Promise<{
  org: OrganizationDirectory;
  /** Fixture id → the id the service gave (organization, management account, OUs, accounts); absent: the same. */
  ids?: Record<string, string>;
  cleanup?: () => Promise<void>;
}>;

export function organizationContract(name: string, factory: OrganizationFactory): void {
  describe(`Contract: OrganizationDirectory (${name})`, () => {
    it('describes the organization and lists its accounts', async () => {
      const { org, ids, cleanup } = await factory(ORG_FIXTURE);
      const id = (fixtureId: string) => ids?.[fixtureId] ?? fixtureId;
      try {
        // act
        const described = await org.describe();
        const accounts = await org.listAccounts();
        // assess
        assert.equal(described.id, id(ORG_FIXTURE.organizationId));
        assert.equal(described.managementAccountId, id(ORG_FIXTURE.managementAccountId));
        assert.equal(
          described.arn,
          `arn:aws:organizations::${id(ORG_FIXTURE.managementAccountId)}:organization/${id(ORG_FIXTURE.organizationId)}`,
        );
        for (const a of ORG_FIXTURE.accounts) {
          assert.ok(
            accounts.some((x) => x.id === id(a.id) && x.status === 'ACTIVE'),
            `account ${a.id} listed`,
          );
        }
      } finally {
        await cleanup?.();
      }
    });

    it('lists the accounts of one OU and spells its ARN in full', async () => {
      const { org, ids, cleanup } = await factory(ORG_FIXTURE);
      const id = (fixtureId: string) => ids?.[fixtureId] ?? fixtureId;
      try {
        // act
        const prod = await org.listAccountsInOu(id('ou-ab12-11111111'));
        const arn = await org.ouArn(id('ou-ab12-22222222'));
        // assess
        assert.deepEqual(
          prod.map((a) => a.id).sort(),
          ['100000000001', '100000000002', '100000000003'].map(id).sort(),
        );
        assert.equal(
          arn,
          `arn:aws:organizations::${id(ORG_FIXTURE.managementAccountId)}:ou/${id(ORG_FIXTURE.organizationId)}/${id('ou-ab12-22222222')}`,
        );
      } finally {
        await cleanup?.();
      }
    });
  });
}
