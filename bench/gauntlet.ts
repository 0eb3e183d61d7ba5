// npm run gauntlet [-- --kills N --seed S]: the local stack as a child process, killed with SIGKILL at N random
// moments spread over every step of a release (volume, mkfs, apply, boot, quiesce, snapshot, between the
// snapshot and its notification, register, announce, mid-way through the account updates), restarted after
// each kill. Meanwhile it publishes revisions, fills the data folder at random moments (root: the data folder
// is a tmpfs of its own) and republishes a revision with other content. Then it checks the invariants and
// prints, last: `kills N: complete C, failed-with-reason F, stuck 0, duplicate images 0, backwards 0, corrupt 0, leaks 0`.
// Leak checks are scoped to its own data folder: loop devices backed by files under it, mounts under it,
// processes marked with it, temporary files in it. Other engineers' loops and processes are never looked at.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { freeBytes } from '#builder/space.ts';
import { parseConfig } from '#config/load.ts';
import { objectKey, sequenceFromVersionDescription } from '#core/model/naming.ts';
import { buildSampleTarball } from '#demo/sample-rootfs.ts';
import { realSleep } from '#local/clock.ts';
import { createLocalEbs } from '#local/ebs.ts';
import { findTemporaries, processesOf } from '#local/housekeeping.ts';
import { LocalKeyService } from '#local/key-service.ts';
import { LocalMemberAccounts } from '#local/member-accounts.ts';
import { LocalObjectStore } from '#local/object-store.ts';
import { LocalReleaseStore } from '#local/release-store.ts';
import { chooseVolumeBackend, ebsStateDir } from '#local/volumes.ts';
import type { Release } from '#ports';
import { imageHoldsTarball } from '#test/support/image-content.ts';
import { seededRandom as random } from '#test/support/random.ts';

const REGIONS = ['eu-west-1', 'us-east-1'];
const OU = 'ou-gaun-11111111';
const ACCOUNTS = ['400000000001', '400000000002', '400000000003'];
const MOMENTS = [
  'volume',
  'attach', // partition table + mkfs on a fresh volume, mount otherwise
  'download+apply',
  'boot',
  'quiesce',
  'snapshot',
  'after-snapshot', // snapshot taken, its notification not yet handled
  'register',
  'announce',
  'accounts',
] as const;
type Moment = (typeof MOMENTS)[number];

export interface GauntletOptions {
  kills: number;
  seed: number;
  /** Lines of progress (stderr by default). */
  log?: (line: string) => void;
}

export interface GauntletResult {
  kills: number;
  complete: number;
  failedWithReason: number;
  stuck: number;
  duplicateImages: number;
  duplicateVersions: number;
  backwards: number;
  corrupt: number;
  /** Images whose content was compared with their tarball (block volumes only). */
  compared: number;
  leaks: number;
  leakDetails: string[];
  line: string;
}

interface Child {
  process: ChildProcess;
  events: Array<Record<string, unknown>>;
  exited: Promise<void>;
}

function startStack(data: string, configFile: string, log: (line: string) => void): Child {
  const child = spawn(process.execPath, [resolve('bench/gauntlet-stack.ts'), data, configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: Array<Record<string, unknown>> = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      log(`stack: ${line}`);
    }
  });
  child.stderr?.resume();
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return { process: child, events, exited };
}

async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await realSleep(25);
  }
  return false;
}

const ended = (r: Release) =>
  Object.values(r.regions).every((x) => x.state === 'announced' || x.state === 'failed');

