import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppContext } from '../../src/app-context.ts';
import type { FakeSlackApi } from '../support/fake-slack-api.ts';
import { VISIO, type Seeded } from '../support/fixtures.ts';
import type { TestDatabase } from '../support/test-db.ts';
import { axeProblems, PROJECT, SNAGIT, shot, startWebBrowserWorld, type WebBrowserWorld } from '../support/web-browser-helpers.ts';
import { CHROMIUM, chromiumAvailable, type SignoffProcess } from '../support/web-harness.ts';
import type { Receiver } from '../support/webhook-receiver.ts';

/**
 * The web app in Debian's headless Chromium against Signoff started as `npm start` starts it (web and workers in
 * one process), with a local OpenID provider, the fake Slack Web API and a webhook receiver
 * (test/support/web-browser-helpers.ts starts them and has the sign-in, screenshot and axe helpers).
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
let bobPage: Page;
let adaPage: Page;
let visioRequestId: string;

describe.skipIf(!chromiumAvailable)('the web app in Chromium', () => {
  beforeAll(async () => {
    w = await startWebBrowserWorld();
    ({ tdb, s, ctx, slack, receiver, signoff } = w);
  });

  afterAll(async () => {
    await w?.close();
  });

  it("signs a requester in through the company's OpenID provider; they ask for an app, answering its questions", async () => {
    const c = await w.newContext();
    bobPage = await c.newPage();
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
      await tdb.db.one<{ signed_in_via: string }>(`SELECT signed_in_via FROM web_sessions WHERE identity_id = $1`, [s.bob.id]),
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
    visioRequestId = /requests\/([0-9a-f-]{36})/.exec(bobPage.url())![1]!;
    expect(await w.requestRow(visioRequestId)).toMatchObject({ status: 'pending', source: 'web' });
    expect(await bobPage.locator('main').textContent()).toContain('Which project is it for?');
    // the approvers' Slack channel gets the prompt, as for a request made in chat
    await w.until('the Slack prompt', async () =>
      slack.of('chat.postMessage').find((m) => m.args.channel === 'C0APPROVE' && String(m.args.text).includes('Visio')),
    );
    await shot(bobPage, 'request-pending');
  });

  it('refuses an OpenID account that no identity is linked to', async () => {
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
      await tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM web_sessions WHERE identity_id IS NOT NULL AND identity_id <> $1`, [
        s.bob.id,
      ]),
    ).toEqual({ n: 0 });
  });

  it("lets an approver signed in with a one-time link approve on the web; the Slack prompt and the requester's open page follow", async () => {
    const c = await w.newContext({ watchOrigin: true });
    adaPage = await c.newPage();
    await w.signInWithLink(adaPage, 'CONTOSO\\ada');
    await adaPage.getByRole('link', { name: 'Approvals' }).click();
    const card = adaPage.locator('.queue li', { hasText: 'Visio on BOB-LAPTOP' });
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
      slack.of('chat.update').find((u) => u.args.channel === 'C0APPROVE' && /approved/i.test(String(u.args.text))),
    );
    expect(JSON.stringify(update.args.blocks)).toContain('Ada Admin');
    expect((update.args.blocks as { type: string }[]).some((b) => b.type === 'actions')).toBe(false);
    // Bob's page, open all along, shows the outcome without a reload
    await expect.poll(() => bobPage.locator('main .badge').first().textContent()).toBe('approved');
    expect(await bobPage.locator('#live').textContent()).toContain('Page updated');
  });

  it('lets an admin redeliver a failed delivery from the Admin pages', async () => {
    const failed = await w.until('the app.install delivery to fail', async () =>
      tdb.db.maybeOne<{ id: string; message_id: string }>(
        `SELECT id, message_id FROM webhook_deliveries WHERE event_type = 'app.install' AND status = 'failed'`,
      ),
    );
    receiver.setHandler(() => ({ status: 204 }));
    await adaPage.goto(`${signoff.url}/app/admin`);
    await adaPage.getByRole('link', { name: 'Deliveries' }).click();
    await shot(adaPage, 'admin-deliveries');
    await adaPage.getByRole('button', { name: /^Redeliver app\.install to device-manager/ }).click();
    await adaPage.waitForURL(/notice=redelivered$/);
    expect(await adaPage.locator('.notice').textContent()).toContain('being sent again');
    const got = await w.until('the redelivered webhook', async () => receiver.accepted.get(failed.message_id));
    expect(got.verified).toBe(true);
    expect(got.payload.type).toBe('app.install');
    expect(got.payload.data.requestId ?? got.payload.data.request?.id ?? JSON.stringify(got.payload.data)).toContain(visioRequestId);
    await w.until(
      'the delivery to succeed',
      async () =>
        (await tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [failed.id])).status === 'succeeded',
    );
    // Bob's request page, still open, learns without a reload that the device manager has the order
    await expect.poll(() => bobPage.locator('main').textContent()).toContain('install order received by device-manager');
    expect(await tdb.db.one(`SELECT actor_label, channel FROM audit_events WHERE action = 'webhook_delivery.redelivered'`)).toEqual({
      actor_label: 'Ada Admin',
      channel: 'web',
    });
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
    const focused = () =>
      page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        return {
          id: el?.id ?? '',
          tag: el?.tagName ?? '',
          text: (el?.textContent ?? '').trim(),
          name: el?.getAttribute('name') ?? '',
          value: (el as HTMLButtonElement | null)?.value ?? '',
        };
      });
    await page.keyboard.press('Tab');
    expect((await focused()).text).toBe('Skip to content');
    await page.keyboard.press('Enter');
    expect((await focused()).id).toBe('main');
    const tabTo = async (match: (f: Awaited<ReturnType<typeof focused>>) => boolean, what: string) => {
      for (let i = 0; i < 80; i++) {
        await page.keyboard.press('Tab');
        if (match(await focused())) return;
      }
      throw new Error(`Tab never reached ${what}`);
    };
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
    const bob = { id: s.bob.id, label: 'Bob User', channel: 'web' as const };
    const pending = await ctx.requests.submit(bob, {
      applicationId: SNAGIT,
      requesterId: s.bob.id,
      justification: 'Screenshots for the manual',
      answers: { usage: 'Other', project: 'Docs' },
    });
    const change = await ctx.changes.submit(
      { id: s.cyd.id, label: 'Cyd Approver', channel: 'web' },
      {
        resourceType: 'script',
        resourceId: 'cleanup.ps1',
        justification: 'Shorter retention',
        before: { name: 'cleanup.ps1', schedule: 'daily', retentionDays: 30, targets: ['all'] },
        after: { name: 'cleanup.ps1', schedule: 'daily', retentionDays: 7, targets: ['all', 'servers'] },
      },
    );
    await tdb.db.query(
      `INSERT INTO access_reviews (request_id, status, due_at, reviewer_groups) VALUES ($1, 'pending', now() + interval '7 days', '{it-approvers}')`,
      [visioRequestId],
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

    const pages: [Page, string, string][] = [
      [anon, 'signin', '/app/signin'],
      [bobAxe, 'request', '/app'],
      [bobAxe, 'request-form', `/app/request/${encodeURIComponent(VISIO)}`],
      [bobAxe, 'my-requests', '/app/my'],
      [bobAxe, 'request-detail', `/app/requests/${visioRequestId}`],
      [adaAxe, 'approvals', '/app/approvals'],
      [adaAxe, 'change', `/app/changes/${change.id}`],
      [adaAxe, 'reviews', '/app/reviews'],
      [adaAxe, 'request-detail-admin', `/app/requests/${visioRequestId}`],
      [adaAxe, 'request-pending-approver', `/app/requests/${pending.id}`],
      [adaAxe, 'admin', '/app/admin'],
      [adaAxe, 'admin-deliveries', '/app/admin/deliveries?status=succeeded'],
      [adaAxe, 'admin-audit', '/app/admin/audit'],
      [adaAxe, 'admin-keys', '/app/admin/keys'],
    ];
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
    const c = await w.newContext({ watchOrigin: true });
    const page = await c.newPage();
    await w.signInWithLink(page, 'CONTOSO\\ada');
    await page.goto(`${signoff.url}/app/approvals`);
    const card = page.locator('.queue li', { hasText: 'script cleanup.ps1' });
    const diff = await card.locator('table.diff').textContent();
    expect(diff).toContain('retentionDays');
    expect(diff).toContain('30');
    expect(diff).toContain('7');
    await card.getByRole('link', { name: /script cleanup\.ps1/ }).click();
    expect(await page.getByRole('heading', { name: 'Before' }).isVisible()).toBe(true);
    expect(await page.getByRole('heading', { name: 'After' }).isVisible()).toBe(true);
    await page.getByLabel(/Approver notes/).fill('Seven days is enough');
    await page.getByRole('button', { name: 'Approve change' }).click();
    await page.waitForURL(/notice=change_approved$/);
    expect(await tdb.db.one(`SELECT status, decided_by_label, decision_notes FROM changes WHERE resource_id = 'cleanup.ps1'`)).toEqual({
      status: 'approved',
      decided_by_label: 'Ada Admin',
      decision_notes: 'Seven days is enough',
    });

    await page.goto(`${signoff.url}/app/reviews`);
    await page.getByRole('button', { name: 'Keep access' }).click();
    await page.waitForURL(/notice=kept$/);
    expect(await tdb.db.one(`SELECT status, decided_by_label FROM access_reviews WHERE request_id = $1`, [visioRequestId])).toEqual({
      status: 'kept',
      decided_by_label: 'Ada Admin',
    });
  });

  it('loaded nothing from another origin and broke no Content-Security-Policy rule', () => {
    expect(w.foreignRequests).toEqual([]);
    expect(w.cspErrors).toEqual([]);
  });
});
