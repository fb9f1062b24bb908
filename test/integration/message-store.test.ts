import { randomUUID } from 'node:crypto';
import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageDeliveries1763940000000 } from '../../migrations/1763940000000-message-deliveries.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import type { MailMessage } from '../../src/core/ports.ts';
import { EmailNotifier } from '../../src/integrations/email/email-notifier.ts';
import { MessageStore, notifierActor, type NewMessage } from '../../src/notifications/message-store.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let s: Seeded;

beforeAll(async () => {
  t = await createTestContext({ PUBLIC_URL: 'http://links.test' });
  s = await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await t.close();
});

const submit = () =>
  t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'Diagrams',
    answers: { usage: 'Diagrams' },
  });

describe('the message store: one record and one dedupe rule for every platform', () => {
  it('two runs of the same delivery racing keep one message, and a later run sends nothing', async () => {
    const r = { id: randomUUID() };
    const store = new MessageStore(t.tdb.db, 'slack', notifierActor('slack'), t.ctx.clock);
    const delivery = { eventId: 'event-1', key: `prompt:C0RACE:${r.id}` };
    let sends = 0;
    const send = async () => {
      sends++;
      const message: NewMessage = {
        subjectType: 'request',
        subjectId: r.id,
        purpose: 'prompt',
        conversationId: 'C0RACE',
        messageId: `ts-${sends}`,
      };
      return { message };
    };
    await Promise.all([store.once(delivery, send), store.once(delivery, send), store.once(delivery, send)]);
    const rows = await t.tdb.db.query(`SELECT message_id FROM message_refs WHERE platform = 'slack' AND event_id = 'event-1'`);
    expect(rows).toHaveLength(1);
    const before = sends;
    expect(await store.once(delivery, send)).toBe(true);
    expect(sends).toBe(before);
    // the same key for another event, or on another platform, is another delivery
    const teams = new MessageStore(t.tdb.db, 'teams', notifierActor('teams'), t.ctx.clock);
    expect(await teams.delivered(delivery)).toBe(false);
    expect(await store.delivered({ ...delivery, eventId: 'event-2' })).toBe(false);
  });

  it('a mail that failed is sent again on retry, and the mails already sent are not', async () => {
    const r = await submit();
    const sent: MailMessage[] = [];
    let failFor: string | null = 'ada@contoso.com';
    const mailer = {
      send: async (m: MailMessage) => {
        if (failFor && m.to.includes(failFor)) {
          failFor = null;
          throw new Error('SMTP 451 try again later');
        }
        sent.push(m);
      },
    };
    const row = await t.tdb.db.one<any>(`SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.submitted'`, [r.id]);
    const notifier = new EmailNotifier(t.ctx, mailer);
    // whichever mails come before Ada's go out; hers fails and the event is retried
    await expect(notifier.handle(toDomainEvent(row))).rejects.toThrow(/451/);
    const firstRun = sent.map((m) => m.to.join(','));
    await notifier.handle(toDomainEvent(row));
    await notifier.handle(toDomainEvent(row));
    const recipients = sent.map((m) => m.to.join(','));
    expect(recipients.filter((to) => to === 'ada@contoso.com')).toHaveLength(1);
    expect(new Set(recipients).size).toBe(recipients.length);
    expect(recipients.slice(0, firstRun.length)).toEqual(firstRun);
    // each mail is in the store under its own Message-ID, and in the audit log
    const refs = await t.tdb.db.query<{ message_id: string; conversation_id: string }>(
      `SELECT message_id, conversation_id FROM message_refs WHERE platform = 'email' AND subject_id = $1`,
      [r.id],
    );
    expect(refs.map((x) => x.conversation_id).sort()).toEqual([...recipients].sort());
    expect(refs.map((x) => x.message_id).sort()).toEqual(sent.map((m) => m.messageId).sort());
    const audited = await t.tdb.db.query(
      `SELECT 1 FROM audit_events WHERE action = 'message.sent' AND channel = 'email' AND subject_id = $1`,
      [r.id],
    );
    expect(audited).toHaveLength(recipients.length);
  });

  it('an upgrade carries the deliveries recorded before over to the one rule', async () => {
    const db = t.tdb.db;
    const runner = { query: (sql: string, params?: unknown[]) => db.query(sql, params) } as unknown as QueryRunner;
    const migration = new MessageDeliveries1763940000000();
    await migration.down(runner);
    const subject = randomUUID();
    const old = (platform: string, purpose: string, message: string, data: object) =>
      db.query(
        `INSERT INTO message_refs (subject_type, subject_id, platform, purpose, conversation_id, message_id, data, created_at)
         VALUES ('request', $1, $2, $3, 'C0OLD', $4, $5, now() + ($6 || ' ms')::interval)`,
        [subject, platform, purpose, message, JSON.stringify(data), message.length],
      );
    await old('slack', 'prompt', 'ts-1', { eventId: 'old-1', target: 'C0OLD' });
    // the same delivery recorded twice by two racing runs: the older row keeps it
    await old('slack', 'prompt', 'ts-22', { eventId: 'old-1', target: 'C0OLD' });
    await old('teams', 'requester', 'act-333', { eventId: 'old-2', key: 'requester', view: 'requester', serviceUrl: 'https://smba' });
    await old('teams', 'requester', 'act-4444', { key: 'requester', view: 'requester' });
    await migration.up(runner);

    const rows = await db.query<{ message_id: string; event_id: string | null; delivery_key: string | null; data: object }>(
      `SELECT message_id, event_id, delivery_key, data FROM message_refs WHERE subject_id = $1 ORDER BY created_at`,
      [subject],
    );
    expect(rows).toEqual([
      { message_id: 'ts-1', event_id: 'old-1', delivery_key: 'prompt:C0OLD', data: {} },
      { message_id: 'ts-22', event_id: null, delivery_key: null, data: {} },
      { message_id: 'act-333', event_id: 'old-2', delivery_key: 'requester', data: { view: 'requester', serviceUrl: 'https://smba' } },
      { message_id: 'act-4444', event_id: null, delivery_key: 'requester', data: { view: 'requester' } },
    ]);
    const slack = new MessageStore(db, 'slack', notifierActor('slack'), t.ctx.clock);
    expect(await slack.delivered({ eventId: 'old-1', key: 'prompt:C0OLD' })).toBe(true);
  });
});
