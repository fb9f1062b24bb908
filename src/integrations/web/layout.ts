import type { NextFunction, Request, Response } from 'express';
import type { AppError } from '../../core/errors.ts';
import { html, type Html } from './html.ts';
import type { WebSession } from './sessions.ts';

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

/** Every /app answer: a strict CSP (no inline code, nothing from other origins), no caching, no referrer. */
export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  // sign-in link tokens are in URLs: never hand them to anyone in a Referer
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  if (!res.getHeader('Cache-Control')) res.setHeader('Cache-Control', 'no-store');
  next();
}

export type Place = 'request' | 'my' | 'approvals' | 'reviews' | 'admin' | 'signin';

export interface PageOptions {
  title: string;
  session: WebSession | null;
  body: Html;
  active?: Place;
  status?: number;
  /** what the page shows, for live updates: request/change ids, or '*' for lists that any change may affect */
  watch?: string[];
  notice?: string | null;
}

const NAV: { place: Place; href: string; label: string; admin?: boolean }[] = [
  { place: 'request', href: '/app', label: 'Request' },
  { place: 'my', href: '/app/my', label: 'My requests' },
  { place: 'approvals', href: '/app/approvals', label: 'Approvals' },
  { place: 'reviews', href: '/app/reviews', label: 'Reviews' },
  { place: 'admin', href: '/app/admin', label: 'Admin', admin: true },
];

export function renderPage(o: PageOptions): string {
  const who = o.session?.identity;
  const nav = who
    ? html`<nav aria-label="Main"><ul>${NAV.filter((n) => !n.admin || o.session!.isAdmin).map(
        (n) => html`<li><a href="${n.href}"${n.place === o.active ? html` aria-current="page"` : ''}>${n.label}</a></li>`,
      )}</ul></nav>
      <form method="post" action="/app/signout" class="signout"><input type="hidden" name="_csrf" value="${o.session!.csrf}">
        <span class="who">${who.display_name}</span> <button type="submit" class="link">Sign out</button></form>`
    : '';
  return `<!doctype html>${
    html`<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · Signoff</title><link rel="stylesheet" href="/app/static/app.css"><script src="/app/static/app.js" defer></script></head>
<body data-watch="${(o.watch ?? []).join(' ')}"><a class="skip" href="#main">Skip to content</a>
<header class="top"><a class="brand" href="/app">Signoff</a>${nav}</header>
<main id="main" tabindex="-1"><h1>${o.title}</h1>
${o.notice ? html`<p class="notice" role="status">${o.notice}</p>` : ''}
${o.body}</main>
<div id="live" class="visually-hidden" aria-live="polite"></div>
</body></html>`.value
  }`;
}

export function sendPage(res: Response, o: PageOptions): void {
  res
    .status(o.status ?? 200)
    .type('html')
    .send(renderPage(o));
}

/** An error as a page: what happened, in the words every channel uses, and a way on. */
export function errorPage(res: Response, session: WebSession | null, e: AppError, back?: string): void {
  sendPage(res, {
    title:
      e.status === 404
        ? 'Not found'
        : e.status === 403 || e.status === 401
          ? 'Not allowed'
          : e.status === 409
            ? 'Nothing changed'
            : 'Something is not right',
    session,
    status: e.status,
    body: html`<div class="error" role="alert"><p>${e.message}</p></div>${back ? html`<p><a href="${back}">Back</a></p>` : html`<p><a href="/app">Go to the start page</a></p>`}`,
  });
}

export const csrfField = (s: WebSession) => html`<input type="hidden" name="_csrf" value="${s.csrf}">`;
