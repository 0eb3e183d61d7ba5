// The local boot checker keeps a boot's verdict once decided: a second look (a duplicate or late delivery racing
// the one that decided and stopped the machine) sees the same verdict, never "stopped" and never a fresh boot.
// A demo once failed a region whose image had booted, because the racing look saw the stopped entry.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type BootMachine, LocalQemuBootChecker } from '#local/boot-checker.ts';
import type { LocalImages } from '#local/images.ts';
import type { QemuBootOptions, QemuBootState } from '#local/qemu.ts';
import type { BootCheckRequest } from '#ports';

/** A machine the test decides for: booting until `decide()`; stop() ends it like a kill. */
class ScriptedMachine implements BootMachine {
  #state: QemuBootState | undefined;
  starts = 0;
  stops = 0;
  readonly options: QemuBootOptions;
  constructor(options: QemuBootOptions) {
    this.options = options;
  }
  async start() {
    this.starts++;
    this.#state = { state: 'booting', startedAt: new Date() };
  }
  state() {
    return this.#state;
  }
  lastLines() {
    return ['Welcome', 'stemcell login:'];
  }
  async stop() {
    this.stops++;
    if (this.#state?.state === 'booting')
      this.#state = { state: 'stopped', startedAt: this.#state.startedAt, reason: 'killed' };
  }
  decide(state: QemuBootState) {
    this.#state = state;
  }
}

function request(imageId = 'ami-0123456789abcdef0'): BootCheckRequest {
  return {
    checkId: 'boot-web-base-00000001-eu-west-1',
    region: 'eu-west-1',
    imageId,
    architecture: 'x86_64',
    bootMode: 'legacy-bios',
    marker: 'login:',
    timeoutSeconds: 60,
    tags: {},
  };
}

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'stemcell-boot-checker-'));
  const machines: ScriptedMachine[] = [];
  const images = {
    restore: async (_imageId: string, outFile: string) => {
      await writeFile(outFile, 'disk');
      return {};
    },
    ownerOf: () => '111111111111',
    restoreBytes: () => 4,
  } as unknown as LocalImages;
  const checker = new LocalQemuBootChecker({
    dir,
    images: () => images,
    slots: 1,
    createBoot: (options) => {
      const machine = new ScriptedMachine(options);
      machines.push(machine);
      return machine;
    },
  });
  return { dir, checker, machines };
}

async function until(predicate: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !predicate(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(predicate(), 'condition never held');
}

describe('Class: LocalQemuBootChecker', () => {
  it('a look after the deciding look stopped the machine still sees the marker, and starts nothing new', async () => {
    // prepare
    const { dir, checker, machines } = await setup();
    try {
      await checker.start(request());
      await until(() => machines[0]?.state()?.state === 'booting');
      machines[0]?.decide({ state: 'marker-seen', startedAt: new Date(), seconds: 12.5 });
      // act: look 1 sees the marker and stops the machine; look 2, racing it, starts and looks again
      const first = await checker.observe(request());
      await checker.start(request());
      const stopped = await checker.stop(request());
      await checker.start(request());
      const second = await checker.observe(request());
      const stoppedAgain = await checker.stop(request());
      // assess
      assert.equal(first.state, 'marker-seen');
      assert.equal(second.state, 'marker-seen', JSON.stringify(second));
      assert.equal(second.state === 'marker-seen' && second.seconds, 12.5);
      assert.equal(machines.length, 1, 'no second boot of the same image');
      assert.equal(stopped.consoleLog, join(dir, 'boot-web-base-00000001-eu-west-1.console.log'));
      assert.equal(stoppedAgain.consoleLog, stopped.consoleLog);
      assert.deepEqual(stoppedAgain.lastLines, ['Welcome', 'stemcell login:']);
    } finally {
      await checker.stopAll();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('stopping a boot that has not decided reports it stopped, and looks after that say so too', async () => {
    // prepare
    const { dir, checker, machines } = await setup();
    try {
      await checker.start(request());
      await until(() => machines[0]?.state()?.state === 'booting');
      // act
      await checker.stop(request());
      const after = await checker.observe(request());
      // assess
      assert.equal(after.state, 'stopped');
      assert.equal(after.state === 'stopped' && after.reason, 'stopped');
      assert.equal(machines[0]?.state()?.state, 'stopped', 'the machine is killed');
    } finally {
      await checker.stopAll();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('another image under the same check id (a rebuilt region) boots afresh', async () => {
    // prepare
    const { dir, checker, machines } = await setup();
    try {
      await checker.start(request());
      await until(() => machines[0]?.state()?.state === 'booting');
      machines[0]?.decide({ state: 'marker-seen', startedAt: new Date(), seconds: 3 });
      await checker.stop(request());
      // act
      const other = request('ami-0fedcba9876543210');
      await checker.start(other);
      await until(() => machines.length === 2 && machines[1]?.state()?.state === 'booting');
      const seen = await checker.observe(other);
      // assess
      assert.equal(seen.state, 'booting');
      assert.equal(machines[1]?.options.disk, join(dir, 'scratch', `${other.checkId}.raw`));
    } finally {
      await checker.stopAll();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
