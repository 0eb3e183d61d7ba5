// biome-ignore-all lint/suspicious/noTemplateCurlyInString: CloudFormation !Sub strings are written with ${…}
// CloudFormation templates resolved into the concrete policies AWS would hold once deployed: Ref, Fn::Sub,
// Fn::GetAtt and Fn::Join evaluated against one account, region and set of parameters, with the physical names
// CloudFormation would give each resource. The role-vs-code test evaluates these policies with a simulator.
import type { Resource, Template } from './cfn.ts';

export interface Deployment {
  account: string;
  region: string;
  stackName: string;
  parameters: Record<string, string>;
  /** Physical ids of resources another deployment unit creates (e.g. the central bus's Ref). */
  overrides?: Record<string, { ref?: string; arn?: string }>;
}

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation values are free-form JSON
type Json = any;

const lower = (s: string) => s.toLowerCase().replace(/[^a-z0-9-]/g, '');

/** The physical name CloudFormation derives for a resource without an explicit name. */
function generatedName(d: Deployment, id: string): string {
  return `${d.stackName}-${id}-ABC123`;
}

export class ResolvedTemplate {
  readonly template: Template;
  readonly deployment: Deployment;

  constructor(template: Template, deployment: Deployment) {
    this.template = template;
    this.deployment = deployment;
  }

  resource(id: string): Resource {
    const r = this.template.Resources[id];
    if (!r) throw new Error(`template has no resource ${id}`);
    return r;
  }

