import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';

describe('Module: functions/commons/aws-deps', () => {
  it('reads the config from STEMCELL_CONFIG and lets the deployment name the bucket and bus', async () => {
    // prepare
    process.env.STEMCELL_CONFIG = JSON.stringify({
      homeRegion: 'eu-west-1',
      streams: { web: { regions: ['eu-west-1'] } },
    });
    process.env.STEMCELL_BUCKET = 'stemcell-prod-tarballs-1x2y';
    process.env.STEMCELL_BUS_NAME = 'stemcell-prod';
    process.env.STEMCELL_TABLE = 'stemcell-releases';
    process.env.STEMCELL_BUILD_QUEUE_PREFIX = 'stemcell-build-';
    process.env.AWS_REGION = 'eu-west-1';
    const sts = mockClient(STSClient);
    sts.on(GetCallerIdentityCommand).resolves({ Account: '111111111111' });
    const { awsConfig, awsIngestDeps } = await import('#functions/commons/aws-deps.ts');
    // act
    const config = await awsConfig();
    const deps = await awsIngestDeps();
    // assess
    assert.equal(config.bucket, 'stemcell-prod-tarballs-1x2y');
    assert.equal(config.busName, 'stemcell-prod');
    assert.equal(config.streams.web?.keep, 3);
    assert.equal(deps.objects?.bucket, 'stemcell-prod-tarballs-1x2y');
    assert.equal(deps.buildQueue('us-east-1').name, 'stemcell-build-us-east-1.fifo');
    sts.restore();
  });
});
