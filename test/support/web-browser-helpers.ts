/// <reference lib="dom" />
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { AppContext } from '../../src/app-context.ts';
import { buildContext } from '../../src/build-context.ts';
import { loadConfig } from '../../src/config.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import type { ChangeView, RequestView } from '../../src/core/views.ts';
import { createLogger } from '../../src/logger.ts';
import { FakeSlackApi, type SlackCall } from './fake-slack-api.ts';
import { defaultPolicy, seedContoso, VISIO, type Seeded } from './fixtures.ts';
import { runCli } from './run-cli.ts';
import { createTestDatabase, testQueuePrefix, type TestDatabase } from './test-db.ts';
import { HANG_LIMIT_MS } from './wait.ts';
import { freePort } from './ports.ts';
import { ARTIFACTS, launchChromium, startOidcProvider, startSignoff, type SignoffProcess } from './web-harness.ts';
import { startReceiver, type Receiver } from './webhook-receiver.ts';

/**
 * What web-browser.test.ts drives the web app with: Signoff started as `npm start` starts it (web and workers in one
 * process) with a local OpenID provider, the fake Slack Web API, a webhook receiver and headless Chromium; signing in
 * with a one-time link; screenshots at phone and desktop width; axe-core's serious and critical findings; what each
 * test needs of its own (a request on a device no other test uses, an approval, a change, an access review).
 */

const SLACK_SECRET = 'web-browser-signing-secret';
export const PROJECT = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_0000000a-0000-4000-8000-00000000p001';
export const SNAGIT = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_0000000a-0000-4000-8000-00000000s001';
const policy = {
  ...defaultPolicy,
  questions: [
    { id: 'usage', text: 'What will you use it for?', type: 'choice' as const, options: ['Diagrams', 'Other'] },
    { id: 'project', text: 'Which project is it for?', type: 'text' as const, minLength: 3 },
  ],
};

export interface WebBrowserWorld {
  tdb: TestDatabase;
  s: Seeded;
  /** Signoff's services on the same database and queues, to set up requests and changes directly */
  ctx: AppContext;
  slack: FakeSlackApi;
  /** answers 500 at first; a test that needs its deliveries to fail or to succeed sets the handler itself */
  receiver: Receiver;
  signoff: SignoffProcess;
  /** Waits for a condition, polling: the server, its workers and Slack meet through Postgres and Redis. */
  until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs?: number): Promise<T>;
  newContext(opts?: { bypassCSP?: boolean; watchOrigin?: boolean }): Promise<BrowserContext>;
  /** Closes every context opened since the last call and says what their pages logged (each test checks its own). */
  closeContexts(): Promise<PageLogs>;
  /** a one-time sign-in link from the CLI, followed and confirmed on `page` */
  signInWithLink(page: Page, username: string): Promise<void>;
  requestRow(id: string): Promise<{ status: string; source: string; current_stage: number }>;
  /** the approvers' Slack prompt for a request, once posted */
  slackPrompt(requestId: string): Promise<SlackCall>;
  /** the web sessions that exist now, so a test can tell the one its own sign-in made */
  sessionTokens(): Promise<string[]>;
  /** Bob asks for Visio on a new device of that name (nobody's primary device, so Bob's own form still offers only his laptop). */
  visioRequest(device: string, fields?: { justification?: string; answers?: Record<string, unknown> }): Promise<RequestView>;
  /** Ada approves a request, through the service as the web app would. */
  approve(requestId: string): Promise<void>;
  /** Cyd asks to shorten a script's retention from 30 to 7 days and add a target. */
  scriptChange(resourceId: string): Promise<ChangeView>;
  /** An access review of an approved request, due in a week, for it-approvers. */
  pendingReview(requestId: string): Promise<void>;
  close(): Promise<void>;
}

export interface PageLogs {
  /** Content-Security-Policy complaints from the pages' consoles */
  cspErrors: string[];
  /** what a context opened with `watchOrigin` loaded from another origin */
  foreignRequests: string[];
}

