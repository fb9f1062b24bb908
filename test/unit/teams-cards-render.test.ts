import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import {
  appPickerCard,
  changeCard,
  changeFormCard,
  executeActions,
  myRequestsCard,
  noticeCard,
  requestCard,
  requestFormCard,
  reviewCard,
  welcomeCard,
  type AdaptiveCard,
} from '../../src/bots/teams/teams-cards.ts';
import type { ReviewView } from '../../src/core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../src/core/views.ts';
import { policyDefinitionSchema } from '../../src/core/policy-schema.ts';
import { markedEnv } from '../support/children.ts';
import { HANG_LIMIT_MS } from '../support/wait.ts';

/**
 * Every template in cards/ is bound with realistic data, then parsed and rendered by the `adaptivecards`
 * library in headless Chromium: no unknown elements or properties, required inputs present, and a
 * screenshot (build/teams-cards.png) to look at.
 */
const require = createRequire(import.meta.url);
// page.evaluate bodies run in Chromium; the project compiles without the DOM lib
declare const window: any;
declare const document: any;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// .ci/run installs Debian's chromium, so CI always renders; a developer machine without it gets a visible skip
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(`teams-cards-render: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); rendering skipped`);

const policy = policyDefinitionSchema.parse({
  justification: 'required',
  questions: [
    { id: 'usage', text: 'What will you use it for?', type: 'choice', options: ['Diagrams', 'Other'] },
    { id: 'ticket', text: 'Ticket number', type: 'text', required: false },
  ],
  stages: [{ approvers: ['it-approvers'] }, { approvers: ['security'], approverJustification: true }],
});
const request = (over: Partial<RequestDetail> = {}): RequestDetail => ({
  version: 1,
  id: '0f8fad5b-d9cb-469f-a165-70867728950e',
  status: 'pending',
  source: 'chat',
  application: { id: 'app', name: 'Visio' },
  requester: { id: 'u-bob', username: 'CONTOSO\\bob', displayName: 'Bob User', email: 'bob@contoso.com' },
  device: { id: 'd1', clientGuid: 'GUID:1', name: 'BOB-LAPTOP' },
  justification: 'Network diagrams for the data-centre migration',
  answers: { usage: 'Diagrams' },
  currentStage: 1,
  stageCount: 2,
  autoInstall: true,
  installOrderedAt: null,
  installDueAt: null,
  decidedAt: null,
  decidedBy: null,
  decisionReason: null,
  deadlineAt: '2026-01-19T09:00:00.000Z',
  escalated: false,
  accessExpiresAt: null,
  createdAt: '2026-01-05T09:00:00.000Z',
  updatedAt: '2026-01-05T09:00:00.000Z',
  policy,
  stages: [
    { index: 0, approverGroups: ['it-approvers'], quorum: 'any', approverJustification: false, status: 'approved', decisions: [] },
    { index: 1, approverGroups: ['security'], quorum: 'any', approverJustification: true, status: 'waiting', decisions: [] },
  ],
  decisions: [
    {
      stage: 0,
      approver: { id: 'u-ada', label: 'Ada Admin' },
      decision: 'approve',
      reason: 'Standard tool',
      channel: 'teams',
      at: '2026-01-05T10:00:00.000Z',
    },
  ],
  history: [],
  ...over,
});
const change: ChangeView = {
  id: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
  status: 'pending',
  resourceType: 'script',
  resourceId: 'cleanup.ps1',
  before: { timeout: 30 },
  after: { timeout: 60, notify: true },
  diff: [
    { path: '/timeout', op: 'replace', before: 30, after: 60 },
    { path: '/notify', op: 'add', after: true },
    { path: '/legacy', op: 'remove', before: 'x' },
  ],
  justification: 'Jobs time out on big disks',
  requester: { id: 'u-ada', label: 'Ada Admin' },
  approverGroups: ['it-approvers'],
  decidedAt: null,
  decidedBy: null,
  decisionNotes: null,
  version: 1,
  createdAt: '2026-01-05T09:00:00.000Z',
  updatedAt: '2026-01-05T09:00:00.000Z',
};

