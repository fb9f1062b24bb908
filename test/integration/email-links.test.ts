import express from 'express';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDomainEvent } from '../../src/core/outbox.ts';
import type { MailMessage } from '../../src/core/ports.ts';
import { EmailNotifier } from '../../src/integrations/email/email-notifier.ts';
import { mountLinkRoutes } from '../../src/integrations/http/link-routes.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let s: Seeded;
let server: Server;
let base: string;
const sent: MailMessage[] = [];

beforeAll(async () => {
  t = await createTestContext({ PUBLIC_URL: 'http://links.test' });
  s = await seedContoso(t.tdb.db);
  const app = express();
  mountLinkRoutes(app, t.ctx);
  server = app.listen(0);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.close();
  await t.close();
});

const notifier = () => new EmailNotifier(t.ctx, { send: async (m) => void sent.push(m) });
const deliverOutbox = async (subjectId: string) => {
  const rows = await t.tdb.db.query<any>('SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq', [subjectId]);
  for (const r of rows) await notifier().handle(toDomainEvent(r));
};
const linkOf = (m: MailMessage, word: 'Approve' | 'Deny') => new URL(m.text.match(new RegExp(`${word}: (\\S+)`))![1]!).pathname;

/** bob's Visio request (his open one set aside first), its approvers mailed; the mail sent is in `sent` alone. */
async function mailedRequest(justification: string): Promise<{ id: string }> {
  await t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
  sent.length = 0;
  const r = await t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification,
    answers: { usage: 'Diagrams' },
  });
  await deliverOutbox(r.id);
  return r;
}

