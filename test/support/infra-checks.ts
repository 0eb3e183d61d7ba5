// Checks the template tests share: alarm topics CloudWatch can actually publish to, and environment
// variables some code reads.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { referencedIds, resourcesOfType, type Template } from './cfn.ts';
import { ResolvedTemplate } from './cfn-resolve.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

/**
 * Every SNS topic an alarm publishes to is encrypted with a customer key of the same template whose policy
 * lets cloudwatch.amazonaws.com GenerateDataKey and Decrypt (evaluated with the IAM policy simulator):
 * CloudWatch cannot publish to a topic under the AWS-managed alias/aws/sns key.
 */
export async function alarmTopicViolations(template: Template, where: string): Promise<string[]> {
  const t = new ResolvedTemplate(template, {
    account: '111111111111',
    region: 'eu-west-1',
    stackName: 'stemcell',
    parameters: new Proxy({}, { get: (_, k) => `param-${String(k)}`, has: () => true }),
  });
  const violations: string[] = [];
  const topics = new Set<string>();
  for (const [, alarm] of resourcesOfType(template, 'AWS::CloudWatch::Alarm'))
    for (const id of referencedIds(alarm.Properties?.AlarmActions)) {
      // An alarm may act on a scaling policy (ScaleFromZeroAlarm) rather than notify a topic.
      if (template.Resources[id]?.Type === 'AWS::SNS::Topic') topics.add(id);
    }
  if (topics.size === 0) violations.push(`${where}: no alarm publishes to a topic`);
  for (const topic of topics) {
    const keyRef = template.Resources[topic]?.Properties?.KmsMasterKeyId;
    const keyId = keyRef?.Ref;
    if (!keyId || template.Resources[keyId]?.Type !== 'AWS::KMS::Key') {
      violations.push(
        `${where} ${topic}: encrypted with ${JSON.stringify(keyRef)}, not a key of this template`,
      );
      continue;
    }
    const policy = t.value(template.Resources[keyId]?.Properties?.KeyPolicy);
    for (const action of ['kms:GenerateDataKey', 'kms:Decrypt']) {
      const result = await runSimulation(
        {
          request: {
            principal: 'cloudwatch.amazonaws.com',
            action,
            resource: { resource: t.attribute(keyId, 'Arn'), accountId: '111111111111' },
            contextVariables: {},
          },
          identityPolicies: [],
          serviceControlPolicies: [],
          resourceControlPolicies: [],
          resourcePolicy: policy,
        },
        {},
      );
      const overall = (result as { overallResult?: string }).overallResult;
      if (overall !== 'Allowed')
        violations.push(`${where} ${keyId}: CloudWatch may not ${action} (${overall})`);
    }
  }
  return violations;
}

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(ROOT, dir), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

/** STEMCELL_* variables that no file under src/ or functions/ names (the framework's own are not ours). */
export async function unreadEnvironment(names: string[]): Promise<string[]> {
  const text = (
    await Promise.all(
      [...(await sources('src')), ...(await sources('functions'))].map((f) => readFile(f, 'utf8')),
    )
  ).join('\n');
  return names.filter(
    (n) => n.startsWith('STEMCELL_') && !new RegExp(`\\b${n}\\b`).test(text.replace(/^\s*\/\/.*$/gm, '')),
  );
}