  /** What Ref returns for a logical id (a parameter, a pseudo parameter or a resource). */
  ref(id: string): string {
    const d = this.deployment;
    const pseudo: Record<string, string> = {
      'AWS::AccountId': d.account,
      'AWS::Region': d.region,
      'AWS::Partition': 'aws',
      'AWS::StackName': d.stackName,
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::NoValue': '',
    };
    if (id in pseudo) return pseudo[id] as string;
    if (id in d.parameters) return d.parameters[id] as string;
    // A parameter the deployment does not set takes its Default, as CloudFormation does.
    const parameter = (this.template as { Parameters?: Record<string, { Default?: unknown }> }).Parameters?.[
      id
    ];
    if (parameter && parameter.Default !== undefined) return String(parameter.Default);
    const override = d.overrides?.[id]?.ref;
    if (override) return override;
    const r = this.template.Resources[id];
    if (!r) throw new Error(`Ref to unknown ${id}`);
    const p = r.Properties ?? {};
    const name = (key: string, fallback = generatedName(d, id)) =>
      p[key] !== undefined ? String(this.value(p[key])) : fallback;
    switch (r.Type) {
      case 'AWS::S3::Bucket':
        return name('BucketName', lower(generatedName(d, id)));
      case 'AWS::SQS::Queue':
        return `https://sqs.${d.region}.amazonaws.com/${d.account}/${this.queueName(id)}`;
      case 'AWS::KMS::Key':
        return p.MultiRegion
          ? 'mrk-0123456789abcdef0123456789abcdef'
          : '1234abcd-12ab-34cd-56ef-1234567890ab';
      case 'AWS::IAM::Role':
        return name('RoleName');
      case 'AWS::Events::EventBus':
        return name('Name');
      case 'AWS::Logs::LogGroup':
        return name('LogGroupName');
      case 'AWS::Lambda::Function':
        return name('FunctionName');
      case 'AWS::DynamoDB::Table':
        return name('TableName');
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${d.region}:${d.account}:${generatedName(d, id)}`;
      default:
        return generatedName(d, id);
    }
  }

  queueName(id: string): string {
    const p = this.resource(id).Properties ?? {};
    return p.QueueName !== undefined
      ? String(this.value(p.QueueName))
      : `${generatedName(this.deployment, id)}${p.FifoQueue ? '.fifo' : ''}`;
  }

  /** Fn::GetAtt for the attributes policies use. */
  attribute(id: string, attribute: string): string {
    const d = this.deployment;
    const override = d.overrides?.[id]?.arn;
    if (attribute === 'Arn' && override) return override;
    const r = this.resource(id);
    const ref = this.ref(id);
    const arn: Record<string, () => string> = {
      'AWS::S3::Bucket': () => `arn:aws:s3:::${ref}`,
      'AWS::SQS::Queue': () => `arn:aws:sqs:${d.region}:${d.account}:${this.queueName(id)}`,
      'AWS::KMS::Key': () => `arn:aws:kms:${d.region}:${d.account}:key/${ref}`,
      'AWS::IAM::Role': () => `arn:aws:iam::${d.account}:role/${ref}`,
      'AWS::Events::EventBus': () => `arn:aws:events:${d.region}:${d.account}:event-bus/${ref}`,
      'AWS::Events::Rule': () => `arn:aws:events:${d.region}:${d.account}:rule/${ref}`,
      'AWS::Logs::LogGroup': () => `arn:aws:logs:${d.region}:${d.account}:log-group:${ref}:*`,
      'AWS::Lambda::Function': () => `arn:aws:lambda:${d.region}:${d.account}:function:${ref}`,
      'AWS::DynamoDB::Table': () => `arn:aws:dynamodb:${d.region}:${d.account}:table/${ref}`,
      'AWS::SNS::Topic': () => ref,
    };
    if (attribute === 'Arn') {
      const make = arn[r.Type];
      if (!make) throw new Error(`GetAtt ${id}.Arn: type ${r.Type} not modelled`);
      return make();
    }
    if (attribute === 'QueueName') return this.queueName(id);
    if (attribute === 'QueueUrl') return this.ref(id);
    if (attribute === 'Name') return ref;
    throw new Error(`GetAtt ${id}.${attribute} not modelled`);
  }

  #sub(text: string, vars: Record<string, Json> = {}): string {
    return text.replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
      if (name in vars) return String(this.value(vars[name]));
      const dot = name.indexOf('.');
      if (dot > 0) return this.attribute(name.slice(0, dot), name.slice(dot + 1));
      return this.ref(name);
    });
  }

  /** Evaluates the intrinsic functions in a value, deep. */
  value(v: Json): Json {
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    if (!v || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const [k] = keys as [string];
      const arg = v[k];
      if (k === 'Ref') return this.ref(arg);
      if (k === 'Fn::GetAtt') {
        const [id, att] = Array.isArray(arg) ? arg : String(arg).split('.');
        return this.attribute(id, att);
      }
      if (k === 'Fn::Sub') return Array.isArray(arg) ? this.#sub(arg[0], arg[1]) : this.#sub(arg);
      if (k === 'Fn::Join') {
        // A List<…> parameter is given as CloudFormation takes it on the command line: comma-delimited.
        const list = this.value(arg[1]);
        return (Array.isArray(list) ? list : String(list).split(',')).join(arg[0]);
      }
    }
    return Object.fromEntries(Object.entries(v).map(([key, x]) => [key, this.value(x)]));
  }

  /** A role's identity policies (inline), resolved. */
  rolePolicies(roleId: string): { name: string; policy: Json }[] {
    const r = this.resource(roleId);
    if (r.Type !== 'AWS::IAM::Role') throw new Error(`${roleId} is not a role`);
    if (r.Properties?.ManagedPolicyArns?.length)
      throw new Error(`${roleId}: managed policies are not evaluated; keep role policies inline`);
    return (r.Properties?.Policies ?? []).map((p: Json) => ({
      name: `${roleId}/${p.PolicyName}`,
      policy: this.value(p.PolicyDocument),
    }));
  }

  roleArn(roleId: string): string {
    return this.attribute(roleId, 'Arn');
  }

  trustPolicy(roleId: string): Json {
    return this.value(this.resource(roleId).Properties?.AssumeRolePolicyDocument);
  }
}
