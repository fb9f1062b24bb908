import type { Request, Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { AppError } from '../../core/errors.ts';
import { peekSigninLink, useSigninLink } from '../../core/signin-links.ts';
import { html } from './html.ts';
import { csrfField, sendPage } from './layout.ts';
import type { Oidc } from './oidc.ts';
import { ensureSession, requireCsrf, sessionOf, signIn, signOut, startPendingSignin } from './sessions.ts';

/** Only a path inside the app: nobody can use the sign-in to send people elsewhere. */
export const safeReturn = (v: unknown): string =>
  typeof v === 'string' && /^\/app(\/[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$/.test(v) && !v.startsWith('/app//') ? v : '/app';

const TOKEN = /^[A-Za-z0-9_-]{20,100}$/;

export function registerAuthRoutes(router: Router, ctx: AppContext, oidc: Oidc | null): void {
  router.get('/signin', async (req, res) => {
    const s = await ensureSession(ctx, res);
    const returnTo = safeReturn(req.query.return);
    sendPage(res, {
      title: 'Sign in',
      session: s.identity ? s : null,
      active: 'signin',
      body: html`${
        oidc
          ? html`<p><a class="button primary" href="/app/auth/login?return=${encodeURIComponent(returnTo)}">Sign in with your company account</a></p>`
          : html`<p>No identity provider is configured (set <code>OIDC_ISSUER</code> and <code>OIDC_CLIENT_ID</code>).</p>`
      }
        <p>Without an identity provider, an admin prints a one-time sign-in link for you: <code>npx signoff signin-link --user 'DOMAIN\\user'</code>.</p>`,
    });
  });

  router.get('/auth/login', async (req, res) => {
    if (!oidc) throw new AppError('not_found', 'No identity provider is configured for this Signoff.');
    // already signed in: a link from elsewhere must not end the session by starting another sign-in
    if (sessionOf(res)?.identity) return void res.redirect(303, safeReturn(req.query.return));
    const { url, pending } = await oidc.start(safeReturn(req.query.return));
    await startPendingSignin(ctx, res, pending);
    res.redirect(303, url);
  });

  router.get('/auth/callback', async (req: Request, res) => {
    if (!oidc) throw new AppError('not_found', 'No identity provider is configured for this Signoff.');
    const pending = sessionOf(res)?.pending;
    if (!pending) throw new AppError('unauthenticated', 'This sign-in was not started in this browser, or it took too long. Start again.');
    if (typeof req.query.error === 'string') {
      throw new AppError(
        'unauthenticated',
        `The identity provider refused the sign-in: ${typeof req.query.error_description === 'string' ? req.query.error_description : req.query.error}.`,
      );
    }
    const callback = new URL(req.originalUrl, `${ctx.config.PUBLIC_URL.replace(/\/$/, '')}/`);
    const who = await oidc.finish(callback, pending);
    await signIn(ctx, res, who, 'oidc');
    res.redirect(303, pending.returnTo);
  });

  // GET only shows who the link is for: link scanners and previews follow GETs, so they must not spend it
  router.get('/signin/link/:token', async (req, res) => {
    const token = String(req.params.token);
    if (!TOKEN.test(token)) throw new AppError('not_found', 'This sign-in link is not valid.');
    const who = await peekSigninLink(ctx.db, token, new Date());
    const s = await ensureSession(ctx, res);
    sendPage(res, {
      title: 'Sign in',
      session: null,
      active: 'signin',
      body: html`<p>This one-time link signs you in as <strong>${who.display_name}</strong> (${who.username}).</p>
        <form method="post" action="/app/signin/link/${token}">${csrfField(s)}<button type="submit" class="primary">Sign in as ${who.display_name}</button></form>`,
    });
  });

  router.post('/signin/link/:token', async (req, res) => {
    requireCsrf(req, res);
    const token = String(req.params.token);
    if (!TOKEN.test(token)) throw new AppError('not_found', 'This sign-in link is not valid.');
    const who = await useSigninLink(ctx.db, token, new Date());
    await signIn(ctx, res, who, 'link');
    res.redirect(303, '/app?notice=signed_in');
  });

  router.post('/signout', async (req, res) => {
    requireCsrf(req, res);
    await signOut(ctx, res);
    res.redirect(303, '/app/signin');
  });
}
