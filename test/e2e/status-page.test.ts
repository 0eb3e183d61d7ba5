// The live status page in a real browser: Debian's Chromium driven by playwright-core. A release with two waves
// goes through the whole local flow while the page is open; its cells must go pending → announced → updated
// without a reload, and a release whose canary fails shows its wave as halted. The screenshot is a test artifact
// (test-artifacts/status-page.png, not committed).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { parseConfig } from '#config/load.ts';
import type { MemberAccounts, OrganizationDirectory, Release, ReleaseStore, RolloutStore } from '#ports';
import { startStatusPage } from '#ui/serve.ts';
import { accountId, HOME, OU_A, startFlow } from '../integration/flow/support.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;
// Without the background-networking flags Chromium waits on services this closed network does not have.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('Status page (Chromium)', {
  skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} missing: run scripts/setup.sh`,
}, () => {
  it('shows cells going pending → announced → updated live, and a halted wave as halted', async () => {
    // prepare: two waves; every subscriber run waits a little so "announced" is visible before "updated"
    const flow = await startFlow({
      accounts: 2,
      streams: ['web'],
      rollout: {
        waves: [
          // Long enough for the slowed subscriber to report both regions on a loaded machine (a missing
          // report would halt the canary for the wrong reason).
          { name: 'canary', ous: [OU_A], bakeMinutes: 0.2 },
          { name: 'rest', bakeMinutes: 0.01 },
        ],
      },
      beforeSubscriber: () => delay(1500),
    });
    const userDataDir = await mkdtemp(join(tmpdir(), 'stemcell-chromium-'));
    const server = await startStatusPage(
      {
        config: flow.stack.config,
        releases: flow.stack.releases,
        rollouts: flow.stack.rollouts,
        organization: flow.stack.organization,
        members: flow.stack.members,
      },
      '127.0.0.1:0',
    );
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      await page.goto(server.url);
      await page.waitForSelector('#conn.live', { timeout: 30_000 });
      const cell = (release: string, account: string, state: string) =>
        `section[data-release="${release}"] .cell[data-account="${account}"][data-region="${HOME}"][data-state="${state}"]`;
      const r1 = 'web#00000001';
      const canary = accountId(1);
      const rest = accountId(2);

      // act: publish revision 1 while the page is open (no reload from here on)
      const published = flow.publish('web', 1);
      // assess: the rest waits (pending) while the canary is announced, then updated; then the rest follows
      await page.waitForSelector(cell(r1, rest, 'pending'), { timeout: 60_000 });
      await page.waitForSelector(cell(r1, canary, 'announced'), { timeout: 60_000 });
      assert.equal(await page.locator(cell(r1, rest, 'pending')).count(), 1, 'rest still pending');
      await page.waitForSelector(cell(r1, canary, 'updated'), { timeout: 60_000 });
      await page.waitForSelector(cell(r1, rest, 'announced'), { timeout: 60_000 });
      await page.waitForSelector(cell(r1, rest, 'updated'), { timeout: 60_000 });
      await published;
      // the adoption view names revision 1 for the canary's template
      await page.waitForSelector(`#adoption tr[data-account="${canary}"][data-region="${HOME}"]`, {
        timeout: 30_000,
      });
      assert.match(
        (await page.locator(`#adoption tr[data-account="${canary}"][data-region="${HOME}"]`).textContent()) ??
          '',
        /r1, seq 1/,
      );

      // act 2: revision 2, whose canary instance refresh fails
      flow.stack.members.forAccount(canary, HOME).failNextInstanceRefresh('web-asg');
      await flow.publish('web', 2);
      // assess 2
      const r2 = 'web#00000002';
      await page.waitForSelector(
        `section[data-release="${r2}"] tr[data-wave="canary"][data-wave-state="halted"]`,
        {
          timeout: 60_000,
        },
      );
      await page.waitForSelector(
        `section[data-release="${r2}"] tr[data-wave="rest"] .cell[data-state="halted"]`,
        {
          timeout: 30_000,
        },
      );
      assert.match(
        (await page.locator(`section[data-release="${r2}"] .halted-banner`).textContent()) ?? '',
        /halted at wave canary: instance refresh failed/,
      );
      assert.equal(await page.locator(cell(r2, canary, 'failed')).count(), 1);
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });
    } finally {
      await browser.close();
      await server.close();
      await flow.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });

  it('summarises a release of 10,000 accounts: counts per state, only failures and unreported listed', async (t) => {
    // prepare: 10,000 accounts in 2 regions; per region 9,990 updated, 7 whose refresh failed, 3 not reported
    const regions = ['eu-west-1', 'us-east-1'];
    const ids = Array.from({ length: 10_000 }, (_, i) => String(500_000_000_000 + i));
    const at = '2026-12-07T10:00:00.000Z';
    const accounts: Release['accounts'] = {};
    for (const region of regions) {
      ids.forEach((accountId, i) => {
        if (i >= 9_997) return;
        accounts[`${accountId}/${region}`] = {
          accountId,
          region,
          outcome: 'updated',
          launchTemplates: 1,
          updatedAt: at,
          ...(i >= 9_990 ? { instanceRefresh: 'failed' } : {}),
        };
      });
    }
    const release: Release = {
      releaseId: 'web#00000001',
      stream: 'web',
      revision: 'r1',
      sequence: 1,
      source: { bucket: 'b', key: 'streams/web/r1.tar', etag: 'e' },
      createdAt: at,
      uploadedAt: at,
      regions: Object.fromEntries(
        regions.map((r) => [
          r,
          { state: 'announced' as const, updatedAt: at, imageId: 'ami-0123456789abcdef0' },
        ]),
      ),
      accounts,
    };
    const config = parseConfig({
      homeRegion: 'eu-west-1',
      streams: { web: { regions, bootCheck: { mode: 'none', allowUnverified: true } } },
    });
    const deps = {
      config,
      releases: { list: async () => [release], get: async () => release } as unknown as ReleaseStore,
      rollouts: { get: async () => undefined, getPin: async () => undefined } as unknown as RolloutStore,
      organization: {
        listAccounts: async () => ids.map((id) => ({ id, name: id, status: 'ACTIVE' as const })),
      } as unknown as OrganizationDirectory,
      members: {
        forAccount: () => ({ listLaunchTemplates: async () => [], listAutoScalingGroups: async () => [] }),
      } as unknown as MemberAccounts,
    };
    const server = await startStatusPage(deps, '127.0.0.1:0');
    const userDataDir = await mkdtemp(join(tmpdir(), 'stemcell-chromium-'));
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const firstRender = async (url: string) => {
        const started = performance.now();
        await page.goto(url);
        await page.waitForSelector('section[data-release="web#00000001"] [data-count="updated"]', {
          timeout: 120_000,
        });
        const inPage = Number(await page.evaluate('document.body.dataset.firstRenderMs'));
        return { seen: (performance.now() - started) / 1000, inPage: inPage / 1000 };
      };
      // act
      const summarySeconds = await firstRender(server.url);
      // assess: the counts, and only the 10 accounts per region that need a look
      const counts = await page.locator('section[data-release="web#00000001"] .counts').first().textContent();
      assert.match(counts ?? '', /9990 updated/);
      assert.match(counts ?? '', /7 failed/);
      assert.match(counts ?? '', /3 pending|3 announced/);
      assert.equal(await page.locator('section[data-release="web#00000001"] .cell').count(), 20);
      assert.match((await page.locator('.hidden-accounts').first().textContent()) ?? '', /9990 more/);
      const line =
        `first render of a 10,000-account release (navigation → rendered, in the page; as the test saw it): ` +
        `${summarySeconds.inPage.toFixed(2)} s (${summarySeconds.seen.toFixed(2)} s)`;
      t.diagnostic(line);
      await mkdir(ARTIFACTS, { recursive: true });
      await writeFile(join(ARTIFACTS, 'status-page-10000.txt'), `${line}\n`);
    } finally {
      await browser.close();
      await server.close();
      await rm(userDataDir, { recursive: true, force: true });
    }
  });
});
