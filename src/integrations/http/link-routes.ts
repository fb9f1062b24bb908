import express, { type Express, type Request, type Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { identityById } from '../../core/directory.ts';
import { isAppError, toAppError } from '../../core/errors.ts';
import { readableUtc } from '../../core/clock.ts';
import { peekLinkToken, useLinkToken, type LinkToken } from '../../core/link-tokens.ts';
import type { RequestDetail } from '../../core/views.ts';
import { escapeHtml } from '../email/email-templates.ts';

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">` +
  `<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>` +
  `<style>body{font:16px system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}th{text-align:left;padding-right:1rem}` +
  `button{font-size:1rem;padding:.5rem 1.5rem}textarea{width:100%}</style></head><body>${body}</body></html>`;

function sendError(res: Response, e: unknown) {
  const err = toAppError(e);
  // the request moved on while the page was open: nothing was decided and the link still works
  const again =
    err.code === 'precondition_failed'
      ? '<p>Nothing was decided. <a href="">Open the link again</a> to see the request as it is now.</p>'
      : '';
  res
    .status(err.status)
    .type('html')
    .send(page(err.title, `<h1>${escapeHtml(err.title)}</h1><p>${escapeHtml(err.message)}</p>${again}`));
}

/** What happened to the request since the mail was sent: other approvers' votes on this stage, an escalation. */
function sinceMailed(link: LinkToken, r: RequestDetail): string {
  if (link.version === null || link.version === r.version) return '';
  const mailed = new Date(link.created_at).getTime();
  const votes = (r.stages[link.stage]?.decisions ?? [])
    .filter((d) => new Date(d.at).getTime() >= mailed)
    .map((d) => `${d.approver.label} ${d.decision === 'approve' ? 'approved' : 'denied'} at ${readableUtc(new Date(d.at))}`);
  const what = [...votes, ...(r.escalated ? ['the request was escalated'] : [])];
  return `<p><strong>Since this email was sent:</strong> ${escapeHtml(what.length ? what.join('; ') : 'the request was updated')}. It is still waiting for this stage.</p>`;
}

/**
 * GET shows what the link would do and consumes nothing (mail scanners prefetch links);
 * only the POST from the confirmation form decides.
 */
export function mountLinkRoutes(app: Express, ctx: AppContext): void {
  app.get('/links/:token', async (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-store');
    try {
      const token = String(req.params.token);
      const link = await peekLinkToken(ctx.db, token, ctx.clock.now());
      const r = await ctx.requests.get(link.request_id);
      const approver = await identityById(ctx.db, link.approver_id);
      const verb = link.action === 'approve' ? 'Approve' : 'Deny';
      const rows = [
        ['Application', r.application.name],
        ['Requested by', r.requester?.displayName ?? 'device pre-approval'],
        ['Device', r.device?.name ?? '-'],
        ['Justification', r.justification ?? '-'],
        ['Status', r.status],
      ]
        .map(([k, v]) => `<tr><th>${escapeHtml(k!)}</th><td>${escapeHtml(v!)}</td></tr>`)
        .join('');
      // a deny always says why; an approval when the stage asks its approvers to justify
      const needed = link.action === 'deny' || Boolean(r.stages[link.stage]?.approverJustification);
      const reason = `<p><label>Reason${needed ? '' : ' (optional)'}<br><textarea name="reason" rows="3" maxlength="2000"${needed ? ' required' : ''}></textarea></label></p>`;
      // the form is bound to the version this page shows: anything that happens before it is sent is told, not overridden
      const version = `<input type="hidden" name="version" value="${r.version}">`;
      res
        .type('html')
        .send(
          page(
            `${verb} request`,
            `<h1>${verb} ${escapeHtml(r.application.name)}?</h1><p>Signed in as ${escapeHtml(approver?.display_name ?? '?')} through your email link.</p>` +
              sinceMailed(link, r) +
              `<table>${rows}</table><form method="post">${version}${reason}<button type="submit">${verb}</button></form>`,
          ),
        );
    } catch (e) {
      sendError(res, e);
    }
  });

  app.post('/links/:token', express.urlencoded({ extended: false, limit: '16kb' }), async (req: Request, res: Response) => {
    res.setHeader('Cache-Control', 'no-store');
    try {
      const reason = typeof req.body?.reason === 'string' && req.body.reason.trim() ? req.body.reason.trim() : null;
      // a form from before pages carried the version decides on the link's stage alone
      const version =
        typeof req.body?.version === 'string' && /^[1-9]\d{0,8}$/.test(req.body.version) ? Number(req.body.version) : undefined;
      const result = await useLinkToken(ctx.db, ctx.requests, ctx.clock, String(req.params.token), reason, { expectedVersion: version });
      const r = result.request;
      const text =
        result.outcome === 'recorded'
          ? 'Your approval is recorded; the request waits for more approvers.'
          : result.outcome === 'stage_approved'
            ? 'Your approval is recorded; the request moves to the next stage.'
            : `The request is now ${r.status}.`;
      res.type('html').send(page('Thank you', `<h1>Done</h1><p>${escapeHtml(text)}</p>`));
    } catch (e) {
      if (!isAppError(e)) ctx.logger.error({ err: e }, 'email link decision failed');
      sendError(res, e);
    }
  });
}
