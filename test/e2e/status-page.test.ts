// The live status page in a real browser: Debian's Chromium driven by playwright-core. A release with two waves
// goes through the whole local flow while the page is open; its cells must go pending → announced → updated
// without a reload, and a release whose canary fails shows its wave as halted. The screenshot is a test artifact
// (test-artifacts/status-page.png, not committed).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { chromium } from 'playwright-core';
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
});
