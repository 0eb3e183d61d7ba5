import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { instanceIdentity } from '#aws/instance-identity.ts';

describe('Function: instanceIdentity()', () => {
  it('asks IMDSv2 for a session token first, then reads instance id, AZ and region with it', async () => {
    // prepare
    const requests: { url: string; method: string; headers: Record<string, string> }[] = [];
    const answers: Record<string, string> = {
      '/latest/api/token': 'TOKEN',
      '/latest/meta-data/instance-id': 'i-0123\n',
      '/latest/meta-data/placement/availability-zone': 'eu-west-1b',
      '/latest/meta-data/placement/region': 'eu-west-1',
    };
    const fakeFetch = (async (url: string, init: RequestInit) => {
      requests.push({ url, method: init.method ?? 'GET', headers: init.headers as Record<string, string> });
      const path = new URL(url).pathname;
      return new Response(answers[path] ?? '', { status: answers[path] ? 200 : 404 });
    }) as typeof fetch;
    // act
    const identity = await instanceIdentity({ fetch: fakeFetch });
    // assess
    assert.deepEqual(identity, { instanceId: 'i-0123', availabilityZone: 'eu-west-1b', region: 'eu-west-1' });
    assert.equal(requests[0]?.method, 'PUT');
    assert.equal(requests[0]?.url, 'http://169.254.169.254/latest/api/token');
    assert.equal(requests[0]?.headers['X-aws-ec2-metadata-token-ttl-seconds'], '21600');
    for (const r of requests.slice(1)) assert.equal(r.headers['X-aws-ec2-metadata-token'], 'TOKEN');
  });

  it('fails clearly when the token is refused (IMDS off or hop limit)', async () => {
    const refuse = (async () => new Response('', { status: 403 })) as unknown as typeof fetch;
    await assert.rejects(
      instanceIdentity({ fetch: refuse }),
      /IMDSv2 token request to http:\/\/169.254.169.254 failed: HTTP 403/,
    );
  });
});
