// Every event pattern we deploy (serverless.yml, infra/region.yml, infra/member.yml) is one EventBridge accepts,
// and it delivers the events its consumer expects. Checked with the local bus's matcher, which the conformance
// table (test/unit/local/event-pattern-conformance.test.ts) holds to event-ruler and the user guide, against
// the sample events in events/samples/.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type SampleName, sample } from '#events/samples/index.ts';
import { compileEventPattern } from '#local/event-pattern.ts';
import { loadCfnYaml, resourcesOfType, type Template } from '#test/support/cfn.ts';

const ROOT = new URL('../../../', import.meta.url).pathname;
const sls = loadCfnYaml(`${ROOT}serverless.yml`) as unknown as {
  functions: Record<string, { events?: { eventBridge?: { pattern?: unknown } }[] }>;
  resources: Template;
};
const region = loadCfnYaml(`${ROOT}infra/region.yml`);
const member = loadCfnYaml(`${ROOT}infra/member.yml`);

/** Intrinsics in a pattern, as the sample events' values (the tarball bucket is "stemcell-tarballs" there). */
function resolved(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(resolved);
  if (value && typeof value === 'object') {
    const ref = (value as { Ref?: string }).Ref;
    if (ref === 'TarballBucket') return 'stemcell-tarballs';
    // member.yml's Image Ready rule names the member account (rollout audiences); any account id serves here.
    if (ref === 'AWS::AccountId') return '222222222222';
    if (ref) throw new Error(`pattern holds !Ref ${ref}: give it a sample value here`);
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolved(v)]));
  }
  return value;
}

const REFRESH_ENDS: SampleName[] = [
  'autoscaling-instance-refresh-succeeded',
  'autoscaling-instance-refresh-failed',
  'autoscaling-instance-refresh-cancelled',
  'autoscaling-instance-refresh-rollback-succeeded',
  'autoscaling-instance-refresh-rollback-failed',
];

const rulePattern = (t: Template, logicalId: string): unknown => {
  const found = resourcesOfType(t, 'AWS::Events::Rule').find(([id]) => id === logicalId);
  if (!found) throw new Error(`no rule ${logicalId}`);
  return found[1].Properties?.EventPattern;
};
const functionPatterns = (fn: string): unknown[] =>
  (sls.functions[fn]?.events ?? []).flatMap((e) => (e.eventBridge?.pattern ? [e.eventBridge.pattern] : []));

/** Each deployed pattern, the samples it must deliver, and samples it must not. */
const cases: { where: string; pattern: unknown; delivers: SampleName[]; ignores: SampleName[] }[] = [
  ...functionPatterns('ingest').map((pattern) => ({
    where: 'serverless.yml ingest',
    pattern,
    delivers: ['s3-object-created'] as SampleName[],
    ignores: ['ebs-snapshot-notification'] as SampleName[],
  })),
  {
    where: 'serverless.yml announce (AMI state)',
    pattern: functionPatterns('announce')[0],
    delivers: ['ec2-ami-state-change'],
    ignores: ['ebs-snapshot-notification', 'stemcell-image-ready'],
  },
  {
    where: 'serverless.yml announce (Launch Template Updated)',
    pattern: functionPatterns('announce')[1],
    delivers: ['stemcell-launch-template-updated'],
    ignores: ['stemcell-image-ready', 'stemcell-release-complete'],
  },
  {
    where: 'infra/region.yml SnapshotNotificationsToHome',
    pattern: rulePattern(region, 'SnapshotNotificationsToHome'),
    delivers: ['ebs-snapshot-notification', 'ebs-snapshot-notification-failed'],
    ignores: ['ec2-ami-state-change'],
  },
  {
    where: 'infra/region.yml AmiStateChangesToHome',
    pattern: rulePattern(region, 'AmiStateChangesToHome'),
    delivers: ['ec2-ami-state-change'],
    ignores: ['ebs-snapshot-notification'],
  },
  {
    where: 'infra/member.yml Image Ready rule',
    pattern: rulePattern(member, 'ImageReadyRule'),
    delivers: ['stemcell-image-ready'],
    ignores: [
      'stemcell-release-complete',
      'stemcell-launch-template-updated',
      'autoscaling-instance-refresh-failed',
    ],
  },
  ...['InstanceRefreshEndsToHome', 'InstanceRefreshEndsToSubscriber'].map((id) => ({
    where: `infra/member.yml ${id}`,
    pattern: rulePattern(member, id),
    // AWS's documented samples of every end state (events/samples/autoscaling-instance-refresh-*.json).
    delivers: REFRESH_ENDS,
    ignores: [
      'stemcell-image-ready',
      'ec2-ami-state-change',
      'stemcell-launch-template-updated',
    ] as SampleName[],
  })),
];

describe('Template: deployed event patterns', () => {
  it('has a pattern for each consumer looked at here', () => {
    assert.equal(functionPatterns('ingest').length, 1);
    assert.equal(functionPatterns('announce').length, 2);
    for (const c of cases) assert.ok(c.pattern, `${c.where}: no pattern found`);
  });

  for (const c of cases) {
    it(`${c.where}: a valid pattern that delivers ${c.delivers.join(', ')}`, () => {
      // act
      const matches = compileEventPattern(resolved(c.pattern) as object);
      // assess
      for (const name of c.delivers) assert.equal(matches(sample(name)), true, `${c.where} misses ${name}`);
      for (const name of c.ignores) assert.equal(matches(sample(name)), false, `${c.where} takes ${name}`);
    });
  }

  it("infra/member.yml's refresh rules take only the refresh's end, not its start or checkpoints", () => {
    // prepare: the documented shapes of the events that are no end (same detail, other detail-types)
    const others = [
      'EC2 Auto Scaling Instance Refresh Started',
      'EC2 Auto Scaling Instance Refresh Checkpoint Reached',
      'EC2 Auto Scaling Instance Refresh Rollback Started',
      'EC2 Instance Launch Unsuccessful',
    ].map((detailType) => ({
      ...sample<object>('autoscaling-instance-refresh-failed'),
      'detail-type': detailType,
    }));
    for (const id of ['InstanceRefreshEndsToHome', 'InstanceRefreshEndsToSubscriber']) {
      // act
      const matches = compileEventPattern(resolved(rulePattern(member, id)) as object);
      // assess
      for (const event of others) assert.equal(matches(event), false, `${id} takes ${event['detail-type']}`);
      assert.equal(
        matches({ ...sample<object>('autoscaling-instance-refresh-failed'), source: 'aws.ec2' }),
        false,
      );
    }
  });

  it('every other rule pattern in the templates compiles', () => {
    const all = [sls.resources, region, member].flatMap((t) =>
      resourcesOfType(t, 'AWS::Events::Rule').flatMap(([id, r]) =>
        r.Properties?.EventPattern ? [[id, r.Properties.EventPattern] as const] : [],
      ),
    );
    assert.ok(all.length >= 5);
    for (const [id, pattern] of all) {
      assert.doesNotThrow(() => compileEventPattern(resolved(pattern) as object), `rule ${id}`);
    }
  });
});
