// The builder in a group that follows its queue: scale-in protection around each job, and a termination that
// either finishes the job (its snapshot started) or hands it back (before), never half a snapshot.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { buildMessageHandler } from '#builder/agent.ts';
import {
  BuilderLifecycle,
  backlogPerBuilder,
  type FleetControl,
  HandedBackError,
  withLifecycle,
} from '#builder/fleet.ts';
import type { BuildStep } from '#builder/worker.ts';
import { fakeBuilder } from '#test/support/builder-fakes.ts';
import { TarBuilder } from '#test/support/tar-builder.ts';

/** A FleetControl that records what the builder asked, in order, with the builder's own steps among them. */
function recordingControl(visible = 0, inService = 0) {
  const events: string[] = [];
  const control: FleetControl = {
    protect: async (on) => void events.push(`protect ${on}`),
    heartbeat: async () => void events.push('heartbeat'),
    complete: async () => void events.push('complete'),
    handBack: async (receipt) => void events.push(`hand back ${receipt}`),
    backlog: async () => ({ visible, inService }),
    publishBacklogPerBuilder: async (value) => void events.push(`metric ${value}`),
  };
  return { control, events };
}

/** A builder whose job is told to stop when it reaches `stopAt`. */
async function builderStoppedAt(stopAt: BuildStep | undefined) {
  const t = await fakeBuilder({ tarball: new TarBuilder().file('etc/os-release', 'ID=x\n').build() });
  const { control, events } = recordingControl();
  const lifecycle = new BuilderLifecycle(control, () => {});
  const deps = t.deps as unknown as Record<string, unknown>;
  const volumes = deps.volumes as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const attach = volumes.attach?.bind(volumes);
  const detach = volumes.detach?.bind(volumes);
  volumes.attach = async (...a) => {
    events.push('attach');
    return attach?.(...a);
  };
  volumes.detach = async (...a) => {
    events.push('detach');
    return detach?.(...a);
  };
  deps.snapshots = {
    create: async () => {
      events.push('snapshot written');
      return { snapshotId: 'snap-1' };
    },
  };
  let terminated: Promise<void> | undefined;
  deps.onStep = (_job: unknown, step: BuildStep) => {
    if (step === stopAt && !terminated) {
      events.push(`told to stop at ${step}`);
      terminated = lifecycle.terminating(5);
    }
  };
  const handle = lifecycle.wrap(buildMessageHandler(withLifecycle(t.deps, lifecycle), 3, () => {}));
  return { t, lifecycle, events, handle, terminated: () => terminated };
}

describe('Class: BuilderLifecycle', () => {
  it('protects the builder from scale-in for the whole job, and only then', async () => {
    const b = await builderStoppedAt(undefined);
    try {
      await b.handle(b.t.message(1));
      assert.deepEqual(b.events, ['protect true', 'attach', 'detach', 'snapshot written', 'protect false']);
    } finally {
      await rm(b.t.dir, { recursive: true, force: true });
    }
  });

  it('told to stop mid-apply, hands the message back for another builder and writes no snapshot', async () => {
    const b = await builderStoppedAt('download+apply');
    try {
      // Back to the queue at once (RetryLater after 0 s), because of the hand-back.
      await assert.rejects(b.handle(b.t.message(1)), (err: Error & { retryAfterSeconds?: number }) => {
        assert.ok(err.cause instanceof HandedBackError, String(err));
        assert.equal(err.retryAfterSeconds, 0);
        return true;
      });
      await b.terminated();
      assert.deepEqual(b.events, [
        'protect true',
        'attach',
        'told to stop at download+apply',
        'detach',
        'hand back r',
        'protect false',
        'complete',
      ]);
      assert.equal(b.t.published.length, 0, 'not a failed build: no "Build Failed"');
      const region = (await b.t.releases.get(b.t.releaseId))?.regions['eu-west-1'];
      assert.notEqual(region?.state, 'failed');
      assert.equal(region?.snapshotId, undefined);
    } finally {
      await rm(b.t.dir, { recursive: true, force: true });
    }
  });

  it('told to stop once its snapshot has started, finishes it, then lets the instance go', async () => {
    const b = await builderStoppedAt('snapshot');
    try {
      await b.handle(b.t.message(1));
      await b.terminated();
      assert.deepEqual(b.events, [
        'protect true',
        'attach',
        'detach',
        'told to stop at snapshot',
        'snapshot written',
        'protect false',
        'complete',
      ]);
      assert.equal((await b.t.releases.get(b.t.releaseId))?.regions['eu-west-1']?.snapshotId, 'snap-1');
    } finally {
      await rm(b.t.dir, { recursive: true, force: true });
    }
  });

  it('idle when told to stop: lets the instance go at once, and hands back a job received after', async () => {
    const b = await builderStoppedAt(undefined);
    try {
      await b.lifecycle.terminating();
      await assert.rejects(b.handle(b.t.message(1)), /terminating/);
      assert.deepEqual(b.events, ['complete', 'hand back r']);
    } finally {
      await rm(b.t.dir, { recursive: true, force: true });
    }
  });

  it('publishes visible messages per builder in service, the whole backlog with none in service', async () => {
    const { control, events } = recordingControl(10, 4);
    assert.equal(await new BuilderLifecycle(control, () => {}).publishBacklog(), 2.5);
    assert.deepEqual(events, ['metric 2.5']);
    assert.equal(backlogPerBuilder(7, 0), 7);
  });
});
