import type { Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { devicesOfUser, policyOf, requestableApplications, type ApplicationRow, type DeviceRow } from '../../core/directory.ts';
import { AppError } from '../../core/errors.ts';
import { validateSubmission, type FieldErrors } from '../../core/policy-evaluation.ts';
import type { PolicyDefinition, Question } from '../../core/policy-schema.ts';
import { html, type Html } from './html.ts';
import { csrfField, sendPage } from './layout.ts';
import { field, fields, noticeOf, signedIn, webActor, type SignedIn } from './web-access.ts';

/** Request: the catalog this person may request from, and the policy's form for one application. */

interface FormState {
  justification?: string;
  answers: Record<string, string | string[]>;
  deviceId?: string;
  errors?: FieldErrors & { device?: string; form?: string };
}

const qid = (q: Question) => `q-${q.id}`;

function questionField(q: Question, value: string | string[] | undefined, error: string | undefined): Html {
  const req = q.required ? html` <span class="req">(required)</span>` : html` <span class="opt">(optional)</span>`;
  const err = error ? html`<p class="field-error" id="${qid(q)}-error">${error}</p>` : '';
  const described = error ? html` aria-describedby="${qid(q)}-error" aria-invalid="true"` : '';
  if (q.type === 'text') {
    const v = typeof value === 'string' ? value : '';
    const long = (q.maxLength ?? 3000) > 150;
    return html`<div class="field${error ? ' has-error' : ''}"><label for="${qid(q)}">${q.text}${req}</label>${err}
      ${
        long
          ? html`<textarea id="${qid(q)}" name="${qid(q)}" rows="3"${q.required ? html` aria-required="true"` : ''}${described}>${v}</textarea>`
          : html`<input id="${qid(q)}" name="${qid(q)}" type="text" value="${v}"${q.required ? html` aria-required="true"` : ''}${described}>`
      }</div>`;
  }
  const chosen = Array.isArray(value) ? value : value ? [value] : [];
  const type = q.type === 'choice' ? 'radio' : 'checkbox';
  return html`<fieldset class="field${error ? ' has-error' : ''}" id="${qid(q)}"${described}><legend>${q.text}${req}</legend>${err}
    ${q.options!.map(
      (
        o,
        i,
      ) => html`<div class="choice"><input type="${type}" id="${qid(q)}-${i}" name="${qid(q)}" value="${o}"${chosen.includes(o) ? html` checked` : ''}>
      <label for="${qid(q)}-${i}">${o}</label></div>`,
    )}</fieldset>`;
}

function requestForm(s: SignedIn, app: ApplicationRow, policy: PolicyDefinition, devices: DeviceRow[], st: FormState): Html {
  const e = st.errors;
  const problems: { href: string; text: string }[] = [];
  if (e?.device) problems.push({ href: '#device', text: e.device });
  if (e?.justification) problems.push({ href: '#justification', text: e.justification });
  for (const q of policy.questions) if (e?.answers[q.id]) problems.push({ href: `#${qid(q)}`, text: `${q.text}: ${e.answers[q.id]}` });
  for (const u of e?.unknown ?? []) problems.push({ href: '#main', text: u });
  const deviceField = app.per_device
    ? devices.length === 0
      ? html`<div class="field has-error" id="device"><p class="field-error">${app.name} is installed per device, and no device has you as its primary user. Ask IT to register your device.</p></div>`
      : html`<fieldset class="field${e?.device ? ' has-error' : ''}" id="device"><legend>Device <span class="req">(required)</span></legend>
        ${e?.device ? html`<p class="field-error">${e.device}</p>` : ''}
        ${devices.map(
          (
            d,
            i,
          ) => html`<div class="choice"><input type="radio" id="device-${i}" name="deviceId" value="${d.id}"${st.deviceId === d.id || (devices.length === 1 && !st.deviceId) ? html` checked` : ''}>
          <label for="device-${i}">${d.name} <span class="muted">${d.client_guid}</span></label></div>`,
        )}</fieldset>`
    : '';
  const just =
    policy.justification !== 'none'
      ? html`<div class="field${e?.justification ? ' has-error' : ''}"><label for="justification">Business justification ${policy.justification === 'required' ? html`<span class="req">(required)</span>` : html`<span class="opt">(optional)</span>`}</label>
      ${e?.justification ? html`<p class="field-error" id="justification-error">${e.justification}</p>` : ''}
      <textarea id="justification" name="justification" rows="3" maxlength="2000"${policy.justification === 'required' ? html` aria-required="true"` : ''}${e?.justification ? html` aria-describedby="justification-error" aria-invalid="true"` : ''}>${st.justification ?? ''}</textarea></div>`
      : '';
  return html`
    ${
      problems.length || e?.form
        ? html`<div class="error" role="alert" tabindex="-1" id="problems"><h2>The request was not sent</h2>
      ${e?.form ? html`<p>${e.form}</p>` : ''}<ul>${problems.map((p) => html`<li><a href="${p.href}">${p.text}</a></li>`)}</ul></div>`
        : ''
    }
    ${app.description ? html`<p>${app.description}</p>` : ''}
    <p class="muted">Approval: ${policy.stages.map((st, i) => html`${i ? ', then ' : ''}${st.approvers.join(' or ')}`)}.${policy.accessLifetime ? html` Access lasts ${policy.accessLifetime.replace(/^P/, '').toLowerCase()}.` : ''}</p>
    <form method="post" action="/app/request/${encodeURIComponent(app.id)}" class="stack" novalidate>${csrfField(s)}
      ${deviceField}${just}
      ${policy.questions.map((q) => questionField(q, st.answers[q.id], e?.answers[q.id]))}
      <div class="actions"><button type="submit" class="primary">Send request</button> <a href="/app">Back to the catalog</a></div>
    </form>`;
}

async function appFor(ctx: AppContext, s: SignedIn, id: string): Promise<{ app: ApplicationRow; policy: PolicyDefinition }> {
  const app = (await requestableApplications(ctx.db, s.identity)).find((a) => a.id === id);
  // hidden, not allowed and unknown look the same: nobody learns what the catalog hides from them
  if (!app) throw new AppError('not_found', 'No application with this id is in the catalog you can request from.');
  return { app, policy: policyOf(app) };
}

export function registerRequestPages(router: Router, ctx: AppContext): void {
  router.get('/', async (req, res) => {
    const s = signedIn(res);
    const apps = await requestableApplications(ctx.db, s.identity);
    const pending = await ctx.requests.list({ requesterId: s.identity.id, status: 'pending' }, 200);
    const pendingApps = new Set(pending.items.map((r) => r.application.id));
    sendPage(res, {
      title: 'Request software',
      session: s,
      active: 'request',
      notice: noticeOf(req),
      body:
        apps.length === 0
          ? html`<p>There is nothing in the catalog you can request yet.</p>`
          : html`<ul class="cards">${apps.map(
              (a) => html`<li class="card"><h2><a href="/app/request/${encodeURIComponent(a.id)}">${a.name}</a></h2>
            ${a.description ? html`<p>${a.description}</p>` : ''}
            <p class="muted">${a.per_device ? 'Installed per device' : 'For you on every device'}${pendingApps.has(a.id) ? html` · <strong>you have a pending request</strong>` : ''}</p></li>`,
            )}</ul>`,
    });
  });

  router.get('/request/:appId', async (req, res) => {
    const s = signedIn(res);
    const { app, policy } = await appFor(ctx, s, req.params.appId!);
    const devices = app.per_device ? await devicesOfUser(ctx.db, s.identity.id) : [];
    sendPage(res, {
      title: `Request ${app.name}`,
      session: s,
      active: 'request',
      body: requestForm(s, app, policy, devices, { answers: {} }),
    });
  });

  router.post('/request/:appId', async (req, res) => {
    const s = signedIn(res);
    const { app, policy } = await appFor(ctx, s, req.params.appId!);
    const answers: Record<string, string | string[]> = {};
    for (const q of policy.questions) {
      if (q.type === 'multichoice') answers[q.id] = fields(req, qid(q));
      else {
        const v = field(req, qid(q));
        if (v !== undefined && v !== '') answers[q.id] = v;
      }
    }
    const st: FormState = { justification: field(req, 'justification'), answers, deviceId: field(req, 'deviceId') };
    try {
      const r = await ctx.requests.submit(webActor(s), {
        applicationId: app.id,
        requesterId: s.identity.id,
        deviceId: app.per_device ? st.deviceId || undefined : undefined,
        justification: st.justification ?? null,
        answers,
        source: 'web',
      });
      res.redirect(303, `/app/requests/${r.id}?notice=submitted`);
    } catch (e) {
      if (!(e instanceof AppError)) throw e;
      const fieldErrors = e.details?.fields as FieldErrors | undefined;
      const errors: FormState['errors'] = fieldErrors ? { ...fieldErrors } : { answers: {}, unknown: [] };
      if (e.details?.field === 'clientGuid') {
        errors.device = app.per_device && !st.deviceId ? 'Choose the device to install it on.' : e.message;
        // the core stops at the device; the rest of the form is checked by the same rules, so every problem shows at once
        Object.assign(errors, validateSubmission(policy, { justification: st.justification, answers }));
      } else if (!fieldErrors) errors.form = e.message;
      const devices = app.per_device ? await devicesOfUser(ctx.db, s.identity.id) : [];
      const body = requestForm(s, app, policy, devices, { ...st, errors });
      const existing =
        typeof e.details?.requestId === 'string'
          ? html`<p><a href="/app/requests/${e.details.requestId}">Open the existing request</a></p>`
          : '';
      sendPage(res, { title: `Request ${app.name}`, session: s, active: 'request', status: e.status, body: html`${body}${existing}` });
    }
  });
}
