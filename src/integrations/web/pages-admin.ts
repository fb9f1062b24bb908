import type { Request, Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { listApiKeys, revokeApiKey } from '../../core/api-keys.ts';
import { verifyAudit } from '../../core/audit-chain.ts';
import { latestCheckpoint, recentAuditEvents } from '../../core/audit-queries.ts';
import { deliveriesWithStatus } from '../../core/delivery-queries.ts';
import { listApplications } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import { requestStatuses, type RequestStatus } from '../../core/request-state.ts';
import { redeliver } from '../webhooks/redelivery.ts';
import { badge, html, timeEl, type Html } from './html.ts';
import { csrfField, sendPage } from './layout.ts';
import { requestRows } from './pages-requests.ts';
import { noticeOf, requireAdmin, signedIn, webActor, type SignedIn } from './web-access.ts';

/**
 * Admin: every request (filterable), failed deliveries with redelivery, the audit log's verification state,
 * webhook endpoints and API keys. Only identities with `admin: true` in the catalog open these pages.
 */

const subnav = (current: string) =>
  html`<nav aria-label="Admin" class="subnav"><ul>${[
    ['/app/admin', 'Requests'],
    ['/app/admin/deliveries', 'Deliveries'],
    ['/app/admin/audit', 'Audit log'],
    ['/app/admin/keys', 'Endpoints and API keys'],
  ].map(([href, label]) => html`<li><a href="${href}"${href === current ? html` aria-current="page"` : ''}>${label}</a></li>`)}</ul></nav>`;

const q = (req: Request, k: string) => (typeof req.query[k] === 'string' ? (req.query[k] as string).trim() : '');

function admin(res: Parameters<typeof signedIn>[0]): SignedIn {
  const s = signedIn(res);
  requireAdmin(s);
  return s;
}

export function registerAdminPages(router: Router, ctx: AppContext): void {
  router.get('/admin', async (req, res) => {
    const s = admin(res);
    const status = (requestStatuses as readonly string[]).includes(q(req, 'status')) ? (q(req, 'status') as RequestStatus) : undefined;
    const apps = await listApplications(ctx.db);
    const applicationId = apps.some((a) => a.id === q(req, 'application')) ? q(req, 'application') : undefined;
    const user = q(req, 'user') || undefined;
    const device = q(req, 'device') || undefined;
    let cursor = q(req, 'cursor') || undefined;
    let page: Awaited<ReturnType<typeof ctx.requests.list>>;
    let problem: AppError | undefined;
    try {
      page = await ctx.requests.list({ status, applicationId, username: user, clientGuid: device }, 50, cursor);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      problem = e;
      cursor = undefined;
      page = await ctx.requests.list({ status, applicationId, username: user, clientGuid: device }, 50);
    }
    const keep = new URLSearchParams(
      Object.entries({ status: status ?? '', application: applicationId ?? '', user: user ?? '', device: device ?? '' }).filter(
        ([, v]) => v,
      ),
    );
    const next = page.nextCursor ? `/app/admin?${new URLSearchParams([...keep, ['cursor', page.nextCursor]])}` : null;
    sendPage(res, {
      title: 'Admin',
      session: s,
      active: 'admin',
      watch: ['*'],
      notice: noticeOf(req),
      status: problem?.status,
      body: html`${subnav('/app/admin')}${problem ? html`<div class="error" role="alert"><p>${problem.message}</p></div>` : ''}
        <form method="get" action="/app/admin" class="filters" role="search" aria-label="Filter requests">
          <div class="field"><label for="f-status">State</label><select id="f-status" name="status"><option value="">Any</option>${requestStatuses.map((st) => html`<option value="${st}"${st === status ? html` selected` : ''}>${st}</option>`)}</select></div>
          <div class="field"><label for="f-app">Application</label><select id="f-app" name="application"><option value="">Any</option>${apps.map((a) => html`<option value="${a.id}"${a.id === applicationId ? html` selected` : ''}>${a.name}</option>`)}</select></div>
          <div class="field"><label for="f-user">User</label><input id="f-user" name="user" value="${user ?? ''}" placeholder="CONTOSO\\bob"></div>
          <div class="field"><label for="f-device">Device (client GUID)</label><input id="f-device" name="device" value="${device ?? ''}"></div>
          <div class="actions"><button type="submit">Filter</button> <a href="/app/admin">Clear</a></div></form>
        <h2>Requests</h2>${requestRows(page.items, { requester: true })}${next ? html`<p><a href="${next}">Next page</a></p>` : ''}`,
    });
  });

  router.get('/admin/deliveries', async (req, res) => {
    const s = admin(res);
    const status = ['failed', 'pending', 'succeeded'].includes(q(req, 'status')) ? q(req, 'status') : 'failed';
    const rows = await deliveriesWithStatus(ctx.db, status);
    sendPage(res, {
      title: 'Deliveries',
      session: s,
      active: 'admin',
      watch: ['delivery'],
      notice: noticeOf(req),
      body: html`${subnav('/app/admin/deliveries')}
        <p>Show: ${['failed', 'pending', 'succeeded'].map((st, i) => html`${i ? ' · ' : ''}${st === status ? html`<strong>${st}</strong>` : html`<a href="/app/admin/deliveries?status=${st}">${st}</a>`}`)}</p>
        ${
          rows.length === 0
            ? html`<p>No ${status} deliveries.</p>`
            : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Deliveries"><table><caption>${status} deliveries (newest first)</caption><thead><tr><th scope="col">Event</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead><tbody>
        ${rows.map(
          (
            d,
          ) => html`<tr><td>${d.event_type}${d.request_id ? html` <a href="/app/requests/${d.request_id}">request</a>` : ''}</td><td>${d.endpoint ?? d.connector ?? '-'}</td><td>${badge(d.status)}</td><td>${d.attempts}</td>
          <td>${d.last_status_code ?? ''} ${d.last_error ?? ''}</td><td>${timeEl(d.created_at)}</td>
          <td>${d.status !== 'pending' ? html`<form method="post" action="/app/admin/deliveries/${d.id}/redeliver">${csrfField(s)}<button type="submit">Redeliver<span class="visually-hidden"> ${d.event_type} to ${d.endpoint ?? d.connector ?? ''}</span></button></form>` : ''}</td></tr>`,
        )}</tbody></table></div>`
        }`,
    });
  });

  router.post('/admin/deliveries/:id/redeliver', async (req, res) => {
    const s = admin(res);
    await redeliver(ctx, webActor(s), String(req.params.id));
    res.redirect(303, '/app/admin/deliveries?notice=redelivered');
  });

  router.get('/admin/audit', async (req, res) => {
    const s = admin(res);
    const verification = await verifyAudit(ctx.db);
    const checkpoint = await checkpointLine(ctx);
    const recent = await recentAuditEvents(ctx.db);
    sendPage(res, {
      title: 'Audit log',
      session: s,
      active: 'admin',
      notice: noticeOf(req),
      body: html`${subnav('/app/admin/audit')}
        <section aria-labelledby="ver-h"><h2 id="ver-h">Verification</h2>${
          verification.ok
            ? html`<p class="ok">${badge('intact')} The hash chain is intact: ${verification.checked} sealed events checked${verification.unsealed ? `, ${verification.unsealed} waiting to be sealed` : ''}.</p>`
            : html`<div class="error" role="alert"><p>${badge('broken')} The chain is broken at event ${verification.firstBroken!.id}: ${verification.firstBroken!.reason}. ${verification.checked} events before it are intact.</p></div>`
        }
        ${checkpoint}</section>
        <section aria-labelledby="rec-h"><h2 id="rec-h">Latest events</h2><div class="table-wrap" tabindex="0" role="region" aria-label="Latest audit events"><table><thead><tr><th scope="col">#</th><th scope="col">When</th><th scope="col">Action</th><th scope="col">Who</th><th scope="col">Subject</th></tr></thead><tbody>
          ${recent.map(
            (
              e,
            ) => html`<tr><td>${e.id}</td><td>${timeEl(e.occurred_at)}</td><td>${e.action}</td><td>${e.actor_label} <span class="muted">via ${e.channel}</span></td>
            <td>${e.subject_type === 'request' ? html`<a href="/app/requests/${e.subject_id}">request ${e.subject_id.slice(0, 8)}</a>` : e.subject_type === 'change' ? html`<a href="/app/changes/${e.subject_id}">change ${e.subject_id.slice(0, 8)}</a>` : `${e.subject_type} ${e.subject_id.slice(0, 8)}`}</td></tr>`,
          )}</tbody></table></div></section>`,
    });
  });

  router.get('/admin/keys', async (req, res) => {
    const s = admin(res);
    const endpoints = (await ctx.catalog.list('webhooks')) as unknown as {
      id: string;
      name: string;
      url: string;
      events: string[];
      enabled: boolean;
      disabledReason: string | null;
      secretHint: string;
    }[];
    const keys = await listApiKeys(ctx.db);
    sendPage(res, {
      title: 'Endpoints and API keys',
      session: s,
      active: 'admin',
      notice: noticeOf(req),
      body: html`${subnav('/app/admin/keys')}
        <section aria-labelledby="ep-h"><h2 id="ep-h">Webhook endpoints</h2>${
          endpoints.length === 0
            ? html`<p>None. Add them under <code>webhooks:</code> in the catalog file.</p>`
            : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Webhook endpoints"><table><thead><tr><th scope="col">Name</th><th scope="col">URL</th><th scope="col">Events</th><th scope="col">State</th><th scope="col">Secret</th></tr></thead><tbody>
          ${endpoints.map((e) => html`<tr><td>${e.name}</td><td><code>${e.url}</code></td><td>${e.events.join(', ')}</td><td>${e.enabled ? badge('enabled') : html`${badge('disabled')} ${e.disabledReason ?? ''}`}</td><td>…${e.secretHint}</td></tr>`)}</tbody></table></div>`
        }</section>
        <section aria-labelledby="key-h"><h2 id="key-h">API keys</h2>${
          keys.length === 0
            ? html`<p>None. Create one with <code>npx signoff apikey create</code>.</p>`
            : html`<div class="table-wrap" tabindex="0" role="region" aria-label="API keys"><table><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Scopes</th><th scope="col">Acts as</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead><tbody>
          ${keys.map(
            (
              k,
            ) => html`<tr><td>${k.name}</td><td><code>${k.prefix}</code></td><td>${k.scopes.join(', ')}</td><td>${k.identity ?? '-'}</td><td>${timeEl(k.last_used_at)}</td>
            <td><form method="post" action="/app/admin/keys/${k.id}/revoke">${csrfField(s)}<button type="submit" class="danger">Revoke<span class="visually-hidden"> key ${k.name} (${k.prefix})</span></button></form></td></tr>`,
          )}</tbody></table></div>`
        }</section>`,
    });
  });

  router.post('/admin/keys/:id/revoke', async (req, res) => {
    const s = admin(res);
    await revokeApiKey(ctx.db, webActor(s), ctx.clock.now(), String(req.params.id));
    // this process stops accepting it now, not when the announcement arrives
    ctx.apiKeys?.forgetAll();
    res.redirect(303, '/app/admin/keys?notice=key_revoked');
  });
}

/** The latest signed checkpoint the sealer emitted (audit_checkpoints); operators keep copies elsewhere. */
async function checkpointLine(ctx: AppContext): Promise<Html> {
  const row = await latestCheckpoint(ctx.db);
  if (!row)
    return html`<p class="muted">No checkpoint yet. Set AUDIT_CHECKPOINT_KEY for periodic ones, or print one with <code>npx signoff audit checkpoint</code>, and keep it elsewhere.</p>`;
  return html`<p>Latest checkpoint ${timeEl(row.signed_at)} at sequence ${row.sequence}, head <code>${row.head_hash.slice(0, 16)}…</code>, key ${row.key_id}.</p>`;
}
