// Who and where this builder is, from the instance metadata service, IMDSv2 only (session token first).
export interface InstanceIdentity {
  instanceId: string;
  availabilityZone: string;
  region: string;
}

const IMDS = 'http://169.254.169.254';

export async function instanceIdentity(
  options: { fetch?: typeof fetch; endpoint?: string; tokenTtlSeconds?: number; timeoutMs?: number } = {},
): Promise<InstanceIdentity> {
  const doFetch = options.fetch ?? fetch;
  const base = options.endpoint ?? IMDS;
  const signal = AbortSignal.timeout(options.timeoutMs ?? 2000);
  const tokenResponse = await doFetch(`${base}/latest/api/token`, {
    method: 'PUT',
    headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(options.tokenTtlSeconds ?? 21600) },
    signal,
  });
  if (!tokenResponse.ok) {
    throw new Error(`IMDSv2 token request to ${base} failed: HTTP ${tokenResponse.status}`);
  }
  const token = await tokenResponse.text();
  const get = async (path: string) => {
    const res = await doFetch(`${base}/latest/meta-data/${path}`, {
      headers: { 'X-aws-ec2-metadata-token': token },
      signal,
    });
    if (!res.ok) throw new Error(`IMDS ${path} failed: HTTP ${res.status}`);
    return (await res.text()).trim();
  };
  const instanceId = await get('instance-id');
  const availabilityZone = await get('placement/availability-zone');
  const region = await get('placement/region');
  return { instanceId, availabilityZone, region };
}

/**
 * The Auto Scaling target lifecycle state of this instance (IMDS autoscaling/target-lifecycle-state):
 * "Terminated" once a termination (and its lifecycle hook) has begun; undefined outside a group or on error.
 */
export async function targetLifecycleState(
  options: { fetch?: typeof fetch; endpoint?: string; timeoutMs?: number } = {},
): Promise<string | undefined> {
  const doFetch = options.fetch ?? fetch;
  const base = options.endpoint ?? IMDS;
  try {
    const signal = AbortSignal.timeout(options.timeoutMs ?? 2000);
    const token = await doFetch(`${base}/latest/api/token`, {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal,
    });
    if (!token.ok) return undefined;
    const res = await doFetch(`${base}/latest/meta-data/autoscaling/target-lifecycle-state`, {
      headers: { 'X-aws-ec2-metadata-token': await token.text() },
      signal,
    });
    return res.ok ? (await res.text()).trim() : undefined;
  } catch {
    return undefined;
  }
}
