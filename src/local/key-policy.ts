// The customer key's policy, as serverless.yml writes it (test/unit/local/key-policy.test.ts holds the two
// equal), and the slice of KMS authorization local mode needs to decide who may use the key:
// - the key's own account administers it (its IAM policies decide, as with the "root" statement);
// - another account's principal needs a key policy statement that allows it AND an IAM policy of its own: a
//   service-linked role (Auto Scaling's) has no IAM policy for this key and cannot be given one, so for it only
//   a grant works. That is why infra/member.yml creates a grant for each member's Auto Scaling role;
// - a grant allows its grantee principal exactly the operations it lists.
// Conditions evaluated: aws:PrincipalOrgID, kms:ViaService, kms:GrantIsForAWSResource, kms:GranteePrincipal
// (StringLike) and kms:GrantOperations (ForAllValues:StringEquals): the ones the policy uses.

import { autoScalingRoleArn } from '#core/images/launchable.ts';

export interface KeyPolicyStatement {
  Sid: string;
  Effect: 'Allow';
  Principal: { AWS: string };
  Action: string | string[];
  Resource: '*';
  Condition?: {
    StringEquals?: Record<string, string>;
    StringLike?: Record<string, string>;
    Bool?: Record<string, string>;
    'ForAllValues:StringEquals'?: Record<string, string[]>;
  };
}
export interface KeyPolicy {
  Version: '2012-10-17';
  Statement: KeyPolicyStatement[];
}

/** EBS needs these on the key to launch from an encrypted image (and the Auto Scaling role's grant lists them). */
export const EBS_KEY_OPERATIONS = [
  'Encrypt',
  'Decrypt',
  'ReEncryptFrom',
  'ReEncryptTo',
  'GenerateDataKey',
  'GenerateDataKeyWithoutPlaintext',
  'DescribeKey',
];
export const AUTO_SCALING_GRANT_OPERATIONS = [...EBS_KEY_OPERATIONS, 'CreateGrant'];
/** What a member's subscriber asks of the key, as itself, before it moves a launch template (launch check). */
export const LAUNCH_CHECK_KEY_OPERATIONS = ['DescribeKey', 'ListGrants'];

export { autoScalingRoleArn };

/** The StemcellKey policy of serverless.yml, with its parameters filled in. */
export function stemcellKeyPolicy(input: {
  accountId: string;
  region: string;
  organizationId: string;
  partition?: string;
}): KeyPolicy {
  const partition = input.partition ?? 'aws';
  const org = { 'aws:PrincipalOrgID': input.organizationId };
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'AccountAdministersTheKeyThroughIam',
        Effect: 'Allow',
        Principal: { AWS: `arn:${partition}:iam::${input.accountId}:root` },
        Action: 'kms:*',
        Resource: '*',
      },
      {
        Sid: 'OrganizationUsesTheKeyForEbsThroughEc2',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: EBS_KEY_OPERATIONS.map((op) => `kms:${op}`),
        Resource: '*',
        Condition: { StringEquals: { ...org, 'kms:ViaService': `ec2.${input.region}.amazonaws.com` } },
      },
      {
        Sid: 'OrganizationChecksTheKeyBeforeMovingTemplates',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: LAUNCH_CHECK_KEY_OPERATIONS.map((op) => `kms:${op}`),
        Resource: '*',
        Condition: { StringEquals: org },
      },
      {
        Sid: 'OrganizationLetsAwsResourcesUseTheKey',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: 'kms:CreateGrant',
        Resource: '*',
        Condition: { StringEquals: org, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      },
      {
        Sid: 'OrganizationGrantsTheKeyToItsAutoScalingRole',
        Effect: 'Allow',
        Principal: { AWS: '*' },
        Action: 'kms:CreateGrant',
        Resource: '*',
        Condition: {
          StringEquals: org,
          StringLike: { 'kms:GranteePrincipal': autoScalingRoleArn('*', partition) },
          'ForAllValues:StringEquals': { 'kms:GrantOperations': AUTO_SCALING_GRANT_OPERATIONS },
        },
      },
    ],
  };
}

/** What a request to the key carries, for the policy's conditions. */
export interface KeyRequest {
  /** IAM principal ARN (role, user, root) or a bare account id (its root). */
  principal: string;
  /** KMS operation without the prefix: Decrypt, CreateGrant, … */
  operation: string;
  /** The principal's organization, if it belongs to one. */
  principalOrgId?: string;
  /** kms:ViaService, e.g. ec2.eu-west-1.amazonaws.com when EBS uses the key on the principal's behalf. */
  viaService?: string;
  /** For CreateGrant. */
  grant?: { granteePrincipal: string; operations: string[]; isForAwsResource: boolean };
}

export function accountOf(principal: string): string | undefined {
  if (/^\d{12}$/.test(principal)) return principal;
  return /^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):/.exec(principal)?.[1];
}

export function isServiceLinkedRole(principal: string): boolean {
  return /^arn:aws[a-z-]*:iam::\d{12}:role\/aws-service-role\//.test(principal);
}

/** The key policy statement that allows the request, or undefined. */
export function allowingStatement(policy: KeyPolicy, request: KeyRequest): KeyPolicyStatement | undefined {
  const account = accountOf(request.principal);
  return policy.Statement.find((s) => {
    if (s.Effect !== 'Allow') return false;
    const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
    if (!actions.some((a) => a === 'kms:*' || a === `kms:${request.operation}`)) return false;
    const who = s.Principal.AWS;
    if (who !== '*' && accountOf(who) !== account) return false;
    return conditionsHold(s.Condition, request);
  });
}

function conditionsHold(condition: KeyPolicyStatement['Condition'], request: KeyRequest): boolean {
  if (!condition) return true;
  const value = (key: string): string | undefined => {
    switch (key) {
      case 'aws:PrincipalOrgID':
        return request.principalOrgId;
      case 'kms:ViaService':
        return request.viaService;
      case 'kms:GranteePrincipal':
        return request.grant?.granteePrincipal;
      case 'kms:GrantIsForAWSResource':
        return request.grant ? String(request.grant.isForAwsResource) : undefined;
      default:
        return undefined;
    }
  };
  for (const [key, want] of Object.entries(condition.StringEquals ?? {}))
    if (value(key) !== want) return false;
  for (const [key, want] of Object.entries(condition.Bool ?? {})) if (value(key) !== want) return false;
  for (const [key, pattern] of Object.entries(condition.StringLike ?? {})) {
    const got = value(key);
    if (got === undefined || !globMatch(pattern, got)) return false;
  }
  for (const [key, allowed] of Object.entries(condition['ForAllValues:StringEquals'] ?? {})) {
    if (key !== 'kms:GrantOperations' || !request.grant) return false;
    if (!request.grant.operations.every((op) => allowed.includes(op))) return false;
  }
  return true;
}

/** IAM StringLike: `*` any run of characters, `?` one character. */
function globMatch(pattern: string, value: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(value);
}
