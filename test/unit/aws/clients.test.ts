import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { AwsClients, assumedRoleCredentials } from '#aws/clients.ts';

describe('Class: AwsClients', () => {
  it('creates one client per service, region and account, with adaptive retries', async () => {
    // prepare
    const clients = new AwsClients({ ownAccountId: '111111111111', memberRoleName: 'stemcell-member' });
    // act
    const a = clients.ec2('eu-west-1');
    const b = clients.ec2('eu-west-1', '111111111111');
    const c = clients.ec2('us-east-1');
    const d = clients.ec2('eu-west-1', '222222222222');
    // assess
    assert.equal(a, b, 'own account reuses the same client');
    assert.notEqual(a, c);
    assert.notEqual(a, d);
    assert.equal(clients.ec2('eu-west-1', '222222222222'), d);
    assert.equal(((await a.config.retryStrategy()) as { mode?: string }).mode, 'adaptive');
    assert.equal(await a.config.region(), 'eu-west-1');
  });

  it('refuses another account when no member role is configured', () => {
    const clients = new AwsClients({ ownAccountId: '111111111111' });
    assert.throws(
      () => clients.ssm('eu-west-1', '222222222222'),
      /no memberRoleName configured: cannot reach account 222222222222/,
    );
  });
});

describe('Function: assumedRoleCredentials()', () => {
  it('assumes the role once and reuses the credentials until they near expiry', async () => {
    // prepare
    const sts = new STSClient({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const mock = mockClient(sts);
    mock.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: 'AK',
        SecretAccessKey: 'SK',
        SessionToken: 'ST',
        Expiration: new Date(Date.now() + 3600_000),
      },
    });
    const provider = assumedRoleCredentials(
      sts,
      'arn:aws:iam::222222222222:role/stemcell-member',
      'stemcell',
    );
    // act
    const first = await provider();
    const second = await provider();
    // assess
    assert.equal(first.accessKeyId, 'AK');
    assert.equal(second, first);
    assert.deepEqual(
      mock.commandCalls(AssumeRoleCommand).map((c) => c.args[0].input),
      [
        {
          RoleArn: 'arn:aws:iam::222222222222:role/stemcell-member',
          RoleSessionName: 'stemcell',
          DurationSeconds: 3600,
        },
      ],
    );
  });
});