const review: ReviewView = {
  id: '9b2f3c4d-1111-4222-8333-944455556666',
  requestId: '0f8fad5b-d9cb-469f-a165-70867728950e',
  status: 'pending',
  reviewerGroups: ['it-approvers'],
  application: { id: 'app', name: 'Visio' },
  requester: { id: 'u-bob', username: 'CONTOSO\\bob', displayName: 'Bob User', email: 'bob@contoso.com' },
  device: { id: 'd1', clientGuid: 'GUID:1', name: 'BOB-LAPTOP' },
  approvedAt: '2026-01-05T10:00:00.000Z',
  approvedBy: 'Ada Admin',
  requestStatus: 'approved',
  dueAt: '2026-02-18T09:00:00.000Z',
  createdAt: '2026-02-04T09:00:00.000Z',
  decidedAt: null,
  decidedBy: null,
  reason: null,
};

const samples: { template: string; name: string; card: AdaptiveCard; requiredInputs?: string[] }[] = [
  {
    template: 'request',
    name: 'request: approver view',
    card: requestCard({ request: request(), can: { decide: true, cancel: false, installNow: false }, refreshUserIds: ['aad-1'] }),
  },
  {
    template: 'request',
    name: 'request: requester view',
    card: requestCard({
      request: request(),
      can: { decide: false, cancel: true, installNow: false },
      refreshUserIds: ['aad-1'],
      banner: { text: 'Request submitted.', tone: 'success' },
    }),
  },
  {
    template: 'request',
    name: 'request: approved, no buttons',
    card: requestCard({
      request: request({
        status: 'approved',
        decidedBy: 'Dan Security',
        decidedAt: '2026-01-06T08:00:00.000Z',
        decisionReason: 'Fine',
        installOrderedAt: '2026-01-06T08:00:00.000Z',
      }),
      can: { decide: false, cancel: false, installNow: false },
      refreshUserIds: [],
    }),
  },
  {
    template: 'request',
    name: 'request: refused self-approval',
    card: requestCard({
      request: request(),
      can: { decide: false, cancel: true, installNow: false },
      refreshUserIds: ['aad-1'],
      banner: { text: 'You cannot decide your own request.', tone: 'error' },
    }),
  },
  {
    template: 'change',
    name: 'change: approver view',
    card: changeCard({ change, can: { decide: true, cancel: false }, refreshUserIds: ['aad-1'] }),
  },
  {
    template: 'change',
    name: 'change: rejected',
    card: changeCard({
      change: {
        ...change,
        status: 'rejected',
        decidedBy: 'Cyd Approver',
        decidedAt: '2026-01-05T11:00:00.000Z',
        decisionNotes: 'Too risky',
      },
      can: { decide: false, cancel: false },
      refreshUserIds: [],
    }),
  },
  {
    template: 'request-form',
    name: 'request form with errors',
    requiredInputs: ['device', 'justification', 'q_usage'],
    card: requestFormCard({
      application: { id: 'app', name: 'Visio', description: 'Diagramming', perDevice: true },
      devices: [
        { id: 'd1', name: 'BOB-LAPTOP' },
        { id: 'd2', name: 'BOB-DESKTOP' },
      ],
      justificationMode: 'required',
      questions: policy.questions,
      values: { answers: { ticket: 'INC-1' } },
      errors: {
        summary: 'Please fix the highlighted fields.',
        justification: 'A business justification is required.',
        answers: { usage: 'Please answer this question.' },
      },
    }),
  },
  {
    template: 'app-picker',
    name: 'app picker',
    card: appPickerCard(
      [
        { id: 'a', name: 'Visio' },
        { id: 'b', name: 'Project' },
      ],
      'No application called "Viso" is in the catalog.',
    ),
    requiredInputs: ['applicationId'],
  },
  { template: 'welcome', name: 'welcome', card: welcomeCard({ name: 'Bob User', linked: true, welcome: true }) },
  {
    template: 'my-requests',
    name: 'my requests',
    card: myRequestsCard(
      [{ kind: 'request', id: 'r1', title: 'Visio', subtitle: 'BOB-LAPTOP · requested 2026-01-05', status: 'approved' }],
      [{ kind: 'change', id: 'c1', title: 'Change to script "cleanup.ps1"', subtitle: 'by Ada Admin' }],
    ),
  },
  { template: 'review', name: 'review: reviewer view', card: reviewCard({ review, can: { decide: true }, refreshUserIds: ['aad-1'] }) },
  {
    template: 'review',
    name: 'review: removed, no buttons',
    card: reviewCard({
      review: {
        ...review,
        status: 'removed',
        requestStatus: 'revoked',
        decidedAt: '2026-02-05T09:00:00.000Z',
        decidedBy: { id: 'u-cyd', label: 'Cyd Approver' },
        reason: 'Contract ended',
      },
      can: { decide: false },
      refreshUserIds: [],
    }),
  },
  {
    template: 'notice',
    name: 'notice with install now',
    card: noticeCard({ title: 'Visio approved', text: 'Dan Security approved Visio on BOB-LAPTOP.', tone: 'success', installNowId: 'r1' }),
  },
  {
    template: 'change-form',
    name: 'change form',
    card: changeFormCard({ resourceTypes: ['app', 'script'], values: {}, errors: { after: 'This is not valid JSON' } }),
    requiredInputs: ['resourceType', 'resourceId', 'after', 'justification'],
  },
];

