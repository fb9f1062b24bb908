/**
 * Drives Microsoft 365 Agents Playground (Microsoft's Teams emulator) with Playwright: the requester asks for
 * Visio in their personal chat, fills and submits the card form; the approver clicks Approve on the prompt in
 * their own personal chat; both copies must end up in the decided state with no buttons left.
 *
 * Not part of `npm test`: it needs Signoff and two playground instances running (one per user, since a
 * playground only ever sends as its one configured user). See docs/teams-setup.md, "1a. Request and approve
 * in the playground, driven by Playwright", for the set-up. Run with
 *
 *   node bin/run-ts.mjs scripts/teams-playground-run.ts
 *
 * Environment: REQUESTER_URL (http://127.0.0.1:56150), APPROVER_URL (http://127.0.0.1:56151),
 * CHROMIUM (/usr/bin/chromium), SHOTS_DIR (a fresh directory under the OS temp dir), APP_NAME (Visio).
 * Exits 0 when every step was seen, 1 otherwise; screenshots of every step are written to SHOTS_DIR.
 */
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Locator, type Page } from 'playwright-core';

const requesterUrl = process.env.REQUESTER_URL ?? 'http://127.0.0.1:56150';
const approverUrl = process.env.APPROVER_URL ?? 'http://127.0.0.1:56151';
const appName = process.env.APP_NAME ?? 'Visio';
const shots = process.env.SHOTS_DIR ?? mkdtempSync(join(tmpdir(), 'signoff-playground-'));
mkdirSync(shots, { recursive: true });

