// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation !Sub strings are written with ${…}
// The local key policy is serverless.yml's, and KMS's rules on it: an Organization member can use the key through
// EC2, its Auto Scaling role only through the grant infra/member.yml creates, and a stranger not at all.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AUTO_SCALING_GRANT_OPERATIONS, autoScalingRoleArn, stemcellKeyPolicy } from '#local/key-policy.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { loadCfnYaml } from '#test/support/cfn.ts';

const HOME = '111111111111';
const MEMBER = '222222222222';
const STRANGER = '999999999999';
const ORG = 'o-abcdefghij';
const REGION = 'eu-west-1';
const SERVERLESS = new URL('../../../serverless.yml', import.meta.url).pathname;
const MEMBER_YML = new URL('../../../infra/member.yml', import.meta.url).pathname;

/** Fills in !Sub and serverless ${param:…} the way a deployment would. */
function resolve(value: unknown, vars: Record<string, string>): unknown {
  const fill = (s: string) => s.replace(/\$\{([^}]+)\}/g, (_, name: string) => vars[name] ?? `\${${name}}`);
  if (typeof value === 'string') return fill(value);
  if (Array.isArray(value)) return value.map((v) => resolve(v, vars));
  if (value && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]?.[0] === 'Fn::Sub') return fill(String(entries[0][1]));
    return Object.fromEntries(entries.map(([k, v]) => [k, resolve(v, vars)]));
  }
  return value;
}

async function keyring(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'stemcell-key-policy-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const keys = new LocalKeyService(dir, {
    accountId: HOME,
    region: REGION,
    organizationOf: (account) => (account === STRANGER ? undefined : ORG),
  });
  const { arn } = keys.createKey({
    alias: 'alias/stemcell',
    policy: stemcellKeyPolicy({ accountId: HOME, region: REGION, organizationId: ORG }),
  });
  return { keys, arn };
}

describe('Function: stemcellKeyPolicy()', () => {
  it('is the key policy serverless.yml deploys', () => {
    // prepare
    const template = loadCfnYaml(SERVERLESS) as unknown as {
      resources: { Resources: { StemcellKey: { Properties: { KeyPolicy: unknown } } } };
    };
    const vars = {
      'AWS::Partition': 'aws',
      'AWS::AccountId': HOME,
      'AWS::Region': REGION,
      'param:organizationId': ORG,
    };
    // act
    const deployed = resolve(template.resources.Resources.StemcellKey.Properties.KeyPolicy, vars);
    // assess
    assert.deepEqual(deployed, stemcellKeyPolicy({ accountId: HOME, region: REGION, organizationId: ORG }));
  });

  it("grants the Auto Scaling role exactly the operations infra/member.yml's custom resource asks for", () => {
    const grant = loadCfnYaml(MEMBER_YML).Resources.AutoScalingKeyGrant?.Properties;
    assert.deepEqual(grant?.Operations, AUTO_SCALING_GRANT_OPERATIONS);
  });
});

describe('Class: LocalKeyService with the stemcell key policy', () => {
  it('lets a member use the key through EC2, and a stranger not at all', async (t) => {
    const { keys, arn } = await keyring(t);
    const viaEc2 = { operation: 'Decrypt', viaService: `ec2.${REGION}.amazonaws.com` };
    assert.equal(
      keys.explainDenial(arn, { principal: `arn:aws:iam::${MEMBER}:role/deployer`, ...viaEc2 }),
      undefined,
    );
    assert.match(
      keys.explainDenial(arn, { principal: `arn:aws:iam::${MEMBER}:role/deployer`, operation: 'Decrypt' }) ??
        '',
      /no key policy statement or grant allows it/,
      'not outside EC2',
    );
    assert.match(
      keys.explainDenial(arn, { principal: `arn:aws:iam::${STRANGER}:root`, ...viaEc2 }) ?? '',
      /in no organization/,
    );
  });

  it("lets the member's Auto Scaling role decrypt only once the member created its grant", async (t) => {
    const { keys, arn } = await keyring(t);
    const role = autoScalingRoleArn(MEMBER);
    const viaEc2 = { principal: role, operation: 'Decrypt', viaService: `ec2.${REGION}.amazonaws.com` };
    assert.match(keys.explainDenial(arn, viaEc2) ?? '', /service-linked role .* needs a grant/);
    // infra/member.yml's custom resource, running in the member account
    const caller = `arn:aws:sts::${MEMBER}:assumed-role/stemcell-key-grant/fn`;
    await keys.createGrantAs(caller, arn, role, AUTO_SCALING_GRANT_OPERATIONS);
    assert.equal(keys.explainDenial(arn, viaEc2), undefined);
    assert.equal(keys.revokeGrants(arn, role), 1);
    assert.ok(keys.explainDenial(arn, viaEc2), 'denied again without the grant');
  });

  it('refuses grants the policy does not allow: to another principal, wider operations, or from a stranger', async (t) => {
    const { keys, arn } = await keyring(t);
    const caller = `arn:aws:sts::${MEMBER}:assumed-role/stemcell-key-grant/fn`;
    const denied = { name: 'AccessDeniedException' };
    await assert.rejects(
      keys.createGrantAs(caller, arn, `arn:aws:iam::${MEMBER}:role/anyone`, ['Decrypt']),
      denied,
    );
    await assert.rejects(
      keys.createGrantAs(caller, arn, autoScalingRoleArn(MEMBER), [
        ...AUTO_SCALING_GRANT_OPERATIONS,
        'RetireGrant',
      ]),
      denied,
    );
    await assert.rejects(
      keys.createGrantAs(`arn:aws:iam::${STRANGER}:root`, arn, autoScalingRoleArn(STRANGER), ['Decrypt']),
      denied,
    );
  });
});