let browser: Browser;
beforeAll(async () => {
  if (!haveChromium) return;
  browser = await chromium.launch({ executablePath: CHROMIUM, env: markedEnv(), args: ['--no-sandbox'] });
});
afterAll(() => browser?.close());

describe('Adaptive Card templates', () => {
  it('has a rendered sample for every template in cards/', () => {
    const templates = readdirSync(new URL('../../cards/', import.meta.url))
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.replace(/\.json$/, ''));
    expect([...new Set(samples.map((s) => s.template))].sort()).toEqual(templates.sort());
  });

  it.skipIf(!haveChromium)(
    'parses and renders every card with the adaptivecards library, without warnings, and screenshots them',
    async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      page.setDefaultTimeout(HANG_LIMIT_MS);
      await page.setContent(
        '<html><body style="font-family:Segoe UI,sans-serif;background:#f3f2f1"><div id="grid" style="display:grid;grid-template-columns:repeat(3,440px);gap:16px;padding:16px"></div></body></html>',
      );
      await page.addScriptTag({ path: require.resolve('adaptivecards/dist/adaptivecards.js') });
      const results = await page.evaluate(
        (cards) => {
          const AC = (window as any).AdaptiveCards;
          // a control: the same checks do flag an element the library does not know
          const control = new AC.SerializationContext();
          new AC.AdaptiveCard().parse({ type: 'AdaptiveCard', version: '1.5', body: [{ type: 'Input.Bogus', id: 'x' }] }, control);
          if (control.eventCount === 0) throw new Error('adaptivecards reported nothing for an unknown element');
          return cards.map(({ name, card }) => {
            const ac = new AC.AdaptiveCard();
            const ctx = new AC.SerializationContext();
            ac.parse(card, ctx);
            const events: string[] = [];
            for (let i = 0; i < ctx.eventCount; i++) events.push(ctx.getEventAt(i).message);
            const issues = ac.validateProperties().validationEvents.map((x: any) => x.message);
            const el = ac.render();
            const box = document.createElement('div');
            box.style.background = '#fff';
            const title = document.createElement('div');
            title.textContent = name;
            title.style.cssText = 'font-size:11px;color:#666;padding:4px 8px';
            box.append(title, el);
            document.getElementById('grid')!.appendChild(box);
            const inputs = ac.getAllInputs().map((i: any) => ({ id: i.id, required: i.isRequired }));
            return { name, events, issues, rendered: Boolean(el && el.innerHTML.length > 0), inputs, actions: ac.getAllActions().length };
          });
        },
        samples.map((s) => ({ name: s.name, card: s.card })),
      );
      for (const r of results) {
        expect({ name: r.name, events: r.events, issues: r.issues }).toEqual({ name: r.name, events: [], issues: [] });
        expect(r.rendered).toBe(true);
        const wanted = samples.find((s) => s.name === r.name)!.requiredInputs ?? [];
        for (const id of wanted) expect(r.inputs, `${r.name}: ${id}`).toContainEqual({ id, required: true });
      }
      expect(results.find((r) => r.name === 'request: approved, no buttons')!.actions).toBe(0);
      expect(results.find((r) => r.name === 'review: removed, no buttons')!.actions).toBe(0);
      expect(results.find((r) => r.name === 'review: reviewer view')!.inputs).toContainEqual({ id: 'reason', required: false });
      if (!existsSync('build')) mkdirSync('build');
      await page.screenshot({ path: 'build/teams-cards.png', fullPage: true });
      await page.close();
    },
  );

  it('puts Action.Execute where Universal Actions need it and none on decided cards', () => {
    const approver = samples[0]!.card as any;
    expect(approver.refresh.action).toMatchObject({ type: 'Action.Execute', verb: 'refresh' });
    expect(approver.refresh.userIds).toEqual(['aad-1']);
    expect(executeActions(samples[2]!.card)).toEqual([]);
    expect(executeActions(samples[5]!.card)).toEqual([]);
    for (const s of samples) expect(Number((s.card as any).version)).toBeGreaterThanOrEqual(1.5);
  });
});