const STEP_TIMEOUT = 20_000;
let shotNo = 0;
const shot = async (page: Page, name: string) => {
  const file = join(shots, `${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
};
const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** The last card in the open chat that contains `text` (every adaptive card is rendered under .ac-adaptiveCard). */
const lastCardWith = (page: Page, text: string | RegExp): Locator => page.locator('.ac-adaptiveCard').filter({ hasText: text }).last();

async function say(page: Page, text: string): Promise<void> {
  const box = page.locator('[data-lexical-editor="true"]');
  await box.click();
  await box.fill(text);
  await page.keyboard.press('Enter');
}

async function openPersonalChat(page: Page, url: string, who: string): Promise<void> {
  await page.goto(url);
  // the playground installs the app for its user on load; Signoff answers with the welcome card, which also
  // stores this user's personal conversation reference (where the approver's prompt will be posted later)
  await lastCardWith(page, /Welcome to Signoff|What I can do/).waitFor({ timeout: STEP_TIMEOUT });
  log(`${who}: personal chat open, welcome card shown`);
}

const buttonsOf = async (card: Locator) => (await card.locator('button').allInnerTexts()).map((t) => t.trim()).filter(Boolean);

async function main(): Promise<void> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const failures: string[] = [];
  const check = (ok: boolean, what: string) => {
    log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures.push(what);
  };
  try {
    const requester = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    const approver = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    await openPersonalChat(approver, approverUrl, 'approver');
    await openPersonalChat(requester, requesterUrl, 'requester');
    await shot(approver, 'approver-welcome');

    // 1. the requester asks for the app and gets the form
    await say(requester, `request ${appName.toLowerCase()}`);
    const form = lastCardWith(requester, 'Submit request');
    await form.waitFor({ timeout: STEP_TIMEOUT });
    await shot(requester, 'request-form');
    log('requester: request form shown');

    // 2. fill and submit: device (the playground renders a compact ChoiceSet as a Fluent combobox; Signoff
    // preselects the only device), justification, the policy's choice question (radio buttons)
    const device = form.getByRole('combobox').first();
    if ((await device.count()) && !(await device.inputValue())) {
      await device.click();
      await requester.getByRole('option').first().click();
    }
    log(`requester: device on the form is "${(await device.count()) ? await device.inputValue() : '(not per device)'}"`);
    await form.locator('textarea').first().fill('Playground run: floor plans for the new office');
    const radios = form.locator('input[type="radio"]');
    if (await radios.count()) await radios.first().check();
    await shot(requester, 'request-form-filled');
    await form.getByRole('button', { name: 'Submit request' }).click();
    // the invoke answer turns the form into the requester's copy with a "Request submitted" banner; the
    // notifier's update for request.submitted re-renders that copy, banner kept, a moment later
    const refused = requester
      .locator('.ac-adaptiveCard')
      .filter({ hasText: 'Submit request' })
      .filter({ hasText: /already|cannot|Please fix/ });
    const mine = requester
      .locator('.ac-adaptiveCard')
      .filter({ hasText: 'Waiting for approval' })
      .filter({ hasText: 'Cancel request' })
      .last();
    // whichever shows first; the other wait is left to time out quietly
    const quiet = (p: Promise<void>) =>
      p.then(
        () => true,
        () => false,
      );
    if (!(await Promise.race([quiet(mine.waitFor({ timeout: STEP_TIMEOUT })), quiet(refused.waitFor({ timeout: STEP_TIMEOUT }))]))) {
      throw new Error("neither the requester's copy nor a refused form appeared after Submit request");
    }
    if (await refused.count()) {
      await shot(requester, 'request-refused');
      throw new Error(
        `the form came back refused: "${(await refused.locator('p').nth(1).innerText()).trim()}" (start from a fresh database, see docs/teams-setup.md)`,
      );
    }
    await shot(requester, 'request-submitted');
    const mineButtons = await buttonsOf(mine);
    check(
      mineButtons.some((b) => /Cancel request/.test(b)) && !mineButtons.some((b) => /Approve|Deny/.test(b)),
      `requester's copy offers Cancel only (buttons: ${mineButtons.join(', ')})`,
    );

    // 3. the approver's prompt arrives in their personal chat (notifyApproversDirectly) through the outbox
    const prompt = lastCardWith(approver, 'Waiting for approval');
    await prompt.getByRole('button', { name: 'Approve' }).waitFor({ timeout: STEP_TIMEOUT });
    await shot(approver, 'approver-prompt');
    check(true, `approver's prompt shown with buttons: ${(await buttonsOf(prompt)).join(', ')}`);

    // 4. approve with a reason; the invoke answer replaces the card at once
    await prompt.locator('textarea, input[type="text"]:not([role="combobox"])').first().fill('Approved in the playground run');
    await prompt.getByRole('button', { name: 'Approve' }).click();
    const decided = lastCardWith(approver, /Approved by/);
    await decided.waitFor({ timeout: STEP_TIMEOUT });
    await approver.waitForTimeout(2000); // let the notifier's updateActivity land as well
    await shot(approver, 'approver-decided');
    const approverButtons = await buttonsOf(lastCardWith(approver, /Approved by/));
    check(
      approverButtons.length === 0,
      `approver's card shows the outcome with no buttons (buttons: ${approverButtons.join(', ') || 'none'})`,
    );
    check(
      (await approver.locator('.ac-adaptiveCard').filter({ hasText: 'Waiting for approval' }).count()) === 0,
      'no pending copy left in the approver chat',
    );

    // 5. the requester's copy is updated in place, and the outcome is posted to them
    const updated = lastCardWith(requester, /Approved by/);
    await updated.waitFor({ timeout: STEP_TIMEOUT }).catch(() => undefined);
    await requester.waitForTimeout(1500);
    await shot(requester, 'requester-decided');
    const stillPending = await requester.locator('.ac-adaptiveCard').filter({ hasText: 'Waiting for approval' }).count();
    check(stillPending === 0, `requester's copy no longer shows "Waiting for approval" (${stillPending} pending cards)`);
    const notice = await requester
      .locator('.ac-adaptiveCard')
      .filter({ hasText: `${appName} approved` })
      .count();
    check(notice > 0, `requester was told "${appName} approved"`);
    const reqCopyButtons = await buttonsOf(lastCardWith(requester, 'BOB-LAPTOP').filter({ hasText: /Approved by/ }));
    check(
      !reqCopyButtons.some((b) => /Cancel|Approve|Deny/.test(b)),
      `requester's copy has no Cancel/Approve/Deny left (buttons: ${reqCopyButtons.join(', ') || 'none'})`,
    );
  } catch (e) {
    failures.push((e as Error).message.split('\n')[0]!);
    log(`FAIL ${(e as Error).message.split('\n')[0]}`);
    for (const p of browser.contexts().flatMap((c) => c.pages())) await shot(p, 'failure').catch(() => undefined);
  } finally {
    await browser.close();
  }
  log(`screenshots in ${shots}`);
  if (failures.length) {
    console.error(`${failures.length} step(s) failed:\n- ${failures.join('\n- ')}`);
    process.exit(1);
  }
  log('all steps seen: request, approve, card updated in place');
}

await main();
