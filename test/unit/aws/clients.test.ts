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

  it('builds every client, member accounts and role assumption included, with the one client configuration', async () => {
    // prepare
    const credentials = { accessKeyId: 'AKIDOWN', secretAccessKey: 'own' };
    const clients = new AwsClients({
      ownAccountId: '111111111111',
      memberRoleName: 'stemcell-member',
      client: {
        endpoint: 'http://127.0.0.1:5000',
        maxAttempts: 2,
        retryMode: 'standard',
        credentials,
        forcePathStyle: true,
        organizationsRegion: 'cn-northwest-1',
      },
    });
    const own = [
      clients.s3('eu-west-1'),
      clients.sqs('eu-west-1'),
      clients.eventBridge('eu-west-1'),
      clients.dynamodb('eu-west-1'),
      clients.scheduler('eu-west-1'),
      clients.cloudwatch('eu-west-1'),
      clients.organizations(),
      clients.sts('eu-west-1'),
      clients.ec2('eu-west-1'),
      clients.kms('eu-west-1'),
      clients.autoScaling('eu-west-1'),
      clients.ssm('eu-west-1'),
    ];
    const member = [
      clients.ec2('us-east-1', '222222222222'),
      clients.kms('us-east-1', '222222222222'),
      clients.autoScaling('us-east-1', '222222222222'),
      clients.ssm('us-east-1', '222222222222'),
    ];
    // act + assess
    for (const client of [...own, ...member]) {
      const name = client.constructor.name;
      const config = client.config as unknown as {
        endpoint?: () => Promise<{ hostname: string; port?: number; protocol: string }>;
        maxAttempts: () => Promise<number>;
        retryStrategy: () => Promise<{ mode?: string }>;
      };
      const endpoint = await config.endpoint?.();
      assert.deepEqual(
        [endpoint?.protocol, endpoint?.hostname, endpoint?.port],
        ['http:', '127.0.0.1', 5000],
        `${name} endpoint`,
      );
      assert.equal(await config.maxAttempts(), 2, `${name} maxAttempts`);
      assert.equal((await config.retryStrategy()).mode, 'standard', `${name} retry mode`);
    }
    for (const client of own) {
      const name = client.constructor.name;
      assert.equal((await client.config.credentials()).accessKeyId, 'AKIDOWN', `${name} own credentials`);
    }
    assert.equal(await clients.organizations().config.region(), 'cn-northwest-1');
    assert.equal(clients.s3('eu-west-1').config.forcePathStyle, true);
    assert.equal(clients.settings.endpoint, 'http://127.0.0.1:5000');
    // Another instance for other account options keeps the same configuration.
    const other = clients.with({ ownAccountId: '222222222222' });
    assert.equal((await other.ec2('eu-west-1').config.endpoint?.())?.hostname, '127.0.0.1');
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