describe('email approve/deny links', () => {
  it('mails each approver personal one-time links and the shared mailbox none', async () => {
    const r = await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'Diagrams for the audit',
      answers: { usage: 'Diagrams' },
    });
    await deliverOutbox(r.id);
    await deliverOutbox(r.id); // a retried job sends nothing twice
    const toAda = sent.find((m) => m.to.includes('ada@contoso.com'))!;
    expect(toAda.subject).toBe('Approve Visio for Bob User?');
    expect(toAda.text).toContain('Justification: Diagrams for the audit');
    expect(sent.filter((m) => m.to.includes('ada@contoso.com'))).toHaveLength(1);
    expect(sent.find((m) => m.to.includes('it-approvers@contoso.com'))!.text).not.toContain('/links/');
    // the request's web page is where Revoke and Reapprove are offered once it is decided
    expect(toAda.text).toContain(`/app/requests/${r.id}`);
    expect(toAda.html).toContain('Revoke or Reapprove');
    expect(sent.some((m) => m.to.includes('bob@contoso.com'))).toBe(false);

    // GET (what a mail scanner does) shows a confirmation page and decides nothing
    const approve = linkOf(toAda, 'Approve');
    for (let i = 0; i < 2; i++) {
      const page = await fetch(base + approve);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<form method="post">');
    }
    expect((await t.ctx.requests.get(r.id)).status).toBe('pending');

    const post = await fetch(base + approve, { method: 'POST', body: new URLSearchParams({ reason: 'fine' }) });
    expect(await post.text()).toContain('now approved');
    const after = await t.ctx.requests.get(r.id);
    expect(after).toMatchObject({ status: 'approved', decidedBy: 'Ada Admin', decisionReason: 'fine' });
    expect(after.decisions[0]!.channel).toBe('email');

    // both of ada's links are spent; cyd's link tells who decided
    expect((await fetch(base + approve, { method: 'POST' })).status).toBe(409);
    expect((await fetch(base + linkOf(toAda, 'Deny'))).status).toBe(409);
    const toCyd = sent.find((m) => m.to.includes('cyd@contoso.com'))!;
    const late = await fetch(base + linkOf(toCyd, 'Deny'), { method: 'POST' });
    expect(late.status).toBe(409);
    expect(await late.text()).toContain('already approved by Ada Admin');

    await deliverOutbox(r.id);
    const outcome = sent.find((m) => m.to.includes('bob@contoso.com'))!;
    expect(outcome.subject).toBe('Visio: request approved');
    expect(outcome.text).toContain(`/app/requests/${r.id}`);
  });

  it('approve and deny links clicked at the same moment give one decision, never an approval then a revoke', async () => {
    for (let round = 0; round < 5; round++) {
      const r = await mailedRequest(`race ${round}`);
      const to = (who: string) => sent.find((m) => m.to.includes(who))!;
      const [a, c] = await Promise.all([
        fetch(base + linkOf(to('ada@contoso.com'), 'Approve'), { method: 'POST', body: new URLSearchParams({ reason: 'ok' }) }),
        fetch(base + linkOf(to('cyd@contoso.com'), 'Deny'), { method: 'POST', body: new URLSearchParams({ reason: 'no' }) }),
      ]);
      expect([a.status, c.status].sort()).toEqual([200, 409]);
      const final = await t.tdb.db.query<{ type: string }>(
        `SELECT payload->>'type' AS type FROM outbox WHERE subject_id = $1 AND payload->>'type' IN ('request.approved', 'request.denied', 'request.revoked', 'request.reapproved')`,
        [r.id],
      );
      expect(final).toHaveLength(1);
    }
  });

  it('a link whose request was decided elsewhere says so on the page, with no button to press', async () => {
    const r = await mailedRequest('decided in chat');
    await t.ctx.requests.decide({ id: s.cyd.id, label: 'Cyd Approver', channel: 'slack' }, r.id, 'approve', null, { stage: 0 });
    const page = await fetch(base + linkOf(sent.find((m) => m.to.includes('ada@contoso.com'))!, 'Deny'));
    expect(page.status).toBe(409);
    const html = await page.text();
    expect(html).toContain('already approved by Cyd Approver at');
    expect(html).not.toContain('<form');
  });

  it('a page opened before the request was decided elsewhere, then sent, says who decided and when (not that a version moved)', async () => {
    const r = await mailedRequest('decided while the page was open');
    const deny = linkOf(sent.find((m) => m.to.includes('ada@contoso.com'))!, 'Deny');
    const form = await (await fetch(base + deny)).text();
    const version = form.match(/name="version" value="(\d+)"/)![1]!;
    await t.ctx.requests.decide({ id: s.cyd.id, label: 'Cyd Approver', channel: 'slack' }, r.id, 'approve', null, { stage: 0 });
    const sentForm = await fetch(base + deny, { method: 'POST', body: new URLSearchParams({ version, reason: 'too late' }) });
    expect(sentForm.status).toBe(409);
    const html = await sentForm.text();
    expect(html).toContain('already approved by Cyd Approver at');
    expect(html).not.toContain('If-Match');
    expect((await t.ctx.requests.get(r.id)).decisions).toHaveLength(1);
  });

  it('a refusal that decided nothing leaves the link usable (an approver briefly out of the group)', async () => {
    const r = await mailedRequest('group change');
    const approve = linkOf(sent.find((m) => m.to.includes('cyd@contoso.com'))!, 'Approve');
    const membership = await t.tdb.db.one<{ group_id: string }>(`SELECT group_id FROM approver_group_members WHERE identity_id = $1`, [
      s.cyd.id,
    ]);
    await t.tdb.db.query(`DELETE FROM approver_group_members WHERE identity_id = $1`, [s.cyd.id]);
    expect((await fetch(base + approve, { method: 'POST' })).status).toBe(403);
    await t.tdb.db.query(`INSERT INTO approver_group_members VALUES ($1, $2)`, [membership.group_id, s.cyd.id]);
    const again = await fetch(base + approve, { method: 'POST' });
    expect(again.status).toBe(200);
    expect((await t.ctx.requests.get(r.id)).status).toBe('approved');
  });

  it('an unknown link is a 404 page', async () => {
    const res = await fetch(`${base}/links/nope`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('This link is not valid');
  });
});
