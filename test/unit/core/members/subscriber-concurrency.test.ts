// Never backwards, even concurrently: many random interleavings of 2–5 concurrent "Image Ready" deliveries for
// one account and stream (duplicated, reordered) against the local launch-template state on disk. Each call
// into the member account yields a random number of event-loop turns before and after it runs, so the
// deliveries' reads and writes interleave differently in every schedule. The schedule's seed is in the
// failure message, so a failing interleaving can be replayed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { applyImageReady } from '#core/members/subscriber.ts';
import { sequenceFromVersionDescription } from '#core/model/naming.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';
import type { MemberAccount, MemberAccounts } from '#ports';
import { FakeClock, FakePublisher, imageReadyDetail, RecordingLogger } from '#test/support/core-fakes.ts';
import { seededRandom as random } from '#test/support/random.ts';

const ACCOUNT = '200000000001';
const REGION = 'eu-west-1';
const STREAM = 'web-base';
const SCHEDULES = 250;

const imageReady = (sequence: number) => imageReadyDetail(sequence, 'web-base', REGION);

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Every member-account call waits 0–3 event-loop turns before and after it runs. */
function jittered(members: MemberAccounts, rnd: () => number): MemberAccounts {
  const pause = async () => {
    for (let i = Math.floor(rnd() * 4); i > 0; i--) await turn();
  };
  return {
    forAccount(accountId, region) {
      const inner = members.forAccount(accountId, region);
      return new Proxy(inner, {
        get(target, prop, receiver) {
          const value = Reflect.get(target, prop, receiver);
          if (typeof value !== 'function') return value;
          return async (...args: unknown[]) => {
            await pause();
            const out = await value.apply(target, args);
            await pause();
            return out;
          };
        },
      }) as MemberAccount;
    },
  };
}

describe('Function: applyImageReady() under concurrent deliveries', () => {
  it(`ends at the highest sequence in ${SCHEDULES} random schedules of 2–5 concurrent deliveries`, async (t) => {
    // prepare
    const dir = await mkdtemp(join(tmpdir(), 'stemcell-subscriber-race-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const clock = new FakeClock();
    const failures: string[] = [];
    let raced = 0;
    for (let schedule = 0; schedule < SCHEDULES; schedule++) {
      const seed = 0x5eed0000 + schedule;
      const rnd = random(seed);
      const local = new LocalMemberAccounts(join(dir, String(schedule)), { clock });
      const template = local.createLaunchTemplate(ACCOUNT, REGION, {
        name: 'web',
        imageId: 'ami-00000000000000000',
        tags: { 'stemcell:stream': STREAM },
      });
      // Some schedules start from a template stemcell already moved (sequence 1 delivered before).
      if (rnd() < 0.3) {
        await applyImageReady(depsFor(local, clock), imageReady(1));
      }
      // 2–5 deliveries of sequences 1..4, duplicates allowed, in random order.
      const count = 2 + Math.floor(rnd() * 4);
      const sequences = Array.from({ length: count }, () => 1 + Math.floor(rnd() * 4));
      const deps = depsFor(jittered(local, rnd), clock);
      const delays = sequences.map(() => Math.floor(rnd() * 3));

      // act
      const settled = await Promise.allSettled(
        sequences.map(async (sequence, i) => {
          for (let d = delays[i] ?? 0; d > 0; d--) await turn();
          return applyImageReady(deps, imageReady(sequence));
        }),
      );

      // assess
      const account = local.forAccount(ACCOUNT, REGION);
      const versions = account.launchTemplateVersions(template.launchTemplateId);
      const [after] = await account.listLaunchTemplates('stemcell:stream', STREAM);
      const defaultVersion = versions.find((v) => v.versionNumber === after?.defaultVersionNumber);
      const want = Math.max(...sequences);
      const got = sequenceFromVersionDescription(defaultVersion?.versionDescription, STREAM);
      const perSequence = new Map<number, number>();
      for (const v of versions) {
        const s = sequenceFromVersionDescription(v.versionDescription, STREAM);
        if (s !== undefined) perSequence.set(s, (perSequence.get(s) ?? 0) + 1);
      }
      const thrown = settled.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      const results = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      if (results.filter((r) => r.templates[0]?.outcome === 'updated').length > 1) raced++;
      if (thrown.length > 0)
        failures.push(`seed ${seed.toString(16)}: deliveries [${sequences}] threw ${thrown}`);
      else if (got !== want || defaultVersion?.imageId !== imageReady(want).imageId)
        failures.push(
          `seed ${seed.toString(16)}: deliveries [${sequences}] → default holds ${got}, want ${want}`,
        );
      else if ([...perSequence.values()].some((n) => n > 1))
        failures.push(
          `seed ${seed.toString(16)}: a sequence got two versions ${JSON.stringify([...perSequence])}`,
        );
    }
    assert.deepEqual(failures, [], `${failures.length}/${SCHEDULES} schedules ended wrong`);
    // The schedules must really race: in many of them more than one delivery wrote a version.
    assert.ok(raced > SCHEDULES / 10, `only ${raced} schedules had concurrent writers`);
  });
});

function depsFor(members: MemberAccounts, clock: FakeClock) {
  return {
    accountId: ACCOUNT,
    members,
    centralBus: 'stemcell',
    events: new FakePublisher(),
    settings: () => ({ instanceRefresh: false }),
    clock,
    logger: new RecordingLogger(),
  };
}
