import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { LocalConfig } from '#config/schema.ts';
import { LocalOrganizationDirectory } from '#local/organization.ts';

const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), 'stemcell-org-'));
  roots.push(r);
  return r;
}

const PROD = 'ou-ab12-prod0001';
const DEV = 'ou-ab12-dev00001';
const config: LocalConfig = {
  organizationId: 'o-a1b2c3d4e5',
  managementAccountId: '100000000000',
  ous: [
    { id: PROD, name: 'prod' },
    { id: DEV, name: 'dev' },
  ],
  accounts: [
    { id: '200000000001', name: 'web-prod', ou: PROD },
    { id: '200000000002', name: 'db-prod', ou: PROD },
    { id: '300000000001', name: 'web-dev', ou: DEV },
  ],
  launchTemplates: [],
};
const ids = (accounts: { id: string }[]) => accounts.map((a) => a.id).sort();

describe('Class: LocalOrganizationDirectory', () => {
  it('lists the configured accounts and the management account, as ListAccounts does', async () => {
    const org = new LocalOrganizationDirectory(tempRoot(), config);
    assert.deepEqual(ids(await org.listAccounts()), [
      '100000000000',
      '200000000001',
      '200000000002',
      '300000000001',
    ]);
    assert.ok((await org.listAccounts()).every((a) => a.status === 'ACTIVE'));
  });

  it('lists accounts per OU, and all of them for the root', async () => {
    const org = new LocalOrganizationDirectory(tempRoot(), config);
    assert.deepEqual(ids(await org.listAccountsInOu(PROD)), ['200000000001', '200000000002']);
    assert.deepEqual(ids(await org.listAccountsInOu(DEV)), ['300000000001']);
    assert.equal((await org.listAccountsInOu(org.rootId)).length, 4);
    await assert.rejects(org.listAccountsInOu('ou-ab12-nothere1'), { name: 'ParentNotFoundException' });
  });

  it('describes the organization and OU ARNs as AWS spells them', async () => {
    const org = new LocalOrganizationDirectory(tempRoot(), config);
    assert.deepEqual(await org.describe(), {
      id: 'o-a1b2c3d4e5',
      arn: 'arn:aws:organizations::100000000000:organization/o-a1b2c3d4e5',
      managementAccountId: '100000000000',
    });
    assert.equal(await org.ouArn(PROD), `arn:aws:organizations::100000000000:ou/o-a1b2c3d4e5/${PROD}`);
  });

  it('adds and removes accounts, and a new instance over the same root sees the change', async () => {
    // prepare
    const root = tempRoot();
    const org = new LocalOrganizationDirectory(root, config);
    // act
    org.addAccount({ id: '300000000002', name: 'api-dev', ou: DEV });
    org.removeAccount('200000000002');
    const again = new LocalOrganizationDirectory(root, config);
    // assess
    assert.deepEqual(ids(await again.listAccountsInOu(DEV)), ['300000000001', '300000000002']);
    assert.deepEqual(ids(await again.listAccountsInOu(PROD)), ['200000000001']);
    again.addAccount({ id: '200000000002', name: 'db-prod', ou: PROD });
    assert.deepEqual(ids(await again.listAccountsInOu(PROD)), ['200000000001', '200000000002']);
  });

  it('refuses unknown OUs, unknown accounts and removing the management account', () => {
    const org = new LocalOrganizationDirectory(tempRoot(), config);
    assert.throws(
      () => org.addAccount({ id: '400000000000', name: 'x', ou: 'ou-ab12-nothere1' }),
      /ou-ab12-nothere1/,
    );
    assert.throws(() => org.removeAccount('999999999999'), { name: 'AccountNotFoundException' });
    assert.throws(() => org.removeAccount('100000000000'), { name: 'ConstraintViolationException' });
  });
});
