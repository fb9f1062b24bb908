import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/app-context.ts';
import type { FakeSlackApi } from '../support/fake-slack-api.ts';
import type { Seeded } from '../support/fixtures.ts';
import type { TestDatabase } from '../support/test-db.ts';
import {
  appPages,
  axeProblems,
  keyboardFocus,
  PROJECT,
  SNAGIT,
  shot,
  startWebBrowserWorld,
  type WebBrowserWorld,
} from '../support/web-browser-helpers.ts';
import { CHROMIUM, chromiumAvailable, type SignoffProcess } from '../support/web-harness.ts';
import type { Receiver } from '../support/webhook-receiver.ts';

/**
 * The web app in Debian's headless Chromium against Signoff started as `npm start` starts it (web and workers in
 * one process), with a local OpenID provider, the fake Slack Web API and a webhook receiver
 * (test/support/web-browser-helpers.ts starts them and has the sign-in, screenshot and axe helpers).
 * The world is shared; each test opens its own browser contexts and makes its own requests, changes and reviews
 * (Visio on a device of its own), so one test failing or timing out leaves the next unaffected.
 */

if (!chromiumAvailable)
  console.warn(`Skipping the web app browser tests: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH).`);

let w: WebBrowserWorld;
let tdb: TestDatabase;
let s: Seeded;
let ctx: AppContext;
let slack: FakeSlackApi;
let receiver: Receiver;
let signoff: SignoffProcess;

