import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cliActor } from '../../src/core/catalog-service.ts';
import { identityById } from '../../src/core/directory.ts';
import { createSigninLink } from '../../src/core/signin-links.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { mountWebApp, type WebApp } from '../../src/integrations/web/index.ts';
import { BOB_LAPTOP, defaultPolicy, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { csrfOf, mainText, WebClient } from '../support/web-client.ts';

/**
 * What the web app refuses: forms without the session's CSRF token, a session token planted before sign-in, a
 * sign-in link used twice, opening someone else's request by id, and deciding outside one's approver groups.
 */

let t: TestContext;
let s: Seeded;
let server: RunningServer;
let web: WebApp;
let base: string;

beforeAll(async () => {
  t = await createTestContext();
  // two stages: IT first, then security; Dan (security) may open these requests but not decide IT's stage
  s = await seedContoso(t.tdb.db, {
    ...defaultPolicy,
    stages: [
      { approvers: ['it-approvers'], quorum: 'any', approverJustification: false },
      { approvers: ['security'], quorum: 'any', approverJustification: false },
    ],
  });
  await t.tdb.db.query('UPDATE identities SET is_admin = true WHERE id = $1', [s.ada.id]);
  const app = createHttpApp(t.ctx, {
    mount: (a) => {
      web = mountWebApp(a, t.ctx);
    },
  });
  server = await startHttpServer(app, 0, { host: '127.0.0.1' });
  base = `http://127.0.0.1:${server.port}`;
});
afterAll(async () => {
  await web?.stop();
  await server?.close();
  await t?.close();
});

const linkFor = async (who: { id: string }, opts: { ttlMs?: number; at?: Date } = {}) => {
  const identity = (await identityById(t.tdb.db, who.id))!;
  const { token } = await createSigninLink(t.tdb.db, cliActor, identity, opts.at ?? new Date(), opts.ttlMs ?? 15 * 60_000);
  return `${base}/app/signin/link/${token}`;
};

const signedIn = async (who: { id: string }) => {
  const c = new WebClient(base);
  const r = await c.signInWithLink(await linkFor(who));
  expect(r.status).toBe(303);
  return c;
};

const submitAsBob = async () =>
  t.ctx.requests.submit(
    { id: s.bob.id, label: 'Bob User', channel: 'web' },
    {
      applicationId: VISIO,
      requesterId: s.bob.id,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams for the audit',
      answers: { usage: 'Diagrams' },
      source: 'web',
    },
  );

const statusOf = async (id: string) =>
  await t.tdb.db.one<{ status: string; current_stage: number }>('SELECT status, current_stage FROM requests WHERE id = $1', [id]);

describe('web app refusals', () => {
  it('sends people who are not signed in to the sign-in page, and refuses their forms', async () => {
    const c = new WebClient(base);
    const r = await c.get('/app/my');
    expect(r.status).toBe(303);
    expect(r.location).toBe('/app/signin?return=%2Fapp%2Fmy');
    const post = await c.post('/app/requests/00000000-0000-4000-8000-000000000000/cancel', { _csrf: 'x' });
    expect(post.status).toBe(401);
    expect(mainText(post.text)).toContain('sign in again');
  });

  it('answers a form body that is not what its Content-Encoding says with a 400 page, not a failure of ours', async () => {
    const errors: unknown[] = [];
    const spy = vi.spyOn(t.ctx.logger, 'error').mockImplementation((...args: unknown[]) => void errors.push(args));
    try {
      for (const encoding of ['gzip', 'deflate']) {
        const res = await fetch(`${base}/app/signin/link/abc`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': encoding },
          body: 'a=b',
        });
        expect(res.status, encoding).toBe(400);
        expect(mainText(await res.text())).toContain('Content-Encoding');
      }
    } finally {
      spy.mockRestore();
    }
    expect(errors).toEqual([]);
  });

  it("refuses a form without the session's CSRF token, or with a wrong or another session's token, and changes nothing", async () => {
    const request = await submitAsBob();
    const bob = await signedIn(s.bob);
    const ada = await signedIn(s.ada);
    const adasToken = csrfOf((await ada.get('/app')).text);
    for (const form of [{}, { _csrf: 'not-the-token' }, { _csrf: adasToken }] as Record<string, string>[]) {
      const r = await bob.post(`/app/requests/${request.id}/cancel`, form);
      expect(r.status).toBe(403);
      expect(mainText(r.text)).toContain('CSRF check failed');
    }
    expect((await statusOf(request.id)).status).toBe('pending');
    // My requests offers Cancel for a pending request; with the session's token it cancels
    const mine = await bob.get('/app/my');
    expect(mine.text).toContain(`action="/app/requests/${request.id}/cancel"`);
    const ok = await bob.post(`/app/requests/${request.id}/cancel`, { _csrf: csrfOf(mine.text) });
    expect(ok.status).toBe(303);
    expect((await statusOf(request.id)).status).toBe('cancelled');
  });

  it('issues a new session at sign-in: a session token planted before sign-in signs nobody in', async () => {
    const attacker = new WebClient(base);
    const url = await linkFor(s.bob);
    const path = new URL(url).pathname;
    const page = await attacker.get(path);
    expect(page.status).toBe(200);
    const planted = [...attacker.cookies][0]!;
    // the victim's browser carries the attacker's cookie and signs in with it
    const victim = new WebClient(base);
    victim.cookies.set(planted[0], planted[1]);
    const r = await victim.post(path, { _csrf: csrfOf(page.text) });
    expect(r.status).toBe(303);
    expect(victim.cookies.get(planted[0])).not.toBe(planted[1]);
    expect(mainText((await victim.get('/app/my')).text)).not.toContain('Sign in');
    const again = await attacker.get('/app/my');
    expect(again.status).toBe(303);
    expect(again.location).toMatch(/^\/app\/signin/);
    expect(
      await t.tdb.db.one<{ n: number }>("SELECT count(*)::int AS n FROM web_sessions WHERE token_hash = encode(sha256($1::bytea), 'hex')", [
        planted[1],
      ]),
    ).toEqual({ n: 0 });
  });

  it('refuses a sign-in link the second time, and an expired one', async () => {
    const url = await linkFor(s.bob);
    const first = new WebClient(base);
    expect((await first.signInWithLink(url)).status).toBe(303);
    const thief = new WebClient(base);
    const peek = await thief.get(new URL(url).pathname);
    expect(peek.status).toBe(409);
    expect(mainText(peek.text)).toContain('already used');
    // a session and token of the thief's own, from another link's confirmation page
    const form = await thief.get(new URL(await linkFor(s.dan)).pathname);
    const use = await thief.post(new URL(url).pathname, { _csrf: csrfOf(form.text) });
    expect(use.status).toBe(409);
    expect((await thief.get('/app/my')).status).toBe(303);

    const expired = await linkFor(s.bob, { at: new Date(Date.now() - 3600_000), ttlMs: 60_000 });
    const late = new WebClient(base);
    const r = await late.get(new URL(expired).pathname);
    expect(r.status).toBe(409);
    expect(mainText(r.text)).toContain('expired');
    // a CSRF failure spends nothing: the link still works afterwards
    const fresh = await linkFor(s.bob);
    const c = new WebClient(base);
    await c.get(new URL(fresh).pathname);
    expect((await c.post(new URL(fresh).pathname, {})).status).toBe(403);
    expect((await c.signInWithLink(fresh)).status).toBe(303);
  });

  it('does not show a request to someone who is neither its requester, nor its approver, nor an admin', async () => {
    const request = await submitAsBob();
    // Cyd is an IT approver: she may open it; Dan's security group approves the second stage, so he may too
    const stranger = await t.tdb.db.one<{ id: string }>(
      `INSERT INTO identities (username, display_name) VALUES ('CONTOSO\\eve', 'Eve Other') RETURNING id`,
    );
    const eve = await signedIn(stranger);
    const r = await eve.get(`/app/requests/${request.id}`);
    expect(r.status).toBe(404);
    const missing = await eve.get('/app/requests/00000000-0000-4000-8000-000000000000');
    // the same answer as for an id that does not exist: ids cannot be probed
    expect(mainText(r.text).replace(request.id, 'ID')).toBe(mainText(missing.text).replace('00000000-0000-4000-8000-000000000000', 'ID'));
    const token = csrfOf((await eve.get('/app')).text);
    expect((await eve.post(`/app/requests/${request.id}/cancel`, { _csrf: token })).status).toBe(404);
    expect((await eve.post(`/app/requests/${request.id}/decide`, { _csrf: token, decision: 'approve' })).status).toBe(404);
    expect((await eve.get('/app/admin')).status).toBe(403);
    expect((await statusOf(request.id)).status).toBe('pending');
    const ada = await signedIn(s.ada);
    expect((await ada.get(`/app/requests/${request.id}`)).status).toBe(200);
    await t.ctx.requests.cancel({ id: s.bob.id, label: 'Bob User', channel: 'web' }, request.id);
  });

  it("refuses an approver deciding a stage outside their groups; the stage's own approvers decide", async () => {
    const request = await submitAsBob();
    const dan = await signedIn(s.dan);
    const page = await dan.get(`/app/requests/${request.id}`);
    expect(page.status).toBe(200);
    const r = await dan.post(`/app/requests/${request.id}/decide`, { _csrf: csrfOf(page.text), decision: 'approve', stage: '0' });
    expect(r.status).toBe(403);
    expect(mainText(r.text)).toContain('Only members of it-approvers can decide this stage (stage 1)');
    expect(await statusOf(request.id)).toEqual({ status: 'pending', current_stage: 0 });
    expect(
      await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM request_decisions WHERE request_id = $1', [request.id]),
    ).toEqual({ n: 0 });

    const ada = await signedIn(s.ada);
    const adaPage = await ada.get(`/app/requests/${request.id}`);
    const stage1 = await ada.post(`/app/requests/${request.id}/decide`, { _csrf: csrfOf(adaPage.text), decision: 'approve', stage: '0' });
    expect(stage1.status).toBe(303);
    expect(stage1.location).toBe(`/app/requests/${request.id}?notice=stage_approved`);
    const stage2 = await dan.post(`/app/requests/${request.id}/decide`, {
      _csrf: csrfOf((await dan.get(`/app/requests/${request.id}`)).text),
      decision: 'approve',
      stage: '1',
    });
    expect(stage2.status).toBe(303);
    expect((await statusOf(request.id)).status).toBe('approved');
    const decisions = await t.tdb.db.query<{ channel: string }>('SELECT channel FROM request_decisions WHERE request_id = $1', [
      request.id,
    ]);
    expect(decisions.map((d) => d.channel)).toEqual(['web', 'web']);
    // Bob sees his request but no Revoke, and the core refuses the form posted anyway
    const bob = await signedIn(s.bob);
    const own = await bob.get(`/app/requests/${request.id}`);
    expect(mainText(own.text)).not.toContain('Revoke');
    const revoke = await bob.post(`/app/requests/${request.id}/revoke`, { _csrf: csrfOf(own.text), reason: 'mine' });
    expect(revoke.status).toBe(403);
    expect((await statusOf(request.id)).status).toBe('approved');
  });

  it("shows the catalog as chat does: hidden-until-approved applications and guests' rules apply, on the list and by URL", async () => {
    const policyId = (await t.tdb.db.one<{ policy_id: string }>('SELECT policy_id FROM applications WHERE id = $1', [VISIO])).policy_id;
    await t.tdb.db.query(
      `INSERT INTO applications (id, name, per_device, visibility, policy_id) VALUES ('app-secret', 'Secret Tool', false, 'hidden-until-approved', $1)`,
      [policyId],
    );
    const bob = await signedIn(s.bob);
    const list = mainText((await bob.get('/app')).text);
    expect(list).toContain('Visio');
    expect(list).not.toContain('Secret Tool');
    expect((await bob.get('/app/request/app-secret')).status).toBe(404);
    const token = csrfOf((await bob.get('/app')).text);
    expect((await bob.post('/app/request/app-secret', { _csrf: token, justification: 'x', 'q-usage': 'Other' })).status).toBe(404);
    expect(await t.tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM requests WHERE application_id = 'app-secret'`)).toEqual({
      n: 0,
    });

    const guest = await t.tdb.db.one<{ id: string }>(
      `INSERT INTO identities (username, display_name, is_guest) VALUES ('guest@fabrikam.com', 'Gus Guest', true) RETURNING id`,
    );
    const gus = await signedIn(guest);
    expect(mainText((await gus.get('/app')).text)).toContain('There is nothing in the catalog you can request yet.');
    expect((await gus.get(`/app/request/${encodeURIComponent(VISIO)}`)).status).toBe(404);
  });

  it('escapes what people typed wherever it is shown', async () => {
    const policyId = (await t.tdb.db.one<{ policy_id: string }>('SELECT policy_id FROM applications WHERE id = $1', [VISIO])).policy_id;
    await t.tdb.db.query(`INSERT INTO applications (id, name, per_device, policy_id) VALUES ('app-notes', 'Notes', false, $1)`, [policyId]);
    const bob = await signedIn(s.bob);
    const form = await bob.get('/app/request/app-notes');
    const sent = await bob.post('/app/request/app-notes', {
      _csrf: csrfOf(form.text),
      justification: '<script>alert(1)</script> & "quotes"',
      'q-usage': 'Diagrams',
    });
    expect(sent.status).toBe(303);
    const page = await bob.get(sent.location!);
    expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;');
    expect(page.text).not.toContain('<script>alert(1)');
    const id = /requests\/([0-9a-f-]{36})/.exec(sent.location!)![1]!;
    expect(
      await t.tdb.db.one<{ source: string; justification: string }>('SELECT source, justification FROM requests WHERE id = $1', [id]),
    ).toEqual({ source: 'web', justification: '<script>alert(1)</script> & "quotes"' });
    await t.ctx.requests.cancel({ id: s.bob.id, label: 'Bob User', channel: 'web' }, id);
  });

  it('sets the session cookie HttpOnly and SameSite, and Secure with the __Host- prefix when PUBLIC_URL is https', async () => {
    const cookieOf = async (origin: string) => {
      const res = await fetch(`${origin}${new URL(await linkFor(s.bob)).pathname}`, { redirect: 'manual' });
      await res.text();
      return res.headers.getSetCookie().join('\n');
    };
    const plain = await cookieOf(base);
    expect(plain).toMatch(/^signoff_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Expires=/);
    expect(plain).not.toContain('Secure');
    const httpsCtx = { ...t.ctx, config: { ...t.ctx.config, PUBLIC_URL: 'https://signoff.contoso.com' } };
    let httpsWeb: WebApp | undefined;
    const httpsServer = await startHttpServer(
      createHttpApp(httpsCtx, {
        mount: (a) => {
          httpsWeb = mountWebApp(a, httpsCtx);
        },
      }),
      0,
      { host: '127.0.0.1' },
    );
    try {
      const secure = await cookieOf(`http://127.0.0.1:${httpsServer.port}`);
      expect(secure).toMatch(/^__Host-signoff_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Expires=[^;]+; Secure$/);
    } finally {
      await httpsWeb?.stop();
      await httpsServer.close();
    }
  });

  it('answers every page with a strict Content-Security-Policy and no-store', async () => {
    const ada = await signedIn(s.ada);
    for (const path of [
      '/app',
      '/app/my',
      '/app/approvals',
      '/app/reviews',
      '/app/admin',
      '/app/admin/deliveries',
      '/app/admin/audit',
      '/app/admin/keys',
      '/app/signin',
    ]) {
      const res = await fetch(`${base}${path}`, {
        headers: { cookie: [...ada.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
        redirect: 'manual',
      });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(res.headers.get('cache-control')).toBe('no-store');
      const text = await res.text();
      expect(text, path).not.toMatch(/<script(?![^>]*src="\/app\/static\/app\.js")/);
      expect(text, path).not.toMatch(/ style=|https?:\/\//);
    }
  });
});