export async function runGauntlet(options: GauntletOptions): Promise<GauntletResult> {
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  const rng = random(options.seed);
  const block = chooseVolumeBackend('auto', () => {}) === 'block';
  const dir = await mkdtemp(join('/var/tmp', 'stemcell-gauntlet-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  // As root the data folder is a tmpfs of its own: filling it touches nobody else's disk.
  if (block) execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1536m', 'stemcell-gauntlet', data]);
  const config = {
    homeRegion: REGIONS[0],
    bucket: 'stemcell-gauntlet',
    streams: {
      web: {
        regions: REGIONS,
        bootMode: 'none',
        volumeSizeGiB: 1,
        keep: 100,
        sharing: { organization: true },
        subscribers: { scope: 'organization' },
      },
    },
    local: {
      organizationId: 'o-gauntlet01',
      managementAccountId: '400000000000',
      ous: [{ id: OU, name: 'members' }],
      accounts: ACCOUNTS.map((id, i) => ({ id, name: `m${i}`, ou: OU })),
      launchTemplates: ACCOUNTS.flatMap((account) =>
        REGIONS.map((region) => ({ account, region, stream: 'web', name: 'web-lt' })),
      ),
    },
  };
  parseConfig(config);
  const configFile = join(dir, 'config.json');
  writeFileSync(configFile, JSON.stringify(config));
  const objects = new LocalObjectStore(join(data, 'objects'), {
    bucket: config.bucket,
    accountId: config.local.managementAccountId,
    region: REGIONS[0] as string,
  });
  const releases = new LocalReleaseStore(join(data, 'releases'));
  const tarballs = new Map<string, string>();
  let revision = 0;
  const publishNext = async () => {
    revision++;
    const tarball = await buildSampleTarball(
      join(dir, 'work'),
      join(dir, 'tarballs', `web-${revision}.tar.zst`),
      {
        stream: 'web',
        revision,
        withKernel: false,
        files: 60,
      },
    );
    tarballs.set(`r${revision}`, tarball);
    const body = await readFile(tarball);
    await objects.put(objectKey('web', `r${revision}`), body, {
      sha256: createHash('sha256').update(body).digest('hex'),
    });
    log(`gauntlet: published r${revision}`);
  };
  const filler = join(data, 'gauntlet-filler');
  let child: Child | undefined;
  try {
    await publishNext();
    for (let kill = 1; kill <= options.kills; kill++) {
      child = startStack(data, configFile, log);
      const current = child;
      await until(() => current.events.some((e) => e.kind === 'started'), 60_000);
      const all = await releases.list('web');
      if (all.every(ended) && rng() < 0.7) await publishNext();
      // Now and then: other content under a published revision (refused), or a full data folder.
      if (revision > 1 && rng() < 0.15) {
        const other = tarballs.get(`r${revision}`) as string;
        await objects.put(objectKey('web', `r${revision - 1}`), await readFile(other), {});
        log(`gauntlet: republished r${revision - 1} with other content`);
      }
      const fill = block && rng() < 0.2;
      const moment = MOMENTS[Math.floor(rng() * MOMENTS.length)] as Moment;
      const from = current.events.length;
      const seen = () => {
        const fresh = current.events.slice(from);
        if (moment === 'after-snapshot') return fresh.some((e) => e.kind === 'built');
        if (moment === 'accounts') return fresh.some((e) => e.kind === 'account-updated');
        if (moment === 'register' || moment === 'announce') return false;
        return fresh.some((e) => e.kind === 'build' && e.step === moment);
      };
      const inState = async () => {
        const state = moment === 'register' ? 'snapshotting' : 'registering';
        return (await releases.list('web')).some((r) =>
          Object.values(r.regions).some((x) => x.state === state),
        );
      };
      const hit = await until(
        () => (moment === 'register' || moment === 'announce' ? inState() : seen()),
        20_000,
      );
      if (fill) {
        fillUp(data, filler);
        log('gauntlet: data folder filled');
        await realSleep(1000 + rng() * 2000);
      }
      await realSleep(rng() * 150);
      current.process.kill('SIGKILL');
      await current.exited;
      rmSync(filler, { force: true });
      log(
        `gauntlet: kill ${kill}/${options.kills} at ${moment}${hit ? '' : ' (not reached: killed anyway)'}`,
      );
    }
    // The last restart: every release must end within 2 minutes.
    child = startStack(data, configFile, log);
    const last = child;
    await until(() => last.events.some((e) => e.kind === 'started'), 60_000);
    await until(async () => (await releases.list('web')).every(ended), 120_000);
    // Accounts report after the announcement: give them a moment, then stop as Ctrl-C would.
    await realSleep(3000);
    last.process.kill('SIGINT');
    await Promise.race([last.exited, realSleep(60_000)]);
    child = undefined;
    return await check(data, dir, tarballs, options.kills, block);
  } finally {
    if (child) {
      child.process.kill('SIGKILL');
      await child.exited;
    }
    if (block) {
      for (const { pid } of processesOf(data)) process.kill(pid, 'SIGKILL');
      execFileSync('umount', ['-l', data]);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

async function check(
  data: string,
  dir: string,
  tarballs: Map<string, string>,
  kills: number,
  block: boolean,
): Promise<GauntletResult> {
  const releases = await new LocalReleaseStore(join(data, 'releases')).list('web');
  let complete = 0;
  let failedWithReason = 0;
  let stuck = 0;
  for (const r of releases) {
    const states = Object.values(r.regions);
    if (states.every((x) => x.state === 'announced') && r.completedAt) complete++;
    else if (ended(r) && states.filter((x) => x.state === 'failed').every((x) => Boolean(x.reason)))
      failedWithReason++;
    else stuck++;
  }
  // Exactly one image per region per release.
  const keys = new LocalKeyService(join(data, 'kms'), {
    accountId: '400000000000',
    region: REGIONS[0] as string,
  });
  let duplicateImages = 0;
  let corrupt = 0;
  let compared = 0;
  for (const region of REGIONS) {
    const { images } = createLocalEbs({
      dir: ebsStateDir(data, region),
      region,
      accountId: '400000000000',
      keys,
      events: { emit: () => {} },
      backend: block ? 'block' : 'directory',
    });
    const listed = await images.listByTag('stemcell:stream', 'web');
    const byName = new Map<string, number>();
    for (const image of listed) byName.set(image.name, (byName.get(image.name) ?? 0) + 1);
    duplicateImages += [...byName.values()].filter((n) => n > 1).length;
    // Every announced image restores to the exact content of its tarball (block volumes: a raw disk).
    for (const r of releases) {
      const imageId = r.regions[region]?.state === 'announced' ? r.regions[region]?.imageId : undefined;
      if (!imageId || !block) continue;
      try {
        await imageHoldsTarball(images, imageId, tarballs.get(r.revision) as string, dir);
        compared++;
      } catch (err) {
        corrupt++;
        process.stderr.write(`gauntlet: ${r.revision} ${region} ${imageId}: ${(err as Error).message}\n`);
      }
    }
  }
  // No duplicate launch-template version, no template ever at a lower sequence.
  const members = new LocalMemberAccounts(join(data, 'accounts'));
  let duplicateVersions = 0;
  let backwards = 0;
  for (const account of ACCOUNTS) {
    for (const region of REGIONS) {
      const member = members.forAccount(account, region);
      const template = member.launchTemplateByName('web-lt');
      if (!template) continue;
      const versions = member.launchTemplateVersions(template.launchTemplateId).slice(1);
      const images = versions.map((v) => v.imageId);
      duplicateVersions += images.length - new Set(images).size;
      const sequences = versions.map((v) => sequenceFromVersionDescription(v.versionDescription, 'web') ?? 0);
      for (let i = 1; i < sequences.length; i++)
        if ((sequences[i] ?? 0) <= (sequences[i - 1] ?? 0)) backwards++;
      const current = member.launchTemplateByName('web-lt');
      const defaultSequence = sequenceFromVersionDescription(
        versions.find((v) => v.versionNumber === current?.defaultVersionNumber)?.versionDescription,
        'web',
      );
      if (sequences.length > 0 && defaultSequence !== Math.max(...sequences)) backwards++;
    }
  }
  // Leaks, scoped to this data folder.
  const leakDetails: string[] = [];
  if (block) {
    const loops = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE'], {
      encoding: 'utf8',
    });
    for (const line of loops.split('\n'))
      if (line.includes(`${data}/`)) leakDetails.push(`loop ${line.trim()}`);
  }
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const target = line.split(' ')[1] ?? '';
    if (target.startsWith(`${data}/`)) leakDetails.push(`mount ${target}`);
  }
  for (const t of findTemporaries(data)) leakDetails.push(`temporary ${t.path}`);
  for (const p of processesOf(data)) leakDetails.push(`process ${p.pid} ${p.command}`);
  const duplicates = duplicateImages + duplicateVersions;
  const line =
    `kills ${kills}: complete ${complete}, failed-with-reason ${failedWithReason}, stuck ${stuck}, ` +
    `duplicate images ${duplicates}, backwards ${backwards}, corrupt ${corrupt}, leaks ${leakDetails.length}`;
  return {
    kills,
    complete,
    failedWithReason,
    stuck,
    duplicateImages,
    duplicateVersions,
    backwards,
    corrupt,
    compared,
    leaks: leakDetails.length,
    leakDetails,
    line,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve('bench/gauntlet.ts')) {
  const arg = (name: string, fallback: number) => {
    const at = process.argv.indexOf(`--${name}`);
    const value = at === -1 ? fallback : Number(process.argv[at + 1]);
    if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be a whole number`);
    return value;
  };
  const result = await runGauntlet({ kills: arg('kills', 10), seed: arg('seed', Date.now() % 100000) });
  for (const leak of result.leakDetails) process.stderr.write(`leak: ${leak}\n`);
  process.stderr.write(
    `gauntlet: ${result.compared} announced images compared with their tarballs; ` +
      `duplicate template versions ${result.duplicateVersions}\n`,
  );
  process.stdout.write(`${result.line}\n`);
  process.exitCode =
    result.stuck +
      result.backwards +
      result.corrupt +
      result.leaks +
      result.duplicateImages +
      result.duplicateVersions >
    0
      ? 1
      : 0;
}

/**
 * Fills the data folder to within 1 MiB. The stack writes meanwhile, so the space measured can be gone by the
 * time fallocate asks for it (which then fails, allocating nothing): measure again and leave more room.
 */
function fillUp(data: string, filler: string): void {
  for (let margin = 2 ** 20; ; margin *= 4) {
    try {
      execFileSync('fallocate', ['-l', String(Math.max(0, freeBytes(data) - margin)), filler], {
        stdio: 'pipe',
      });
      return;
    } catch (err) {
      if (margin >= 2 ** 28) throw err;
    }
  }
}
