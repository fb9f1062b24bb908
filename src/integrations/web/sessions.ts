import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { appendAudit } from '../../core/audit-log.ts';
import { identityById, type IdentityRow } from '../../core/directory.ts';
import { parseDuration } from '../../core/durations.ts';
import { AppError } from '../../core/errors.ts';
import { deleteExpiredSessions, deleteSession, identityIsAdmin, insertSession, liveSession, touchSession } from './session-queries.ts';

/**
 * Web sessions in Postgres. The cookie holds a random token; only its SHA-256 is stored. A session exists before
 * sign-in (it carries the CSRF token and the OpenID Connect flow in progress) and is replaced, never upgraded, at
 * sign-in: a token someone planted before sign-in is worthless after it (no session fixation).
 */

export interface PendingSignin {
  state: string;
  nonce: string;
  codeVerifier: string;
  returnTo: string;
}

export interface WebSession {
  tokenHash: string;
  identity: IdentityRow | null;
  isAdmin: boolean;
  csrf: string;
  pending: PendingSignin | null;
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');
const ANONYMOUS_TTL_MS = 60 * 60 * 1000;

export const secureCookies = (ctx: AppContext) => ctx.config.PUBLIC_URL.startsWith('https://');
// the __Host- prefix makes the browser refuse the cookie unless Secure, Path=/ and no Domain: no subdomain can set it
export const cookieName = (ctx: AppContext) => (secureCookies(ctx) ? '__Host-signoff_session' : 'signoff_session');

export function readCookie(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return undefined;
}

function setCookie(ctx: AppContext, res: Response, token: string, expires: Date): void {
  const attrs = [`${cookieName(ctx)}=${token}`, 'Path=/', 'HttpOnly', 'SameSite=Lax', `Expires=${expires.toUTCString()}`];
  if (secureCookies(ctx)) attrs.push('Secure');
  res.append('Set-Cookie', attrs.join('; '));
}

function clearCookie(ctx: AppContext, res: Response): void {
  const attrs = [`${cookieName(ctx)}=`, 'Path=/', 'HttpOnly', 'SameSite=Lax', 'Max-Age=0'];
  if (secureCookies(ctx)) attrs.push('Secure');
  res.append('Set-Cookie', attrs.join('; '));
}

async function load(ctx: AppContext, token: string): Promise<WebSession | null> {
  const tokenHash = hash(token);
  const row = await liveSession<PendingSignin>(ctx.db, tokenHash);
  if (!row) return null;
  const identity = row.identity_id ? ((await identityById(ctx.db, row.identity_id)) ?? null) : null;
  if (Date.now() - new Date(row.last_seen_at).getTime() > 60_000) {
    void touchSession(ctx.db, tokenHash).catch(() => undefined);
  }
  return { tokenHash, identity, isAdmin: Boolean(row.is_admin), csrf: row.csrf_token, pending: row.pending };
}

async function create(
  ctx: AppContext,
  res: Response,
  identityId: string | null,
  via: 'oidc' | 'link' | null,
  pending: PendingSignin | null,
): Promise<WebSession> {
  const token = randomBytes(32).toString('base64url');
  const csrf = randomBytes(24).toString('base64url');
  const ttl = identityId ? parseDuration(ctx.config.WEB_SESSION_TTL) : ANONYMOUS_TTL_MS;
  const expires = new Date(Date.now() + ttl);
  await insertSession(ctx.db, { tokenHash: hash(token), identityId, csrf, pending, via, expires });
  setCookie(ctx, res, token, expires);
  // expired rows go a few at a time, so no sweeper is needed
  void deleteExpiredSessions(ctx.db).catch(() => undefined);
  const identity = identityId ? ((await identityById(ctx.db, identityId)) ?? null) : null;
  const isAdmin = identityId ? await identityIsAdmin(ctx.db, identityId) : false;
  return { tokenHash: hash(token), identity, isAdmin, csrf, pending };
}

export const sessionOf = (res: Response): WebSession | null => (res.locals.webSession as WebSession | undefined) ?? null;

/** Reads the session cookie into res.locals.webSession (or null). */
export function loadSession(ctx: AppContext) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const token = readCookie(req, cookieName(ctx));
    res.locals.webSession = token && /^[A-Za-z0-9_-]{20,100}$/.test(token) ? await load(ctx, token) : null;
    next();
  };
}

/** A session for someone not signed in yet (sign-in pages need a CSRF token); reuses the current one. */
export async function ensureSession(ctx: AppContext, res: Response): Promise<WebSession> {
  const current = sessionOf(res);
  if (current) return current;
  const s = await create(ctx, res, null, null, null);
  res.locals.webSession = s;
  return s;
}

/** Starts an OpenID Connect sign-in: a fresh pre-sign-in session holding the flow's secrets. */
export async function startPendingSignin(ctx: AppContext, res: Response, pending: PendingSignin): Promise<void> {
  const current = sessionOf(res);
  if (current) await deleteSession(ctx.db, current.tokenHash);
  res.locals.webSession = await create(ctx, res, null, null, pending);
}

/** Signs in: the old session (and its token) is deleted and a new one issued. */
export async function signIn(ctx: AppContext, res: Response, identity: IdentityRow, via: 'oidc' | 'link'): Promise<WebSession> {
  const current = sessionOf(res);
  if (current) await deleteSession(ctx.db, current.tokenHash);
  const s = await create(ctx, res, identity.id, via, null);
  res.locals.webSession = s;
  await ctx.db.tx((tx) =>
    appendAudit(tx, {
      actor: { id: identity.id, label: identity.display_name, channel: 'web' },
      action: 'web.signed_in',
      subjectType: 'identity',
      subjectId: identity.id,
      details: { via },
      at: new Date(),
    }),
  );
  return s;
}

export async function signOut(ctx: AppContext, res: Response): Promise<void> {
  const current = sessionOf(res);
  if (current) await deleteSession(ctx.db, current.tokenHash);
  clearCookie(ctx, res);
  res.locals.webSession = null;
}

/** Every POST carries the session's CSRF token in `_csrf`; anything else is refused before it does anything. */
export function requireCsrf(req: Request, res: Response): void {
  const s = sessionOf(res);
  const sent = typeof req.body?._csrf === 'string' ? req.body._csrf : '';
  const ok = s && sent.length === s.csrf.length && timingSafeEqual(Buffer.from(sent), Buffer.from(s.csrf));
  if (!ok)
    throw new AppError(
      'forbidden',
      'This form has expired or did not come from this site (CSRF check failed). Reload the page and try again.',
      { csrf: true },
    );
}