export async function startWebBrowserWorld(): Promise<WebBrowserWorld> {
  // what is started is stopped in reverse, also when starting fails part-way
  const stops: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
  };
  try {
    const tdb = await createTestDatabase({ poolSize: 5 });
    stops.push(() => tdb.drop());
    const s = await seedContoso(tdb.db, policy);
    await tdb.db.query(`UPDATE identities SET is_admin = true WHERE id = $1`, [s.ada.id]);
    // Bob signs in with the company account whose UPN is linked to him; nobody is matched by name
    await tdb.db.query(`UPDATE identities SET upn = 'bob@contoso.com' WHERE id = $1`, [s.bob.id]);
    const policyId = (await tdb.db.one<{ policy_id: string }>('SELECT policy_id FROM applications WHERE id = $1', [VISIO])).policy_id;
    await tdb.db.query(
      `INSERT INTO applications (id, name, per_device, policy_id) VALUES ($1, 'Project', false, $3), ($2, 'Snagit', false, $3)`,
      [PROJECT, SNAGIT, policyId],
    );
    await createApiKey(tdb.db, 'cm-connector', ['requests:read', 'requests:write']);
    const slack = await new FakeSlackApi().start();
    stops.push(() => slack.stop());
    const receiver = await startReceiver({ path: '/hooks' });
    stops.push(() => receiver.close());
    receiver.setHandler(() => ({ status: 500, body: 'receiver down' }));
    await tdb.db.query(
      `INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('device-manager', $1, $2, '{app.install,request.approved}')`,
      [receiver.url, receiver.secret],
    );

    const queuePrefix = testQueuePrefix();
    const ctx = buildContext({
      config: loadConfig({
        NODE_ENV: 'test',
        DATABASE_URL: tdb.url,
        QUEUE_PREFIX: queuePrefix,
        LOG_LEVEL: 'silent',
        WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      }),
      db: tdb.db,
      logger: createLogger('silent'),
    });
    // the provider must know Signoff's redirect URI before Signoff starts, so the port is chosen first
    const env = {
      DATABASE_URL: tdb.url,
      QUEUE_PREFIX: queuePrefix,
      SLACK_SIGNING_SECRET: SLACK_SECRET,
      SLACK_BOT_TOKEN: 'xoxb-web',
      SLACK_API_URL: slack.url,
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      WEBHOOK_MAX_ATTEMPTS: '1',
      OUTBOX_RECONCILE_MS: '1000',
    };
    const port = await freePort();
    const oidc = await startOidcProvider(`http://localhost:${port}/app/auth/callback`, {
      bob: { preferred_username: 'bob@contoso.com', name: 'Bob User' },
      mallory: { preferred_username: 'mallory@fabrikam.com' },
    });
    stops.push(() => oidc.stop());
    const signoff = await startSignoff(
      { ...env, OIDC_ISSUER: oidc.issuer, OIDC_CLIENT_ID: oidc.clientId, OIDC_CLIENT_SECRET: oidc.clientSecret },
      port,
    );
    stops.push(() => signoff.stop());
    const browser: Browser = await launchChromium();
    stops.push(() => browser.close());
    let contexts: { c: BrowserContext; logs: PageLogs }[] = [];
    const closeContexts = async (): Promise<PageLogs> => {
      const closing = contexts;
      contexts = [];
      for (const { c } of closing) await c.close().catch(() => undefined);
      return {
        cspErrors: closing.flatMap(({ logs }) => logs.cspErrors),
        foreignRequests: closing.flatMap(({ logs }) => logs.foreignRequests),
      };
    };
    stops.push(closeContexts);
    const until: WebBrowserWorld['until'] = async (what, fn, timeoutMs = HANG_LIMIT_MS) => {
      const started = Date.now();
      for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() - started > timeoutMs) {
          const calls = slack.calls.map((c) => `${c.method} ${c.args.channel ?? ''} ${String(c.args.text ?? '').slice(0, 120)}`).join('\n');
          throw new Error(`hung: waited ${timeoutMs / 1000} s for ${what}\nSlack calls:\n${calls}\n${signoff.output().slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const web = (who: { id: string }, label: string) => ({ id: who.id, label, channel: 'web' as const });

    return {
      tdb,
      s,
      ctx,
      slack,
      receiver,
      signoff,
      until,
      async newContext(opts = {}) {
        const c = await browser.newContext({ bypassCSP: opts.bypassCSP ?? false, viewport: { width: 1280, height: 800 } });
        const logs: PageLogs = { cspErrors: [], foreignRequests: [] };
        const { cspErrors, foreignRequests } = logs;
        contexts.push({ c, logs });
        // Playwright's 30 s action and navigation defaults would be speed assertions on a busy machine
        c.setDefaultTimeout(HANG_LIMIT_MS);
        c.on('console', (m) => {
          if (/Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text());
        });
        if (opts.watchOrigin)
          c.on('request', (r) => {
            if (new URL(r.url()).origin !== new URL(signoff.url).origin) foreignRequests.push(r.url());
          });
        return c;
      },
      closeContexts,
      async signInWithLink(page, username) {
        const r = await runCli(tdb.url, ['signin-link', '--user', username], { PUBLIC_URL: signoff.url });
        expect(r.code, r.stderr).toBe(0);
        const url = r.stdout.trim().split('\n').at(-1)!;
        expect(url).toMatch(new RegExp(`^${signoff.url}/app/signin/link/[A-Za-z0-9_-]{40,}$`));
        await page.goto(url);
        await page.getByRole('button', { name: /^Sign in as / }).click();
        await page.waitForURL(/\/app\?notice=signed_in$/);
      },
      requestRow: (id) =>
        tdb.db.one<{ status: string; source: string; current_stage: number }>(
          'SELECT status, source, current_stage FROM requests WHERE id = $1',
          [id],
        ),
      slackPrompt: (requestId) =>
        until('the Slack prompt', async () =>
          slack
            .of('chat.postMessage')
            .find((m) => m.args.channel === 'C0APPROVE' && JSON.stringify(m.args.blocks).includes(requestId) && m.result?.ts),
        ),
      sessionTokens: async () =>
        (await tdb.db.query<{ token_hash: string }>('SELECT token_hash FROM web_sessions')).map((r) => r.token_hash),
      async visioRequest(device, fields = {}) {
        const clientGuid = `GUID:${randomUUID().toUpperCase()}`;
        await tdb.db.query('INSERT INTO devices (client_guid, name) VALUES ($1, $2)', [clientGuid, device]);
        return ctx.requests.submit(web(s.bob, 'Bob User'), {
          applicationId: VISIO,
          requesterId: s.bob.id,
          clientGuid,
          justification: fields.justification ?? 'Diagrams',
          answers: fields.answers ?? { usage: 'Other', project: 'Docs' },
        });
      },
      async approve(requestId) {
        await ctx.requests.decide(web(s.ada, 'Ada Admin'), requestId, 'approve');
      },
      scriptChange: (resourceId) =>
        ctx.changes.submit(web(s.cyd, 'Cyd Approver'), {
          resourceType: 'script',
          resourceId,
          justification: 'Shorter retention',
          before: { name: resourceId, schedule: 'daily', retentionDays: 30, targets: ['all'] },
          after: { name: resourceId, schedule: 'daily', retentionDays: 7, targets: ['all', 'servers'] },
        }),
      async pendingReview(requestId) {
        await tdb.db.query(
          `INSERT INTO access_reviews (request_id, status, due_at, reviewer_groups) VALUES ($1, 'pending', now() + interval '7 days', '{it-approvers}')`,
          [requestId],
        );
      },
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}

/** Full-page screenshots at phone and desktop width into test-artifacts/, for people to look at. */
export async function shot(page: Page, name: string): Promise<void> {
  for (const width of [390, 1280]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 800 });
    await page.screenshot({ path: `${ARTIFACTS}/web-${name}-${width}.png`, fullPage: true });
  }
  await page.setViewportSize({ width: 1280, height: 800 });
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core's serious and critical findings on the page as it is now (the context must bypass CSP to inject it). */
export async function axeProblems(page: Page): Promise<string[]> {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => {
    const r = await (
      window as unknown as {
        axe: {
          run(
            ctx: Document,
            o: unknown,
          ): Promise<{ violations: { id: string; impact: string; help: string; nodes: { target: string[] }[] }[] }>;
        };
      }
    ).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 3),
    }));
  });
  return result
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.targets.join(', ')}`);
}

/** Every page of the web app as [who is signed in, screenshot name, path], for the accessibility and CSP sweeps. */
export function appPages(ids: { approved: string; pending: string; change: string }): ['anon' | 'bob' | 'ada', string, string][] {
  return [
    ['anon', 'signin', '/app/signin'],
    ['bob', 'request', '/app'],
    ['bob', 'request-form', `/app/request/${encodeURIComponent(VISIO)}`],
    ['bob', 'my-requests', '/app/my'],
    ['bob', 'request-detail', `/app/requests/${ids.approved}`],
    ['ada', 'approvals', '/app/approvals'],
    ['ada', 'change', `/app/changes/${ids.change}`],
    ['ada', 'reviews', '/app/reviews'],
    ['ada', 'request-detail-admin', `/app/requests/${ids.approved}`],
    ['ada', 'request-pending-approver', `/app/requests/${ids.pending}`],
    ['ada', 'admin', '/app/admin'],
    ['ada', 'admin-deliveries', '/app/admin/deliveries?status=succeeded'],
    ['ada', 'admin-audit', '/app/admin/audit'],
    ['ada', 'admin-keys', '/app/admin/keys'],
  ];
}

/** What has the keyboard focus on `page`, and Tab pressed until something matching has it. */
export function keyboardFocus(page: Page) {
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
  const tabTo = async (match: (f: Awaited<ReturnType<typeof focused>>) => boolean, what: string) => {
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press('Tab');
      if (match(await focused())) return;
    }
    throw new Error(`Tab never reached ${what}`);
  };
  return { focused, tabTo };
}