describe.skipIf(!chromiumAvailable)('the web app in Chromium', () => {
  beforeAll(async () => {
    w = await startWebBrowserWorld();
    ({ tdb, s, ctx, slack, receiver, signoff } = w);
  });

  afterAll(async () => {
    await w?.close();
  });

  // each test's own pages, closed as it ends: nothing loaded from another origin, no Content-Security-Policy complaint
  afterEach(async () => {
    const logs = await w?.closeContexts();
    if (logs) expect(logs).toEqual({ cspErrors: [], foreignRequests: [] });
  });

  it("signs a requester in through the company's OpenID provider; they ask for an app, answering its questions", async () => {
    const sessionsBefore = await w.sessionTokens();
    const c = await w.newContext();
    const bobPage = await c.newPage();
    await bobPage.goto(`${signoff.url}/app/my`);
    await bobPage.waitForURL(/\/app\/signin\?return=%2Fapp%2Fmy$/);
    await shot(bobPage, 'signin');
    await bobPage.getByRole('link', { name: 'Sign in with your company account' }).click();
    // the provider's own development login form, then its consent screen
    await bobPage.locator('input[name=login]').fill('bob');
    await bobPage.locator('input[name=password]').fill('anything');
    await bobPage.locator('button[type=submit]').click();
    await bobPage.getByRole('button', { name: 'Continue' }).click();
    await bobPage.waitForURL(`${signoff.url}/app/my`);
    await expect.poll(() => bobPage.locator('.who').textContent()).toBe('Bob User');
    expect(
      await tdb.db.one<{ signed_in_via: string }>(
        `SELECT signed_in_via FROM web_sessions WHERE identity_id = $1 AND NOT token_hash = ANY($2)`,
        [s.bob.id, sessionsBefore],
      ),
    ).toEqual({ signed_in_via: 'oidc' });

    await bobPage.getByRole('link', { name: 'Request', exact: true }).click();
    await bobPage.getByRole('link', { name: 'Visio' }).click();
    await shot(bobPage, 'request-form');
    // sent empty: the API's rules and words, next to each field
    await bobPage.getByRole('button', { name: 'Send request' }).click();
    const problems = bobPage.locator('#problems');
    await expect.poll(() => problems.textContent()).toContain('A business justification is required.');
    expect(await problems.textContent()).toContain('Please answer this question.');
    await expect.poll(() => bobPage.evaluate(() => document.activeElement?.id)).toBe('problems');
    await shot(bobPage, 'request-form-errors');
    await bobPage.getByLabel('Business justification').fill('Network diagrams for the datacenter move');
    await bobPage.getByRole('radio', { name: 'Diagrams' }).check();
    await bobPage.getByLabel('Which project is it for?').fill('DC move');
    await bobPage.getByRole('button', { name: 'Send request' }).click();
    await bobPage.waitForURL(/\/app\/requests\/[0-9a-f-]{36}\?notice=submitted$/);
    const visioRequestId = /requests\/([0-9a-f-]{36})/.exec(bobPage.url())![1]!;
    expect(await w.requestRow(visioRequestId)).toMatchObject({ status: 'pending', source: 'web' });
    expect(await bobPage.locator('main').textContent()).toContain('Which project is it for?');
    // the approvers' Slack channel gets the prompt, as for a request made in chat
    expect((await w.slackPrompt(visioRequestId)).args.text).toContain('Visio');
    await shot(bobPage, 'request-pending');
  });

  it('refuses an OpenID account that no identity is linked to', async () => {
    const sessionsBefore = await w.sessionTokens();
    const c = await w.newContext();
    const page = await c.newPage();
    await page.goto(`${signoff.url}/app/signin`);
    await page.getByRole('link', { name: 'Sign in with your company account' }).click();
    await page.locator('input[name=login]').fill('mallory');
    await page.locator('input[name=password]').fill('anything');
    await page.locator('button[type=submit]').click();
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.waitForURL(/\/app\/auth\/callback/);
    expect(await page.locator('main').textContent()).toContain('no directory identity is linked to that account');
    expect(
      await tdb.db.one<{ n: number }>(
        `SELECT count(*)::int AS n FROM web_sessions WHERE identity_id IS NOT NULL AND NOT token_hash = ANY($1)`,
        [sessionsBefore],
      ),
    ).toEqual({ n: 0 });
  });

  it("lets an approver signed in with a one-time link approve on the web; the Slack prompt and the requester's open page follow", async () => {
    const { id: visioRequestId } = await w.visioRequest('KIOSK-APPROVE', {
      justification: 'Network diagrams for the datacenter move',
      answers: { usage: 'Diagrams', project: 'DC move' },
    });
    const prompt = await w.slackPrompt(visioRequestId);
    // Bob's page is open on his request all along
    const bobPage = await (await w.newContext({ watchOrigin: true })).newPage();
    await w.signInWithLink(bobPage, 'CONTOSO\\bob');
    await bobPage.goto(`${signoff.url}/app/requests/${visioRequestId}`);
    expect(await bobPage.locator('main .badge').first().textContent()).toBe('pending');

    const c = await w.newContext({ watchOrigin: true });
    const adaPage = await c.newPage();
    await w.signInWithLink(adaPage, 'CONTOSO\\ada');
    await adaPage.getByRole('link', { name: 'Approvals' }).click();
    const card = adaPage.locator('.queue li', { hasText: 'Visio on KIOSK-APPROVE' });
    expect(await card.textContent()).toContain('Network diagrams for the datacenter move');
    expect(await card.textContent()).toContain('DC move');
    await shot(adaPage, 'approvals');
    await card.getByRole('button', { name: 'Approve' }).click();
    await adaPage.waitForURL(new RegExp(`/app/requests/${visioRequestId}\\?notice=approved$`));
    expect(await w.requestRow(visioRequestId)).toMatchObject({ status: 'approved' });
    expect(await tdb.db.one(`SELECT channel, approver_label FROM request_decisions WHERE request_id = $1`, [visioRequestId])).toEqual({
      channel: 'web',
      approver_label: 'Ada Admin',
    });

    const update = await w.until('the Slack prompt updated', async () =>
      slack
        .of('chat.update')
        .find((u) => u.args.channel === 'C0APPROVE' && u.args.ts === prompt.result?.ts && /approved/i.test(String(u.args.text))),
    );
    expect(JSON.stringify(update.args.blocks)).toContain('Ada Admin');
    expect((update.args.blocks as { type: string }[]).some((b) => b.type === 'actions')).toBe(false);
    // Bob's page, open all along, shows the outcome without a reload
    await expect.poll(() => bobPage.locator('main .badge').first().textContent()).toBe('approved');
    expect(await bobPage.locator('#live').textContent()).toContain('Page updated');
  });

  it('lets an admin redeliver a failed delivery from the Admin pages', async () => {
    // the device manager is down when the request is approved
    receiver.setHandler(() => ({ status: 500, body: 'receiver down' }));
    const { id: requestId } = await w.visioRequest('KIOSK-REDELIVER');
    await w.approve(requestId);
    const failed = await w.until('the app.install delivery to fail', async () =>
      tdb.db.maybeOne<{ id: string; message_id: string }>(
        `SELECT id, message_id FROM webhook_deliveries WHERE event_type = 'app.install' AND status = 'failed' AND strpos(body, $1) > 0`,
        [requestId],
      ),
    );
    receiver.setHandler(() => ({ status: 204 }));
    const bobPage = await (await w.newContext({ watchOrigin: true })).newPage();
    await w.signInWithLink(bobPage, 'CONTOSO\\bob');
    await bobPage.goto(`${signoff.url}/app/requests/${requestId}`);
    const adaPage = await (await w.newContext({ watchOrigin: true })).newPage();
    await w.signInWithLink(adaPage, 'CONTOSO\\ada');
    await adaPage.goto(`${signoff.url}/app/admin`);
    await adaPage.getByRole('link', { name: 'Deliveries' }).click();
    await shot(adaPage, 'admin-deliveries');
    const row = adaPage.locator('tr', { hasText: 'app.install', has: adaPage.locator(`a[href="/app/requests/${requestId}"]`) });
    await row.getByRole('button', { name: /^Redeliver app\.install to device-manager/ }).click();
    await adaPage.waitForURL(/notice=redelivered$/);
    expect(await adaPage.locator('.notice').textContent()).toContain('being sent again');
    const got = await w.until('the redelivered webhook', async () => receiver.accepted.get(failed.message_id));
    expect(got.verified).toBe(true);
    expect(got.payload.type).toBe('app.install');
    expect(got.payload.data.requestId ?? got.payload.data.request?.id ?? JSON.stringify(got.payload.data)).toContain(requestId);
    await w.until(
      'the delivery to succeed',
      async () =>
        (await tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [failed.id])).status === 'succeeded',
    );
    // Bob's request page, still open, learns without a reload that the device manager has the order
    await expect.poll(() => bobPage.locator('main').textContent()).toContain('install order received by device-manager');
    const audit = `SELECT actor_label, channel FROM audit_events WHERE action = 'webhook_delivery.redelivered' AND subject_id = $1`;
    expect(await tdb.db.one(audit, [failed.id])).toEqual({ actor_label: 'Ada Admin', channel: 'web' });
  });

  it('takes an approver through the approval flow with the keyboard alone', async () => {
    const bob = { id: s.bob.id, label: 'Bob User', channel: 'web' as const };
    const project = await ctx.requests.submit(bob, {
      applicationId: PROJECT,
      requesterId: s.bob.id,
      justification: 'Plan the move',
      answers: { usage: 'Other', project: 'DC move' },
    });
    const snagit = await ctx.requests.submit(bob, {
      applicationId: SNAGIT,
      requesterId: s.bob.id,
      justification: 'Screenshots',
      answers: { usage: 'Other', project: 'Docs' },
    });
    const c = await w.newContext({ watchOrigin: true });
    const page = await c.newPage();
    await w.signInWithLink(page, 'CONTOSO\\ada');
    await page.goto(`${signoff.url}/app/approvals`);
    const { focused, tabTo } = keyboardFocus(page);
    await page.keyboard.press('Tab');
    expect((await focused()).text).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect((await focused()).id).toBe('main');
    // oldest first: Project, then Snagit; Deny without a reason is refused and focus goes to the message
    await tabTo((f) => f.id === `reason-${snagit.id}`, 'the reason for Snagit');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await focused()).toMatchObject({ tag: 'BUTTON', value: 'deny' });
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`/app/requests/${snagit.id}/decide$`));
    await expect.poll(async () => (await focused()).id).toBe('problems');
    expect(await page.locator('#problems').textContent()).toContain('Say why (Reason) before denying');
    await tabTo((f) => f.id === `reason-${snagit.id}`, 'the reason on the request page');
    await page.keyboard.type('Use the built-in Snipping Tool');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForURL(/notice=denied$/);
    expect(await w.requestRow(snagit.id)).toMatchObject({ status: 'denied' });

    await page.goto(`${signoff.url}/app/approvals`);
    await page.keyboard.press('Tab');
    await tabTo((f) => f.id === `reason-${project.id}`, 'the reason for Project');
    await page.keyboard.press('Tab');
    expect(await focused()).toMatchObject({ tag: 'BUTTON', value: 'approve' });
    await page.keyboard.press('Enter');
    await page.waitForURL(/notice=approved$/);
    expect(await w.requestRow(project.id)).toMatchObject({ status: 'approved' });
    // the focus ring is visible on a focused control
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    expect(outline).not.toBe('none');
  });

  it('finds no serious or critical accessibility problem on any page, at 390 and 1280 px; the first page is under 100 KB', async () => {
    const pending = await w.visioRequest('KIOSK-AXE-PENDING', { justification: 'Screenshots for the manual' });
    const change = await w.scriptChange('cleanup.ps1');
    // an approved request whose install order reached the device manager, with an access review
    receiver.setHandler(() => ({ status: 204 }));
    const { id: approved } = await w.visioRequest('KIOSK-AXE-APPROVED', {
      justification: 'Network diagrams for the datacenter move',
      answers: { usage: 'Diagrams', project: 'DC move' },
    });
    await w.approve(approved);
    await w.pendingReview(approved);
    await w.until('the install order to reach the device manager', async () =>
      tdb.db.maybeOne(
        `SELECT 1 FROM webhook_deliveries WHERE event_type = 'app.install' AND status = 'succeeded' AND strpos(body, $1) > 0`,
        [approved],
      ),
    );

    // the first page a person opens, in a browser with nothing cached: everything it loads, headers included
    const signing = await w.newContext();
    await w.signInWithLink(await signing.newPage(), 'CONTOSO\\bob');
    const fresh = await w.newContext();
    await fresh.addCookies(await signing.cookies());
    const first = await fresh.newPage();
    let bytes = 0;
    const loaded: string[] = [];
    first.on('requestfinished', (r) => {
      loaded.push(r.url());
      void r.sizes().then((sz) => (bytes += sz.responseBodySize + sz.responseHeadersSize));
    });
    await first.goto(`${signoff.url}/app`);
    await first.waitForLoadState('load');
    await expect.poll(() => loaded.filter((u) => /app\.(css|js)$/.test(u)).length).toBe(2);
    await expect.poll(() => bytes).toBeGreaterThan(3000);
    console.log(`first page /app transferred ${bytes} bytes: ${loaded.join(', ')}`);
    expect(bytes).toBeGreaterThan(1000);
    expect(bytes).toBeLessThan(100 * 1024);

    const axeCtx = await w.newContext({ bypassCSP: true });
    const bobAxe = await axeCtx.newPage();
    await w.signInWithLink(bobAxe, 'CONTOSO\\bob');
    const adaCtx = await w.newContext({ bypassCSP: true });
    const adaAxe = await adaCtx.newPage();
    await w.signInWithLink(adaAxe, 'CONTOSO\\ada');
    const anonCtx = await w.newContext({ bypassCSP: true });
    const anon = await anonCtx.newPage();

    const as = { anon, bob: bobAxe, ada: adaAxe };
    const pages = appPages({ approved, pending: pending.id, change: change.id }).map(([who, name, path]) => [as[who], name, path] as const);
    const problems: string[] = [];
    for (const [page, name, path] of pages) {
      await page.goto(`${signoff.url}${path}`);
      expect(page.url(), name).toContain(path.split('?')[0]);
      await shot(page, name);
      for (const width of [390, 1280]) {
        await page.setViewportSize({ width, height: 800 });
        for (const p of await axeProblems(page)) problems.push(`${name} at ${width}px: ${p}`);
      }
      // the request form with its errors showing
      if (name === 'request-form') {
        await page.getByRole('button', { name: 'Send request' }).click();
        await page.waitForURL(/\/app\/request\//);
        for (const p of await axeProblems(page)) problems.push(`${name} with errors: ${p}`);
      }
    }
    expect(problems).toEqual([]);
    // nothing on the phone layout is wider than the screen but tables, which scroll inside their own box
    await adaAxe.setViewportSize({ width: 390, height: 844 });
    for (const [, name, path] of pages.filter(([p]) => p === adaAxe)) {
      await adaAxe.goto(`${signoff.url}${path}`);
      const overflow = await adaAxe.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, `${name} scrolls sideways at 390 px`).toBeLessThanOrEqual(0);
    }
  });

  it('shows a multi-admin change side by side and decides it with notes; an access review is kept', async () => {
    const change = await w.scriptChange('purge-temp.ps1');
    const { id: reviewed } = await w.visioRequest('KIOSK-REVIEW');
    await w.approve(reviewed);
    await w.pendingReview(reviewed);
    const c = await w.newContext({ watchOrigin: true });
    const page = await c.newPage();
    await w.signInWithLink(page, 'CONTOSO\\ada');
    await page.goto(`${signoff.url}/app/approvals`);
    const card = page.locator('.queue li', { hasText: 'script purge-temp.ps1' });
    const diff = await card.locator('table.diff').textContent();
    expect(diff).toContain('retentionDays');
    expect(diff).toContain('30');
    expect(diff).toContain('7');
    await card.getByRole('link', { name: /script purge-temp\.ps1/ }).click();
    expect(await page.getByRole('heading', { name: 'Before' }).isVisible()).toBe(true);
    expect(await page.getByRole('heading', { name: 'After' }).isVisible()).toBe(true);
    await page.getByLabel(/Approver notes/).fill('Seven days is enough');
    await page.getByRole('button', { name: 'Approve change' }).click();
    await page.waitForURL(/notice=change_approved$/);
    expect(await tdb.db.one(`SELECT status, decided_by_label, decision_notes FROM changes WHERE id = $1`, [change.id])).toEqual({
      status: 'approved',
      decided_by_label: 'Ada Admin',
      decision_notes: 'Seven days is enough',
    });

    await page.goto(`${signoff.url}/app/reviews`);
    await page.locator('.queue li', { hasText: 'Visio on KIOSK-REVIEW' }).getByRole('button', { name: 'Keep access' }).click();
    await page.waitForURL(/notice=kept$/);
    expect(await tdb.db.one(`SELECT status, decided_by_label FROM access_reviews WHERE request_id = $1`, [reviewed])).toEqual({
      status: 'kept',
      decided_by_label: 'Ada Admin',
    });
  });

  it('loaded nothing from another origin and broke no Content-Security-Policy rule', async () => {
    const pending = await w.visioRequest('KIOSK-CSP-PENDING');
    const change = await w.scriptChange('csp-check.ps1');
    const { id: approved } = await w.visioRequest('KIOSK-CSP-APPROVED');
    await w.approve(approved);
    await w.pendingReview(approved);
    // every page, as CSP applies it (no bypass), in contexts that watch what they load
    const anon = await (await w.newContext({ watchOrigin: true })).newPage();
    const bob = await (await w.newContext({ watchOrigin: true })).newPage();
    await w.signInWithLink(bob, 'CONTOSO\\bob');
    const ada = await (await w.newContext({ watchOrigin: true })).newPage();
    await w.signInWithLink(ada, 'CONTOSO\\ada');
    const as = { anon, bob, ada };
    for (const [who, name, path] of appPages({ approved, pending: pending.id, change: change.id })) {
      const page = as[who];
      await page.goto(`${signoff.url}${path}`);
      await page.waitForLoadState('load');
      expect(page.url(), name).toContain(path.split('?')[0]);
      if (name === 'request-form') {
        await page.getByRole('button', { name: 'Send request' }).click();
        await page.waitForURL(/\/app\/request\//);
      }
    }
    // Bob's open request page follows Ada's decision without a reload
    await bob.goto(`${signoff.url}/app/requests/${pending.id}`);
    await ada.goto(`${signoff.url}/app/requests/${pending.id}`);
    await ada.getByRole('button', { name: 'Approve' }).click();
    await ada.waitForURL(/notice=approved$/);
    await expect.poll(() => bob.locator('main .badge').first().textContent()).toBe('approved');

    const logs = await w.closeContexts();
    expect(logs.foreignRequests).toEqual([]);
    expect(logs.cspErrors).toEqual([]);
  });
});
