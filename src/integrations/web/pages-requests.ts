import type { Request, Response, Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { latestOrderDelivery, requestDeliveries } from '../../core/delivery-queries.ts';
import { AppError } from '../../core/errors.ts';
import type { RequestDetail, RequestView } from '../../core/views.ts';
import { badge, html, shortId, timeEl, when_, type Html } from './html.ts';
import { csrfField, sendPage } from './layout.ts';
import { messagesSentFor } from './web-queries.ts';
import { field, noticeOf, textField, requireRequestAccess, signedIn, webActor, type SignedIn } from './web-access.ts';

/** My requests, one request's page (state, stages, decisions, install state) and every action on a request. */

export const requestTitle = (r: RequestView) => `${r.application.name}${r.device ? ` on ${r.device.name}` : ''}`;

export function installState(r: RequestView): string {
  if (r.status === 'revoked' && r.installOrderedAt) return 'uninstall ordered';
  if (r.installOrderedAt) return `install ordered`;
  if (r.installDueAt) return 'install waits for the install window';
  return r.status === 'approved' ? 'no install ordered' : '-';
}

export function requestRows(rows: RequestView[], opts: { requester?: boolean; cancelAs?: SignedIn } = {}): Html {
  if (rows.length === 0) return html`<p>None.</p>`;
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label="Requests"><table><thead><tr><th scope="col">Application</th>${opts.requester ? html`<th scope="col">Requester</th>` : ''}<th scope="col">Status</th><th scope="col" class="wide">Stage</th><th scope="col">Requested</th><th scope="col" class="wide">Decided by</th><th scope="col" class="wide">Install</th>${opts.cancelAs ? html`<th scope="col"><span class="visually-hidden">Action</span></th>` : ''}</tr></thead>
    <tbody>${rows.map(
      (r) => html`<tr><td><a href="/app/requests/${r.id}">${requestTitle(r)}</a> <span class="muted">${shortId(r.id)}</span></td>
      ${opts.requester ? html`<td>${r.requester?.displayName ?? 'a device'}</td>` : ''}
      <td>${badge(r.status)}</td><td class="wide">${r.currentStage + 1} of ${r.stageCount}</td><td>${timeEl(r.createdAt)}</td><td class="wide">${r.decidedBy ?? '-'}</td><td class="wide">${installState(r)}</td>${opts.cancelAs ? html`<td>${r.status === 'pending' ? html`<form method="post" action="/app/requests/${r.id}/cancel">${csrfField(opts.cancelAs)}<input type="hidden" name="version" value="${r.version}"><button type="submit">Cancel<span class="visually-hidden"> the request for ${requestTitle(r)}</span></button></form>` : ''}</td>` : ''}</tr>`,
    )}</tbody></table></div>`;
}

export function answersList(r: RequestDetail): Html {
  const qs = r.policy.questions;
  const entries = Object.entries(r.answers ?? {});
  return html`<dl class="facts">
    <dt>Justification</dt><dd>${r.justification ?? '-'}</dd>
    ${entries.map(([k, v]) => html`<dt>${qs.find((q) => q.id === k)?.text ?? k}</dt><dd>${Array.isArray(v) ? v.join(', ') : String(v)}</dd>`)}</dl>`;
}

function stagesTable(r: RequestDetail): Html {
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label="Approval stages"><table><caption>Approval stages</caption><thead><tr><th scope="col">Stage</th><th scope="col">Approvers</th><th scope="col">Status</th><th scope="col">Decisions</th></tr></thead>
    <tbody>${r.stages.map(
      (
        st,
      ) => html`<tr><td>${st.index + 1}</td><td>${st.approverGroups.join(', ')} <span class="muted">(${st.quorum === 'any' ? 'any one' : st.quorum === 'all' ? 'all' : `${st.quorum} of them`})</span></td>
      <td>${badge(st.status)}</td><td>${st.decisions.length === 0 ? '-' : html`<ul class="plain">${st.decisions.map((d) => html`<li>${d.approver.label}: <strong>${d.decision === 'approve' ? 'approved' : 'denied'}</strong> ${timeEl(d.at)} via ${d.channel}${d.reason ? html` · “${d.reason}”` : ''}</li>`)}</ul>`}</td></tr>`,
    )}</tbody></table></div>`;
}

function historyList(r: RequestDetail): Html {
  return html`<details><summary>History (${r.history.length} events)</summary><ol class="history">${r.history.map(
    (h) => html`<li>${timeEl(h.at)} <strong>${h.action}</strong> by ${h.actor} via ${h.channel}</li>`,
  )}</ol></details>`;
}

function actions(s: SignedIn, r: RequestDetail, approver: boolean): Html {
  const base = `/app/requests/${r.id}`;
  const version = html`<input type="hidden" name="version" value="${r.version}">`;
  const out: Html[] = [];
  if (r.status === 'pending' && r.requester?.id === s.identity.id) {
    out.push(
      html`<form method="post" action="${base}/cancel" class="inline">${csrfField(s)}${version}<button type="submit">Cancel this request</button></form>`,
    );
  }
  if (approver && r.requester?.id !== s.identity.id) {
    const stage = r.stages[r.currentStage];
    if (r.status === 'pending') {
      const needs = stage?.approverJustification;
      out.push(html`<form method="post" action="${base}/decide" class="stack decide">${csrfField(s)}${version}
        <input type="hidden" name="stage" value="${r.currentStage}">
        <div class="field"><label for="reason-${r.id}">Reason ${needs ? html`<span class="req">(required for both)</span>` : html`<span class="opt">(required to deny)</span>`}</label>
        <textarea id="reason-${r.id}" name="reason" rows="2" maxlength="2000"></textarea></div>
        <div class="actions"><button type="submit" name="decision" value="approve" class="primary">Approve</button>
        <button type="submit" name="decision" value="deny" class="danger">Deny</button></div></form>`);
    } else if (r.status === 'approved' || r.status === 'denied' || r.status === 'revoked') {
      const verb = r.status === 'approved' ? 'revoke' : 'reapprove';
      out.push(html`<form method="post" action="${base}/${verb}" class="stack">${csrfField(s)}${version}
        <div class="field"><label for="reason-${r.id}">Reason <span class="req">(required; the requester is told)</span></label>
        <textarea id="reason-${r.id}" name="reason" rows="2" maxlength="2000"></textarea></div>
        <div class="actions"><button type="submit" class="${verb === 'revoke' ? 'danger' : 'primary'}">${verb === 'revoke' ? 'Revoke' : 'Reapprove'}</button></div></form>`);
    }
  }
  return out.length ? html`<section aria-labelledby="act-h"><h2 id="act-h">Actions</h2>${out}</section>` : html``;
}

async function adminSections(ctx: AppContext, r: RequestDetail): Promise<Html> {
  const messages = await messagesSentFor(ctx.db, 'request', r.id);
  const deliveries = await requestDeliveries(ctx.db, r.id);
  return html`<section aria-labelledby="msg-h"><h2 id="msg-h">Messages sent</h2>${
    messages.length === 0
      ? html`<p>None.</p>`
      : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Messages sent"><table><thead><tr><th scope="col">Where</th><th scope="col">What</th><th scope="col">Sent</th><th scope="col">Last updated</th></tr></thead><tbody>
      ${messages.map((m) => html`<tr><td>${m.platform} ${m.conversation_id}</td><td>${m.purpose}${m.stage !== null ? ` (stage ${m.stage + 1})` : ''}</td><td>${timeEl(m.created_at)}</td><td>${timeEl(m.updated_at)}</td></tr>`)}</tbody></table></div>`
  }</section>
    <section aria-labelledby="del-h"><h2 id="del-h">Deliveries</h2>${
      deliveries.length === 0
        ? html`<p>None.</p>`
        : html`<div class="table-wrap" tabindex="0" role="region" aria-label="Deliveries"><table><thead><tr><th scope="col">Event</th><th scope="col">To</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Created</th></tr></thead><tbody>
      ${deliveries.map((d) => html`<tr><td>${d.event_type}</td><td>${d.endpoint ?? d.connector ?? '-'}</td><td>${badge(d.status)}${d.last_error ? html` <span class="muted">${d.last_error}</span>` : ''}</td><td>${d.attempts}</td><td>${timeEl(d.created_at)}</td></tr>`)}</tbody></table></div>`
    }
      <p><a href="/app/admin/deliveries">All deliveries</a></p></section>`;
}

/** What the device manager was told, once its webhook or connector answered: the latest install/uninstall order. */
async function orderState(ctx: AppContext, id: string): Promise<string | null> {
  const row = await latestOrderDelivery(ctx.db, id);
  if (!row) return null;
  const what = row.event_type === 'app.install' ? 'install order' : 'uninstall order';
  if (row.status === 'succeeded') return `${what} received by ${row.to_name ?? 'the device manager'} ${when_(row.completed_at)}`;
  if (row.status === 'failed') return `${what} not delivered to ${row.to_name ?? 'the device manager'} yet (IT can send it again)`;
  return `${what} being sent to ${row.to_name ?? 'the device manager'}`;
}

export async function requestPage(ctx: AppContext, req: Request, res: Response, error?: AppError): Promise<void> {
  const s = signedIn(res);
  const { request: r, approver } = await requireRequestAccess(ctx, s, String(req.params.id));
  const delivered = r.installOrderedAt ? await orderState(ctx, r.id) : null;
  sendPage(res, {
    title: requestTitle(r),
    session: s,
    active: r.requester?.id === s.identity.id ? 'my' : 'approvals',
    watch: [r.id, ...(r.installOrderedAt ? ['delivery'] : [])],
    notice: error ? null : noticeOf(req),
    status: error?.status,
    body: html`${error ? html`<div class="error" role="alert" tabindex="-1" id="problems"><p>${error.message}</p></div>` : ''}
      <p>${badge(r.status)} <span class="muted">Request ${r.id} · version ${r.version}</span></p>
      <dl class="facts"><dt>Requester</dt><dd>${r.requester ? `${r.requester.displayName} (${r.requester.username})` : 'a device (machine pre-approval)'}</dd>
        <dt>Device</dt><dd>${r.device ? `${r.device.name} (${r.device.clientGuid})` : '-'}</dd>
        <dt>Requested</dt><dd>${timeEl(r.createdAt)} via ${r.source}</dd>
        ${r.status === 'pending' ? html`<dt>Decision due</dt><dd>${timeEl(r.deadlineAt)}${r.escalated ? ' (escalated)' : ''}</dd>` : html`<dt>Decided</dt><dd>${r.decidedBy ?? '-'} ${timeEl(r.decidedAt)}${r.decisionReason ? html` · “${r.decisionReason}”` : ''}</dd>`}
        <dt>Install</dt><dd>${installState(r)}${delivered ? html`; ${delivered}` : ''}</dd>
        ${r.accessExpiresAt ? html`<dt>Access until</dt><dd>${timeEl(r.accessExpiresAt)}</dd>` : ''}</dl>
      ${answersList(r)}
      ${actions(s, r, approver)}
      ${stagesTable(r)}
      ${historyList(r)}
      ${s.isAdmin ? await adminSections(ctx, r) : ''}`,
  });
}

const outcomeNotice: Record<string, string> = {
  recorded: 'recorded',
  stage_approved: 'stage_approved',
  approved: 'approved',
  denied: 'denied',
  revoked: 'revoked',
  reapproved: 'reapproved',
};

export function registerRequestDetailPages(router: Router, ctx: AppContext): void {
  router.get('/my', async (req, res) => {
    const s = signedIn(res);
    const page = await ctx.requests.list({ requesterId: s.identity.id }, 100);
    sendPage(res, {
      title: 'My requests',
      session: s,
      active: 'my',
      watch: ['*'],
      notice: noticeOf(req),
      body: requestRows(page.items, { cancelAs: s }),
    });
  });

  router.get('/requests/:id', (req, res) => requestPage(ctx, req, res));

  const version = (req: Request) => {
    const v = Number(field(req, 'version'));
    return Number.isInteger(v) && v > 0 ? v : undefined;
  };

  /** Runs an action; a refusal shows the request again with the reason, in the core's words. */
  const act = (fn: (s: SignedIn, id: string, req: Request) => Promise<string>) => async (req: Request, res: Response) => {
    const s = signedIn(res);
    const id = String(req.params.id);
    await requireRequestAccess(ctx, s, id);
    try {
      const notice = await fn(s, id, req);
      res.redirect(303, `/app/requests/${id}?notice=${notice}`);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      await requestPage(ctx, req, res, e);
    }
  };

  router.post(
    '/requests/:id/cancel',
    act(async (s, id, req) => {
      await ctx.requests.cancel(webActor(s), id, null, { expectedVersion: version(req) });
      return 'cancelled';
    }),
  );
  router.post(
    '/requests/:id/decide',
    act(async (s, id, req) => {
      const decision = field(req, 'decision');
      if (decision !== 'approve' && decision !== 'deny') throw new AppError('validation_failed', 'Choose Approve or Deny.');
      const stage = Number(field(req, 'stage'));
      const result = await ctx.requests.decide(webActor(s), id, decision, textField(req, 'reason'), {
        expectedVersion: version(req),
        stage: Number.isInteger(stage) && stage >= 0 ? stage : undefined,
        denyNeedsReason: true,
      });
      return outcomeNotice[result.outcome]!;
    }),
  );
  router.post(
    '/requests/:id/revoke',
    act(async (s, id, req) => {
      await ctx.requests.revoke(webActor(s), id, field(req, 'reason'), { expectedVersion: version(req) });
      return 'revoked';
    }),
  );
  router.post(
    '/requests/:id/reapprove',
    act(async (s, id, req) => {
      await ctx.requests.reapprove(webActor(s), id, field(req, 'reason'), { expectedVersion: version(req) });
      return 'reapproved';
    }),
  );
}
