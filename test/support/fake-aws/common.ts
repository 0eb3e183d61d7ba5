// Shared bits of the stateful in-memory AWS fakes: errors shaped like the SDK's, ids, a fake clock.
//
// The AWS adapters' port contracts run on moto, an emulator nobody here wrote (test/unit/contract-aws.test.ts), and
// the whole AWS flow does too (test/e2e/aws-moto.test.ts). These fakes stay only for the role-vs-code test
// (test/support/role-world.ts), for what moto cannot give it: that test turns each traced SDK call into IAM
// requests *as the call is made*, reading synchronously the tags and keys of the resources it names (moto answers
// only over HTTP, after the fact), and it sets state between calls that moto has no API for (an SSM write dropped
// by validation, a CloudWatch composite alarm, a Scheduler schedule that fires). `awsError` also serves the
// adapters' unit tests, which script failures with aws-sdk-client-mock.
import { createHash, randomBytes } from 'node:crypto';

/** An error as SDK v3 throws it: `name` is the service's error code. */
export function awsError(name: string, message = name): Error {
  const err = new Error(message);
  err.name = name;
  Object.assign(err, { $fault: 'client', $metadata: { httpStatusCode: 400 } });
  return err;
}

export function fakeId(prefix: string, hexLength = 17): string {
  return `${prefix}-${randomBytes(Math.ceil(hexLength / 2))
    .toString('hex')
    .slice(0, hexLength)}`;
}

export function md5Etag(body: Buffer): string {
  return `"${createHash('md5').update(body).digest('hex')}"`;
}

export const ACCOUNT = '111111111111';

/** EC2-style tag filters: { Name: 'tag:k', Values } and a few plain attribute names. */
export function matchesFilters(
  filters: { Name?: string; Values?: string[] }[] | undefined,
  tags: Record<string, string>,
  attributes: Record<string, string | undefined> = {},
): boolean {
  for (const f of filters ?? []) {
    const values = f.Values ?? [];
    const name = f.Name ?? '';
    const actual = name.startsWith('tag:') ? tags[name.slice(4)] : attributes[name];
    if (actual === undefined || !values.includes(actual)) return false;
  }
  return true;
}

/** Splits a list into pages the way AWS list APIs do, with an opaque next token. */
export function page<T>(items: T[], token: string | undefined, size: number): { items: T[]; next?: string } {
  const start = token ? Number(token) : 0;
  const slice = items.slice(start, start + size);
  const next = start + size < items.length ? String(start + size) : undefined;
  return next ? { items: slice, next } : { items: slice };
}
