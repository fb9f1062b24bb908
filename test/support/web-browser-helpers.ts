/// <reference lib="dom" />
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { expect } from 'vitest';
import type { AppContext } from '../../src/app-context.ts';
import { buildContext } from '../../src/build-context.ts';
import { loadConfig } from '../../src/config.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createLogger } from '../../src/logger.ts';
import { FakeSlackApi } from './fake-slack-api.ts';
import { defaultPolicy, seedContoso, VISIO, type Seeded } from './fixtures.ts';
import { runCli } from './run-cli.ts';
import { createTestDatabase, testQueuePrefix, type TestDatabase } from './test-db.ts';
import { HANG_LIMIT_MS } from './wait.ts';
import { ARTIFACTS, freePort, launchChromium, startOidcProvider, startSignoff, type SignoffProcess } from './web-harness.ts';
import { startReceiver, type Receiver } from './webhook-receiver.ts';

/**
 * What web-browser.test.ts drives the web app with: Signoff started as `npm start` starts it (web and workers in one
 * process) with a local OpenID provider, the fake Slack Web API, a webhook receiver and headless Chromium; signing in
 * with a one-time link; screenshots at phone and desktop width; axe-core's serious and critical findings.
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
  /** answers 500 until a test says otherwise, so the first deliveries fail */
  receiver: Receiver;
  signoff: SignoffProcess;
  /** Content-Security-Policy complaints from any page's console */
  cspErrors: string[];
  /** what a context opened with `watchOrigin` loaded from another origin */
  foreignRequests: string[];
  /** Waits for a condition, polling: the server, its workers and Slack meet through Postgres and Redis. */
  until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs?: number): Promise<T>;
  newContext(opts?: { bypassCSP?: boolean; watchOrigin?: boolean }): Promise<BrowserContext>;
  /** a one-time sign-in link from the CLI, followed and confirmed on `page` */
  signInWithLink(page: Page, username: string): Promise<void>;
  requestRow(id: string): Promise<{ status: string; source: string; current_stage: number }>;
  close(): Promise<void>;
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
    const contexts: BrowserContext[] = [];
    stops.push(async () => {
      for (const c of contexts) await c.close().catch(() => undefined);
    });
    const cspErrors: string[] = [];
    const foreignRequests: string[] = [];

    return {
      tdb,
      s,
      ctx,
      slack,
      receiver,
      signoff,
      cspErrors,
      foreignRequests,
      async until(what, fn, timeoutMs = HANG_LIMIT_MS) {
        const started = Date.now();
        for (;;) {
          const v = await fn();
          if (v) return v;
          if (Date.now() - started > timeoutMs) {
            const calls = slack.calls
              .map((c) => `${c.method} ${c.args.channel ?? ''} ${String(c.args.text ?? '').slice(0, 120)}`)
              .join('\n');
            throw new Error(`hung: waited ${timeoutMs / 1000} s for ${what}\nSlack calls:\n${calls}\n${signoff.output().slice(-3000)}`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      },
      async newContext(opts = {}) {
        const c = await browser.newContext({ bypassCSP: opts.bypassCSP ?? false, viewport: { width: 1280, height: 800 } });
        contexts.push(c);
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
