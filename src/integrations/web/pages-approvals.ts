import type { Request, Response, Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { groupNamesOf } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import { recentlyDecidedIds } from '../../core/request-queries.ts';
import type { ChangeDetail, ChangeView, DiffEntry } from '../../core/views.ts';
import { badge, html, shortId, timeEl, type Html } from './html.ts';
import { csrfField, sendPage } from './layout.ts';
import { answersList, requestRows, requestTitle } from './pages-requests.ts';
import { field, noticeOf, textField, requireChangeAccess, signedIn, webActor, type SignedIn } from './web-access.ts';

/** Approvals: what waits on me (oldest first) with everything needed to decide, and multi-admin changes. */

const json = (v: unknown) => (v === undefined ? '' : JSON.stringify(v, null, 2));

/** The structural diff, before and after side by side, one row per changed path. */
export function diffTable(diff: DiffEntry[]): Html {
  if (diff.length === 0) return html`<p>No differences.</p>`;
  return html`<div class="table-wrap" tabindex="0" role="region" aria-label="Changes"><table class="diff"><caption>Changes (${diff.length})</caption><thead><tr><th scope="col">Path</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
    <tbody>${diff.map(
      (d) => html`<tr class="op-${d.op}"><th scope="row"><code>${d.path || '(whole object)'}</code> <span class="muted">${d.op}</span></th>
      <td>${d.op === 'add' ? html`<span class="muted">(none)</span>` : html`<pre>${json(d.before)}</pre>`}</td>
      <td>${d.op === 'remove' ? html`<span class="muted">(removed)</span>` : html`<pre>${json(d.after)}</pre>`}</td></tr>`,
    )}</tbody></table></div>`;
}

function changeSummary(c: ChangeView): Html {
  return html`<a href="/app/changes/${c.id}">${c.resourceType} ${c.resourceId}</a> <span class="muted">${shortId(c.id)}</span>`;
}

function changeForm(s: SignedIn, c: ChangeView): Html {
  return html`<form method="post" action="/app/changes/${c.id}/decide" class="stack">${csrfField(s)}<input type="hidden" name="version" value="${c.version}">
    <div class="field"><label for="notes-${c.id}">Approver notes <span class="opt">(required to reject)</span></label><textarea id="notes-${c.id}" name="notes" rows="2" maxlength="2000"></textarea></div>
    <div class="actions"><button type="submit" name="decision" value="approve" class="primary">Approve change</button> <button type="submit" name="decision" value="reject" class="danger">Reject change</button></div></form>`;
}

async function recentlyDecided(ctx: AppContext, s: SignedIn) {
  const groups = await groupNamesOf(ctx.db, s.identity.id);
  if (groups.length === 0) return [];
  const ids = await recentlyDecidedIds(ctx.db, groups, s.identity.id);
  return Promise.all(ids.map((id) => ctx.requests.get(id)));
}

export function registerApprovalPages(router: Router, ctx: AppContext): void {
  router.get('/approvals', async (req, res) => {
    const s = signedIn(res);
    const waiting = (await ctx.requests.list({ pendingForApproverId: s.identity.id }, 200)).items.reverse();
    const details = await Promise.all(waiting.map((r) => ctx.requests.get(r.id)));
    const changes = await ctx.changes.pendingFor(s.identity.id);
    const decided = await recentlyDecided(ctx, s);
    sendPage(res, {
      title: 'Approvals',
      session: s,
      active: 'approvals',
      watch: ['*'],
      notice: noticeOf(req),
      body: html`<section aria-labelledby="wait-h"><h2 id="wait-h">Requests waiting for you (${details.length})</h2>
        ${
          details.length === 0
            ? html`<p>Nothing waits for your decision.</p>`
            : html`<ol class="queue">${details.map(
                (r) => html`<li class="card">
          <h3><a href="/app/requests/${r.id}">${requestTitle(r)}</a></h3>
          <p>${r.requester?.displayName ?? 'a device'} · requested ${timeEl(r.createdAt)} · stage ${r.currentStage + 1} of ${r.stageCount} · due ${timeEl(r.deadlineAt)}</p>
          ${answersList(r)}
          <form method="post" action="/app/requests/${r.id}/decide" class="stack decide">${csrfField(s)}<input type="hidden" name="version" value="${r.version}"><input type="hidden" name="stage" value="${r.currentStage}">
            <div class="field"><label for="reason-${r.id}">Reason for ${requestTitle(r)} ${r.stages[r.currentStage]?.approverJustification ? html`<span class="req">(required for both)</span>` : html`<span class="opt">(required to deny)</span>`}</label>
            <textarea id="reason-${r.id}" name="reason" rows="2" maxlength="2000"></textarea></div>
            <div class="actions"><button type="submit" name="decision" value="approve" class="primary">Approve</button> <button type="submit" name="decision" value="deny" class="danger">Deny</button></div></form></li>`,
              )}</ol>`
        }</section>
        <section aria-labelledby="chg-h"><h2 id="chg-h">Changes waiting for a second admin (${changes.length})</h2>
        ${
          changes.length === 0
            ? html`<p>No change waits for you.</p>`
            : html`<ol class="queue">${changes.map(
                (c) => html`<li class="card"><h3>${changeSummary(c)}</h3>
          <p>${c.requester.label} · ${timeEl(c.createdAt)}</p><p><strong>Justification:</strong> ${c.justification}</p>${diffTable(c.diff)}${changeForm(s, c)}</li>`,
              )}</ol>`
        }</section>
        <section aria-labelledby="dec-h"><h2 id="dec-h">Decided in your groups</h2><p class="muted">Open one to revoke or reapprove it.</p>${requestRows(decided, { requester: true })}</section>`,
    });
  });

  const changePage = async (req: Request, res: Response, error?: AppError) => {
    const s = signedIn(res);
    const { change: c, approver } = await requireChangeAccess(ctx, s, String(req.params.id));
    sendPage(res, {
      title: `Change to ${c.resourceType} ${c.resourceId}`,
      session: s,
      active: 'approvals',
      watch: [c.id],
      status: error?.status,
      notice: error ? null : noticeOf(req),
      body: html`${error ? html`<div class="error" role="alert" tabindex="-1" id="problems"><p>${error.message}</p></div>` : ''}
        <p>${badge(c.status)} <span class="muted">Change ${c.id} · version ${c.version}</span></p>
        <dl class="facts"><dt>Requested by</dt><dd>${c.requester.label} ${timeEl(c.createdAt)}</dd><dt>Justification</dt><dd>${c.justification}</dd>
          <dt>Approvers</dt><dd>${c.approverGroups.join(', ')}</dd>
          ${c.decidedAt ? html`<dt>Decided</dt><dd>${c.decidedBy} ${timeEl(c.decidedAt)}${c.decisionNotes ? html` · “${c.decisionNotes}”` : ''}</dd>` : ''}</dl>
        ${diffTable(c.diff)}
        <div class="side-by-side"><section aria-labelledby="before-h"><h2 id="before-h">Before</h2><pre>${json(c.before)}</pre></section>
          <section aria-labelledby="after-h"><h2 id="after-h">After</h2><pre>${json(c.after)}</pre></section></div>
        ${c.status === 'pending' && approver && c.requester.id !== s.identity.id ? changeForm(s, c) : ''}
        <details><summary>History (${(c as ChangeDetail).history.length} events)</summary><ol class="history">${(c as ChangeDetail).history.map((h) => html`<li>${timeEl(h.at)} <strong>${h.action}</strong> by ${h.actor} via ${h.channel}</li>`)}</ol></details>`,
    });
  };

  router.get('/changes/:id', (req, res) => changePage(req, res));
  router.post('/changes/:id/decide', async (req, res) => {
    const s = signedIn(res);
    const id = String(req.params.id);
    await requireChangeAccess(ctx, s, id);
    const v = Number(field(req, 'version'));
    const opts = { expectedVersion: Number.isInteger(v) && v > 0 ? v : undefined, notesRequired: true };
    try {
      const decision = field(req, 'decision');
      if (decision === 'approve') await ctx.changes.approve(webActor(s), id, textField(req, 'notes'), opts);
      else if (decision === 'reject') await ctx.changes.reject(webActor(s), id, textField(req, 'notes'), opts);
      else throw new AppError('validation_failed', 'Choose Approve or Reject.');
      res.redirect(303, `/app/changes/${id}?notice=change_${decision === 'approve' ? 'approved' : 'rejected'}`);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      await changePage(req, res, e);
    }
  });

  router.get('/reviews', async (req, res) => {
    const s = signedIn(res);
    const reviews = (await ctx.reviews.list({ reviewerId: s.identity.id }, 200)).items.reverse();
    sendPage(res, {
      title: 'Access reviews',
      session: s,
      active: 'reviews',
      watch: ['*'],
      notice: noticeOf(req),
      body:
        reviews.length === 0
          ? html`<p>No access review waits for you.</p>`
          : html`<ol class="queue">${reviews.map(
              (v) => html`<li class="card">
        <h3><a href="/app/requests/${v.requestId}">${v.application.name}${v.device ? ` on ${v.device.name}` : ''}</a> for ${v.requester?.displayName ?? 'a device'}</h3>
        <p>Approved ${timeEl(v.approvedAt)} by ${v.approvedBy ?? '-'} · review due ${timeEl(v.dueAt)}</p>
        <form method="post" action="/app/reviews/${v.id}" class="stack">${csrfField(s)}
          <div class="field"><label for="why-${v.id}">Reason <span class="opt">(required to remove)</span></label><textarea id="why-${v.id}" name="reason" rows="2" maxlength="2000"></textarea></div>
          <div class="actions"><button type="submit" name="decision" value="keep" class="primary">Keep access</button> <button type="submit" name="decision" value="remove" class="danger">Remove access</button></div></form></li>`,
            )}</ol>`,
    });
  });

  router.post('/reviews/:id', async (req, res) => {
    const s = signedIn(res);
    const decision = field(req, 'decision');
    try {
      if (decision !== 'keep' && decision !== 'remove') throw new AppError('validation_failed', 'Choose Keep or Remove.');
      const r = await ctx.reviews.decide(webActor(s), String(req.params.id), decision, textField(req, 'reason'));
      res.redirect(303, `/app/reviews?notice=${r.status}`);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      sendPage(res, {
        title: 'Access reviews',
        session: s,
        active: 'reviews',
        status: e.status,
        body: html`<div class="error" role="alert" tabindex="-1" id="problems"><p>${e.message}</p></div><p><a href="/app/reviews">Back to the reviews</a></p>`,
      });
    }
  });
}
