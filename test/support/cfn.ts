// CloudFormation templates for tests: YAML with the short intrinsic tags (!Ref, !Sub, !GetAtt …) parsed into
// their long JSON form, and the questions the template tests ask of any template.
import { readFileSync } from 'node:fs';
import { type CollectionTag, parse, type Scalar, type ScalarTag, type YAMLMap, type YAMLSeq } from 'yaml';

export type Template = { Resources: Record<string, Resource>; [k: string]: unknown };
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties are free-form JSON that tests walk
type Json = any;
export type Resource = {
  Type: string;
  Properties?: Record<string, Json>;
  Condition?: string;
  DependsOn?: unknown;
};

const FUNCTIONS = [
  'Base64',
  'Cidr',
  'FindInMap',
  'GetAZs',
  'ImportValue',
  'Join',
  'Select',
  'Split',
  'Sub',
  'Transform',
  'And',
  'Equals',
  'If',
  'Not',
  'Or',
];

function intrinsicTags(): (ScalarTag | CollectionTag)[] {
  const tags: (ScalarTag | CollectionTag)[] = [];
  const add = (name: string, wrap: (v: unknown) => unknown) => {
    tags.push({
      tag: `!${name}`,
      resolve: (v: string | Scalar) => wrap(typeof v === 'object' && v && 'value' in v ? v.value : v),
    } as ScalarTag);
    tags.push({
      tag: `!${name}`,
      collection: 'seq',
      resolve: (seq: YAMLSeq) => wrap(seq.toJSON()),
    } as CollectionTag);
    tags.push({
      tag: `!${name}`,
      collection: 'map',
      resolve: (map: YAMLMap) => wrap(map.toJSON()),
    } as CollectionTag);
  };
  add('Ref', (v) => ({ Ref: v }));
  add('Condition', (v) => ({ Condition: v }));
  add('GetAtt', (v) => ({ 'Fn::GetAtt': typeof v === 'string' ? v.split('.') : v }));
  for (const fn of FUNCTIONS) add(fn, (v) => ({ [`Fn::${fn}`]: v }));
  return tags;
}

export function parseCfnYaml(text: string): Template {
  return parse(text, { customTags: intrinsicTags() }) as Template;
}

export function loadCfnYaml(path: string): Template {
  return parseCfnYaml(readFileSync(path, 'utf8'));
}

export function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  Resource?: unknown;
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

export const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** Every inline-policy statement of every IAM role, with the role's logical id. */
export function roleStatements(template: Template): { role: string; statement: Statement }[] {
  const out: { role: string; statement: Statement }[] = [];
  for (const [role, r] of resourcesOfType(template, 'AWS::IAM::Role')) {
    for (const policy of r.Properties?.Policies ?? []) {
      for (const statement of asList<Statement>(policy.PolicyDocument?.Statement))
        out.push({ role, statement });
    }
  }
  return out;
}

/** Read-only API calls, by AWS naming convention. */
export const isReadOnly = (action: string): boolean =>
  /^[a-z0-9-]+:(Describe|List|Get)[A-Za-z]*$/.test(action);

/** Services with no resource-level permissions for these write calls: "*" is the only resource they accept. */
/** Writes IAM knows no resource for (PutMetricData is scoped by its cloudwatch:namespace condition instead). */
export const STAR_ONLY_WRITES = new Set([
  'xray:PutTraceSegments',
  'xray:PutTelemetryRecords',
  'cloudwatch:PutMetricData',
]);

export function isStarResource(resource: unknown): boolean {
  return asList(resource).some((r) => r === '*');
}

/** The logical ids a value refers to through Ref / Fn::GetAtt (deep). */
export function referencedIds(value: unknown): Set<string> {
  const ids = new Set<string>();
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (typeof o.Ref === 'string') ids.add(o.Ref);
      const att = o['Fn::GetAtt'];
      if (Array.isArray(att) && typeof att[0] === 'string') ids.add(att[0]);
      Object.values(o).forEach(walk);
    }
  };
  walk(value);
  return ids;
}

/** Least privilege: enumerated actions only, and "*" resources only for read-only calls (or star-only writes). */
export function leastPrivilegeViolations(template: Template): string[] {
  const violations: string[] = [];
  for (const { role, statement } of roleStatements(template)) {
    if (statement.Effect !== 'Allow') continue;
    for (const action of asList(statement.Action)) {
      if (action.includes('*')) violations.push(`${role}/${statement.Sid}: wildcard action ${action}`);
      else if (isStarResource(statement.Resource) && !isReadOnly(action) && !STAR_ONLY_WRITES.has(action)) {
        violations.push(`${role}/${statement.Sid}: write action ${action} on "*"`);
      }
    }
  }
  return violations;
}

/**
 * Dead letters: every rule target has a DLQ, every redrive allows at least 5 receives, and every queue used
 * as a DLQ (redrive target, rule-target DLQ, failed-invocation destination) has an alarm on it.
 */
export function deadLetterViolations(template: Template): string[] {
  const violations: string[] = [];
  const dlqs = new Set<string>();
  for (const [id, rule] of resourcesOfType(template, 'AWS::Events::Rule')) {
    for (const target of rule.Properties?.Targets ?? []) {
      if (!target.DeadLetterConfig?.Arn)
        violations.push(`rule ${id}: target ${target.Id} has no dead-letter queue`);
      else for (const q of referencedIds(target.DeadLetterConfig.Arn)) dlqs.add(q);
    }
  }
  for (const [id, queue] of resourcesOfType(template, 'AWS::SQS::Queue')) {
    const redrive = queue.Properties?.RedrivePolicy;
    if (!redrive) continue;
    if (!(Number(redrive.maxReceiveCount) >= 5))
      violations.push(`queue ${id}: maxReceiveCount ${redrive.maxReceiveCount} < 5`);
    for (const q of referencedIds(redrive.deadLetterTargetArn)) dlqs.add(q);
  }
  for (const [, config] of resourcesOfType(template, 'AWS::Lambda::EventInvokeConfig')) {
    for (const q of referencedIds(config.Properties?.DestinationConfig?.OnFailure?.Destination)) dlqs.add(q);
  }
  const alarmed = new Set<string>();
  for (const [, alarm] of resourcesOfType(template, 'AWS::CloudWatch::Alarm')) {
    for (const q of referencedIds(alarm.Properties?.Dimensions)) alarmed.add(q);
  }
  for (const q of dlqs) {
    if (template.Resources[q]?.Type !== 'AWS::SQS::Queue')
      violations.push(`dead-letter target ${q} is not a queue of this template`);
    else if (!alarmed.has(q)) violations.push(`dead-letter queue ${q} has no alarm`);
  }
  return violations;
}

/** Statements letting "*" in must be scoped to the Organization. */
export function openPrincipalViolations(statements: Statement[], where: string): string[] {
  const violations: string[] = [];
  for (const s of statements) {
    if (s.Effect !== 'Allow') continue;
    const principal = s.Principal as { AWS?: unknown } | string | undefined;
    const open = principal === '*' || (typeof principal === 'object' && asList(principal?.AWS).includes('*'));
    if (open && s.Condition?.StringEquals?.['aws:PrincipalOrgID'] === undefined) {
      violations.push(`${where}/${s.Sid ?? '?'}: open principal without aws:PrincipalOrgID`);
    }
  }
  return violations;
}
