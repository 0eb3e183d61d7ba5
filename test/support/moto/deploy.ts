// The three deployment units, deployed on moto's CloudFormation as README "Deploying to AWS" deploys them:
// the packaged serverless template as `serverless deploy` does (its core stack with the deployment bucket, the
// artifacts uploaded there, then the full template), and infra/region.yml / infra/member.yml as
// `aws cloudformation deploy` and a StackSet instance do, with their parameters. Nothing is created by hand
// that a template declares.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import {
  CloudFormationClient,
  CreateStackCommand,
  DescribeStacksCommand,
  paginateListStackResources,
  UpdateStackCommand,
} from '@aws-sdk/client-cloudformation';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { MotoAccounts } from './accounts.ts';

export interface DeployedStack {
  name: string;
  account: string;
  region: string;
  outputs: Record<string, string>;
  /** Logical id → physical id. */
  resources: Record<string, string>;
}

const CAPABILITIES = ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] as const;

/** `serverless deploy` of a package built by `serverless package` (packageDir). */
export async function deployServerless(
  accounts: MotoAccounts,
  input: { account: string; region: string; stackName: string; packageDir: string },
): Promise<DeployedStack> {
  const cf = accounts.client(CloudFormationClient, input.account, input.region);
  const core = await readFile(join(input.packageDir, 'cloudformation-template-create-stack.json'), 'utf8');
  await cf.send(new CreateStackCommand({ StackName: input.stackName, TemplateBody: core }));
  await settled(cf, input.stackName, 'CREATE_COMPLETE');
  const bucket = (await stackResources(cf, input.stackName)).ServerlessDeploymentBucket;
  if (!bucket) throw new Error(`${input.stackName}: the core stack made no ServerlessDeploymentBucket`);
  const full = await readFile(join(input.packageDir, 'cloudformation-template-update-stack.json'), 'utf8');
  const s3 = accounts.client(S3Client, input.account, input.region);
  const template = JSON.parse(full) as {
    Resources: Record<string, { Type: string; Properties?: { Code?: { S3Key?: string } } }>;
  };
  const keys = new Set<string>();
  for (const r of Object.values(template.Resources))
    if (r.Type === 'AWS::Lambda::Function' && r.Properties?.Code?.S3Key) keys.add(r.Properties.Code.S3Key);
  for (const key of keys) {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: await readFile(join(input.packageDir, basename(key))),
      }),
    );
  }
  await cf.send(
    new UpdateStackCommand({
      StackName: input.stackName,
      TemplateBody: full,
      Capabilities: [...CAPABILITIES],
    }),
  );
  return describe(cf, input, 'UPDATE_COMPLETE');
}

/** `aws cloudformation deploy` of a template file with its parameters (a StackSet instance does the same). */
export async function deployTemplate(
  accounts: MotoAccounts,
  input: {
    account: string;
    region: string;
    stackName: string;
    templatePath: string;
    parameters: Record<string, string>;
  },
): Promise<DeployedStack> {
  const cf = accounts.client(CloudFormationClient, input.account, input.region);
  await cf.send(
    new CreateStackCommand({
      StackName: input.stackName,
      TemplateBody: await readFile(input.templatePath, 'utf8'),
      Parameters: Object.entries(input.parameters).map(([ParameterKey, ParameterValue]) => ({
        ParameterKey,
        ParameterValue,
      })),
      Capabilities: [...CAPABILITIES],
    }),
  );
  return describe(cf, input, 'CREATE_COMPLETE');
}

async function describe(
  cf: CloudFormationClient,
  input: { account: string; region: string; stackName: string },
  wanted: string,
): Promise<DeployedStack> {
  const stack = await settled(cf, input.stackName, wanted);
  return {
    name: input.stackName,
    account: input.account,
    region: input.region,
    outputs: Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? ''])),
    resources: await stackResources(cf, input.stackName),
  };
}

/** Waits out *_IN_PROGRESS (custom resources answer asynchronously); any end but `wanted` is an error. */
async function settled(cf: CloudFormationClient, stackName: string, wanted: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stack = (await cf.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
    const status = stack?.StackStatus ?? 'MISSING';
    if (status === wanted && stack) return stack;
    if (!status.endsWith('_IN_PROGRESS'))
      throw new Error(`stack ${stackName} is ${status}: ${stack?.StackStatusReason ?? 'no reason given'}`);
    if (Date.now() > deadline) throw new Error(`stack ${stackName} still ${status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function stackResources(cf: CloudFormationClient, stackName: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const page of paginateListStackResources({ client: cf }, { StackName: stackName }))
    for (const r of page.StackResourceSummaries ?? [])
      if (r.LogicalResourceId) out[r.LogicalResourceId] = r.PhysicalResourceId ?? '';
  return out;
}
