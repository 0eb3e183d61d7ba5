import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { handleBuildMessage, retryDelaySeconds } from '#builder/message.ts';
import { type FakeBuilder, fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

const tarball = () => new TarBuilder().file('etc/x', 'x').build();

async function withBuilder(
  options: Parameters<typeof fakeBuilder>[0],
  body: (t: FakeBuilder) => Promise<void>,
): Promise<void> {
  const t = await fakeBuilder(options);
  try {
    await body(t);
  } finally {
    await rm(t.dir, { recursive: true, force: true });
  }
}

const throttled = async () => {
  throw new Error('RequestLimitExceeded');
};

describe('Function: handleBuildMessage()', () => {
  it('deletes a built job', async () => {
    await withBuilder({ tarball: tarball() }, async (t) => {
      // act
      const built: string[] = [];
      const end = await handleBuildMessage(t.deps, t.message(1), {
        maxReceiveCount: 3,
        log: () => {},
        onBuilt: (_job, outcome) => built.push(outcome.kind),
      });
      // assess
      assert.deepEqual(end, { kind: 'delete' });
      assert.deepEqual(built, ['built']);
    });
  });

  it('hands a failed attempt back after a backoff that doubles with its receive count', async () => {
    await withBuilder({ tarball: tarball(), findVolume: throttled }, async (t) => {
      // act
      const first = await handleBuildMessage(t.deps, t.message(1), { maxReceiveCount: 5, log: () => {} });
      const third = await handleBuildMessage(t.deps, t.message(3), {
        maxReceiveCount: 5,
        retryBaseSeconds: 1,
        log: () => {},
      });
      // assess
      assert.equal(first.kind === 'retry' && first.afterSeconds, 30);
      assert.equal(third.kind === 'retry' && third.afterSeconds, 4);
      assert.match(first.kind === 'retry' ? first.error.message : '', /RequestLimitExceeded/);
      assert.equal(t.published.length, 0, 'no "Build Failed" before the last attempt');
    });
  });

  it('marks the last attempt final and reports "Build Failed", leaving the redrive to the queue', async () => {
    await withBuilder({ tarball: tarball(), findVolume: throttled }, async (t) => {
      // act
      const finals: boolean[] = [];
      const end = await handleBuildMessage(t.deps, t.message(3), {
        maxReceiveCount: 3,
        log: () => {},
        onFailed: (_job, _reason, _verdict, final) => finals.push(final),
      });
      // assess
      assert.equal(end.kind, 'retry');
      assert.deepEqual(finals, [true]);
      assert.equal(t.published[0]?.detailType, 'Build Failed');
    });
  });

  it('deletes a rejected archive at once: retrying cannot help', async () => {
    await withBuilder({ tarball: new TarBuilder().file('../../etc/passwd', 'x').build() }, async (t) => {
      // act
      const end = await handleBuildMessage(t.deps, t.message(1), { maxReceiveCount: 3, log: () => {} });
      // assess
      assert.deepEqual(end, { kind: 'delete' });
      assert.equal(t.published[0]?.detailType, 'Build Failed');
    });
  });

  it('names an unreadable job and hands it back to the queue, which moves it to the DLQ in time', async () => {
    await withBuilder({ tarball: tarball() }, async (t) => {
      // act
      const lines: string[] = [];
      const end = await handleBuildMessage(
        t.deps,
        { ...t.message(2), messageId: 'm-bad', body: '{"not":"a job"}' },
        { maxReceiveCount: 3, log: (line) => lines.push(line) },
      );
      // assess
      assert.equal(end.kind === 'retry' && end.afterSeconds, retryDelaySeconds(2));
      assert.match(lines.join('\n'), /unreadable build job m-bad: /);
    });
  });

  it("keeps a job whose builder's disk is full until space returns, then builds it without spending an attempt", async () => {
    let free = 0;
    const hostSpace = { dir: '/data', neededBytes: 1024, free: () => free };
    await withBuilder({ tarball: tarball(), hostSpace }, async (t) => {
      // act
      const lines: string[] = [];
      const built: string[] = [];
      let looks = 0;
      const end = await handleBuildMessage(t.deps, t.message(1), {
        maxReceiveCount: 3,
        log: (line) => lines.push(line),
        onBuilt: (_job, outcome) => built.push(outcome.kind),
        spacePollMs: 1,
        running: () => {
          if (++looks === 3) free = 4096;
          return true;
        },
      });
      // assess
      assert.deepEqual(end, { kind: 'delete' });
      assert.deepEqual(built, ['built']);
      assert.match(lines.join('\n'), /data folder full.*; waiting for space/);
      assert.equal(t.published.length, 0);
    });
  });

  it('hands a job waiting for space back at once when the builder stops', async () => {
    const hostSpace = { dir: '/data', neededBytes: 1024, free: () => 0 };
    await withBuilder({ tarball: tarball(), hostSpace }, async (t) => {
      // act
      const end = await handleBuildMessage(t.deps, t.message(1), {
        maxReceiveCount: 3,
        log: () => {},
        running: () => false,
      });
      // assess
      assert.equal(end.kind === 'retry' && end.afterSeconds, 0);
    });
  });
});
