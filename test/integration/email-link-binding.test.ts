import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDomainEvent } from '../../src/core/outbox.ts';
import type { MailMessage } from '../../src/core/ports.ts';
import { EmailNotifier } from '../../src/integrations/email/email-notifier.ts';
import { mountLinkRoutes } from '../../src/integrations/http/link-routes.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

/**
 * An email link is bound to the stage it was mailed for, and its confirmation page to the version it shows: what
 * happened meanwhile is told, never overridden.
 */
let t: TestContext;
let s: Seeded;
let server: Server;
let base: string;

beforeAll(async () => {
  t = await createTestContext({ PUBLIC_URL: 'http://links.test' });
  s = await seedContoso(t.tdb.db, {
    justification: 'required',
    stages: [{ approvers: ['it-approvers'], quorum: 'all' }, { approvers: ['security'] }],
    decisionDeadline: 'P14D',
  });
  const app = express();
  mountLinkRoutes(app, t.ctx);
  server = app.listen(0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await t.close();
});

/** Mails a request's events as the email notifier does; returns the mails. */
const deliverOutbox = async (subjectId: string) => {
  const sent: MailMessage[] = [];
  const notifier = new EmailNotifier(t.ctx, { send: async (m) => void sent.push(m) });
  for (const r of await t.tdb.db.query<any>('SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq', [subjectId]))
    await notifier.handle(toDomainEvent(r));
  return sent;
};
const linkOf = (sent: MailMessage[], to: string, word: 'Approve' | 'Deny') =>
  new URL(sent.find((m) => m.to.includes(to))!.text.match(new RegExp(`${word}: (\\S+)`))![1]!).pathname;
const versionOn = (html: string) => /name="version" value="(\d+)"/.exec(html)?.[1];
const confirm = (path: string, fields: Record<string, string>) => fetch(base + path, { method: 'POST', body: new URLSearchParams(fields) });

describe('email links bound to stage and version', () => {
  it('a page opened before another approver voted refuses to decide, says what changed, and the link still works', async () => {
    const r = await t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP, justification: 'diagrams' });
    const id = r.id;
    const approve = linkOf(await deliverOutbox(id), 'ada@contoso.com', 'Approve');
    const opened = await (await fetch(base + approve)).text();
    expect(versionOn(opened)).toBe(String(r.version));
    expect(opened).not.toContain('Since this email was sent');

    // the stage needs both approvers: cyd's vote in chat changes the request while ada's page is open
    await t.ctx.requests.decide({ id: s.cyd.id, label: 'Cyd Approver', channel: 'slack' }, id, 'approve', null, { stage: 0 });
    const stale = await confirm(approve, { version: versionOn(opened)!, reason: 'fine' });
    expect(stale.status).toBe(412);
    const told = await stale.text();
    expect(told).toMatch(/changed since version \d+/);
    expect(told).toContain('Nothing was decided');
    expect((await t.ctx.requests.get(id)).decisions.map((d) => d.approver.label)).toEqual(['Cyd Approver']);

    t.clock.advance(60_000);
    const reopened = await (await fetch(base + approve)).text();
    expect(reopened).toMatch(/Since this email was sent:<\/strong> Cyd Approver approved at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(Number(versionOn(reopened))).toBeGreaterThan(r.version);
    const done = await confirm(approve, { version: versionOn(reopened)!, reason: 'fine' });
    expect(done.status).toBe(200);
    expect(await done.text()).toContain('moves to the next stage');
    expect((await t.ctx.requests.get(id)).currentStage).toBe(1);
  });

  it('a stage 1 link once stage 1 is settled says who settled it and when, offers no button and decides nothing', async () => {
    // a request of its own (on another of Bob's devices) whose first stage cyd, then ada settle after the mails went out
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ('GUID:BOB-DESKTOP', 'BOB-DESKTOP', $1)`, [
      s.bob.id,
    ]);
    const { id } = await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: 'GUID:BOB-DESKTOP',
      justification: 'diagrams',
    });
    const deny = linkOf(await deliverOutbox(id), 'cyd@contoso.com', 'Deny');
    await t.ctx.requests.decide({ id: s.cyd.id, label: 'Cyd Approver', channel: 'slack' }, id, 'approve', null, { stage: 0 });
    await t.ctx.requests.decide({ id: s.ada.id, label: 'Ada Admin', channel: 'email' }, id, 'approve', null, { stage: 0 });
    const page = await fetch(base + deny);
    expect(page.status).toBe(409);
    const html = await page.text();
    expect(html).toMatch(
      /Stage 1 of this request is already settled \(approved by Ada Admin at \d{4}-\d\d-\d\d \d\d:\d\d UTC\); it is now at stage 2/,
    );
    expect(html).not.toContain('<form');
    const post = await confirm(deny, { reason: 'too late' });
    expect(post.status).toBe(409);
    expect(await post.text()).toContain('Stage 1 of this request is already settled');
    const after = await t.ctx.requests.get(id);
    expect(after).toMatchObject({ status: 'pending', currentStage: 1 });
    expect(after.decisions).toHaveLength(2);
  });
});
