// Every CloudFormation template in infra/ passes AWS's CloudFormation linter with no finding: an error there
// (an unknown !Ref, a value EC2 refuses) fails `aws cloudformation deploy` for every region or account.
// The packaged serverless.yml is linted in serverless-package.test.ts, which packages it once already.
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { describe, it } from 'node:test';
import { cfnLint, cfnLintVersion, describeFinding, infraTemplates } from '#test/support/cfn-lint.ts';

describe('cfn-lint: infra/ templates', () => {
  it('finds the templates (not the policy fragments beside them)', async () => {
    const names = (await infraTemplates()).map((f) => basename(f));
    assert.ok(names.includes('region.yml') && names.includes('member.yml'), names.join(', '));
    assert.ok(!names.includes('lambda-trust.yml'), 'a policy fragment is not a template');
  });

  it('reports no error and no warning that the checked-in config does not ignore', async () => {
    const templates = await infraTemplates();
    const findings = await cfnLint(templates);
    assert.deepEqual(findings.map(describeFinding), [], `cfn-lint ${await cfnLintVersion()}`);
  });
});
