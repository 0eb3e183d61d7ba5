// One runtime shape for both worlds (src/core/runtime.ts). The type checker proves the AWS and the local wiring
// implement it with exactly its entries (the type assertions below fail `tsc` otherwise); the tests check that
// each entry of both wirings gives the same dependencies, except where the worlds are known to differ.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { silentLogger } from '#core/deps.ts';
import {
  type MEMBER_RUNTIME_ENTRIES,
  type MemberRuntime,
  RUNTIME_ENTRIES,
  type Runtime,
} from '#core/runtime.ts';
import { AwsContainer } from '#functions/commons/aws/container.ts';
import { AwsMemberRuntime, AwsRuntime } from '#functions/commons/aws/runtime.ts';
import { LocalRuntime } from '#local/stack/runtime.ts';
import { LocalServices } from '#local/stack/services.ts';
import { flowConfig, HOME } from '#test/integration/flow/support.ts';

// --- type level: `tsc --noEmit` fails on any of these when a wiring gains or loses an entry -----------------
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// biome-ignore lint/suspicious/noExplicitAny: any function, whatever its parameters
type Methods<T> = { [K in keyof T]: T[K] extends (...args: any[]) => unknown ? K : never }[keyof T];
/** The local wiring has the shape's entries, plus `member` (a member account's runtime, AWS: its own deployment). */
const localEntries: Same<Exclude<Methods<LocalRuntime>, 'member'>, keyof Runtime> = true;
/** The AWS wiring has the shape's entries, plus `env` (a function's parsed environment). */
const awsEntries: Same<Exclude<Methods<AwsRuntime>, 'env'>, keyof Runtime> = true;
const awsMemberEntries: Same<Methods<AwsMemberRuntime>, keyof MemberRuntime> = true;
const listed: Same<(typeof RUNTIME_ENTRIES)[number], keyof Runtime> = true;
const memberListed: Same<(typeof MEMBER_RUNTIME_ENTRIES)[number], keyof MemberRuntime> = true;
const localIsRuntime: Runtime = {} as LocalRuntime;
const awsIsRuntime: Runtime = {} as AwsRuntime;

/** Where the worlds' dependencies differ on purpose, entry → keys only AWS gives. */
const AWS_ONLY: Partial<Record<keyof Runtime, string[]>> = {
  // The management account is a member of its own organization locally (the demo's accounts include it); on
  // AWS it is never in an audience nor a subscriber target.
  reconcile: ['ownAccountId'],
  syncSubscribers: ['ownAccountId'],
};

const ENV = {
  STEMCELL_CONFIG: '',
  STEMCELL_TABLE: 'stemcell-releases',
  STEMCELL_BUILD_QUEUE_PREFIX: 'stemcell-build-',
  STEMCELL_BOOT_CHECK_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/200000000000/stemcell-boot-checks.fifo',
  STEMCELL_BAKE_TARGET_ARN: 'arn:aws:lambda:eu-west-1:200000000000:function:stemcell-announce',
  STEMCELL_BAKE_ROLE_ARN: 'arn:aws:iam::200000000000:role/stemcell-bake',
  STEMCELL_SMOKE_PARAMETER: '/stemcell/smoke',
  STEMCELL_CENTRAL_BUS_ARN: 'arn:aws:events:eu-west-1:200000000000:event-bus/stemcell',
  AWS_REGION: HOME,
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'secret',
};

describe('Module: core/runtime', () => {
  let dir: string;
  let local: LocalRuntime;
  let aws: AwsRuntime;
  let awsMember: AwsMemberRuntime;
  const sts = mockClient(STSClient);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stemcell-runtime-'));
    const config = flowConfig({ accounts: 1 });
    const services = new LocalServices({
      dataDir: dir,
      config,
      clock: { now: () => new Date() },
      log: () => {},
      maxReceiveCount: 3,
      instanceRefreshSeconds: 0,
      memberBus: () => {
        throw new Error('no member bus in this test');
      },
    });
    local = new LocalRuntime(services, silentLogger);
    sts.on(GetCallerIdentityCommand).resolves({ Account: '200000000000' });
    const container = new AwsContainer({ ...ENV, STEMCELL_CONFIG: JSON.stringify(config) });
    aws = new AwsRuntime(container);
    awsMember = new AwsMemberRuntime(container);
  });
  after(async () => {
    sts.restore();
    await rm(dir, { recursive: true, force: true });
  });

  it('holds both wirings to the shape (checked by tsc; here so the file states it)', () => {
    assert.deepEqual(
      [localEntries, awsEntries, awsMemberEntries, listed, memberListed],
      [true, true, true, true, true],
    );
    assert.ok(localIsRuntime && awsIsRuntime);
  });

  for (const entry of RUNTIME_ENTRIES) {
    it(`${entry}: both worlds give the same dependencies`, async () => {
      // act
      const call = (runtime: Runtime) =>
        (runtime[entry] as (region: string) => unknown).call(runtime, HOME) as Promise<object> | object;
      const localKeys = Object.keys(await call(local)).sort();
      const awsKeys = Object.keys(await call(aws))
        .filter((k) => !AWS_ONLY[entry]?.includes(k))
        .sort();
      // assess
      assert.deepEqual(awsKeys, localKeys);
    });
  }

  it('subscriber: both worlds give a member account the same dependencies', async () => {
    // act
    const localKeys = Object.keys(
      local.member('200000000001', { publish: async () => {} }).subscriber(),
    ).sort();
    const awsKeys = Object.keys(await awsMember.subscriber()).sort();
    // assess
    assert.deepEqual(awsKeys, localKeys);
  });
});
