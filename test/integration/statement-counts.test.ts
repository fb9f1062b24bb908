import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, promptValue } from '../../src/bots/slack/slack-ids.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import type { CreateApprovedInput } from '../../src/core/approved-requests.ts';
import type { Actor } from '../../src/core/audit-log.ts';
import { getRequestView } from '../../src/core/request-queries.ts';
import { ApiKeyCache } from '../../src/integrations/http/api-key-cache.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { attemptDelivery } from '../../src/integrations/webhooks/delivery-processor.ts';
import { fanOutBatch } from '../../src/integrations/outbox-batch.ts';
import { defaultBackoff } from '../../src/integrations/webhooks/retry-policy.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { seedContoso, VISIO, BOB_LAPTOP, type Seeded } from '../support/fixtures.ts';
import { addEndpoint } from '../support/queue-harness.ts';
import { startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { countStatements } from '../support/statement-counter.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor } from '../support/wait.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let s: Seeded;
let r: Receiver;
const counter = countStatements();
const show = (name: string, statements: string[]) =>
  console.info(`[measured] ${name}: ${statements.length} statements\n  ${statements.join('\n  ')}`);

beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
  r = await startReceiver();
});
afterAll(async () => {
  counter.restore();
  await r?.close();
  await t?.close();
});

/** A new endpoint with n pending deliveries, inserted directly (no fan-out). */
async function pendingDeliveries(name: string, n: number) {
  const endpointId = await addEndpoint(t.tdb.db, { name, url: r.url, secret: r.secret, events: ['app.install'] });
  const rows = await t.tdb.db.query<{ id: string }>(
    `INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, body)
     SELECT 'msg_' || $1 || '_' || g, $2, 'app.install', '{"type":"app.install"}' FROM generate_series(1, $3) g RETURNING id`,
    [name, endpointId, n],
  );
  return { endpointId, ids: rows.map((x) => x.id) };
}
const rt = () => ({ ctx: t.ctx, allow: parseAllowList(t.ctx.config.WEBHOOK_ALLOW_HOSTS), backoff: defaultBackoff });

// Upper bounds with a small margin over what the commands send today: a regression shows, an improvement passes.
describe('SQL statements per command', () => {
  it('submit, approve and one delivery attempt stay within their round-trip budgets', async () => {
    await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
    const submit = await counter.during(() =>
      t.ctx.requests.submit(s.actor(s.bob, 'api'), {
        applicationId: VISIO,
        requesterId: s.bob.id,
        clientGuid: BOB_LAPTOP,
        justification: 'diagrams',
        answers: { usage: 'Diagrams' },
      }),
    );
    const approve = await counter.during(() => t.ctx.requests.decide(s.actor(s.ada, 'api'), submit.result.id, 'approve'));
    expect(approve.result.outcome).toBe('approved');
    // built from what was read and written, it is what a read after the commit shows
    expect(approve.result.request).toEqual(await getRequestView(t.tdb.db, submit.result.id));
    const fan = await counter.during(() => fanOutBatch(t.ctx));
    expect(fan.result.deliveries).toHaveLength(1);
    const attempt = await counter.during(() => attemptDelivery(rt(), fan.result.deliveries[0]!.id));
    expect(attempt.result.outcome).toBe('succeeded');

    show('submit', submit.statements);
    show('approve', approve.statements);
    show('fan-out (2 events)', fan.statements);
    show('delivery attempt', attempt.statements);
    // submit: one lookup (application, requester with groups, device), then one statement that inserts the request
    // unless it is already approved, with its audit row and event; no transaction, the view is what the insert returned
    expect(submit.statements.length).toBeLessThanOrEqual(3);
    expect(submit.statements.filter((q) => q === 'START TRANSACTION')).toEqual([]);
    // approve: one read without a lock (the request, its stage's votes, the approver's groups, its application,
    // requester and device) and one write guarded by the version read (the update, the vote, the audit rows and the
    // outbox event as CTEs); no transaction, and the view comes from what the write returned
    expect(approve.statements.length).toBeLessThanOrEqual(3);
    expect(approve.statements.filter((q) => q === 'START TRANSACTION')).toEqual([]);
    expect(approve.statements.filter((q) => q.startsWith('WITH moved AS (UPDATE requests'))).toHaveLength(1);
    expect(approve.statements.filter((q) => q.startsWith('INSERT INTO'))).toEqual([]);
    // fan-out of a batch: claim, the device managers of its applications, one INSERT for every delivery, done; no
    // search for connector orders when no application of the batch has a device manager
    expect(fan.statements.length).toBeLessThanOrEqual(6);
    expect(fan.statements.filter((q) => /^(SELECT|WITH)[\s\S]*FROM webhook_deliveries/.test(q))).toEqual([]);
    // attempt: the claim (the lease, with the endpoint), then attempt row + delivery state + lease release in one statement
    expect(attempt.statements.length).toBeLessThanOrEqual(2);
  });

  it('delivery attempts running together share their claim and record statements', async () => {
    const N = 20;
    const { endpointId, ids } = await pendingDeliveries('many', N);
    // the receiver answers the first 16 together and then the last 4 together: attempts that finish together
    let arrived = 0;
    const opens: (() => void)[] = [];
    const waves = [0, 1].map(() => new Promise<void>((res) => opens.push(res)));
    r.setHandler(async () => {
      const wave = ++arrived <= 16 ? 0 : 1;
      if (arrived === 16 || arrived === N) opens[wave]!();
      await waves[wave];
      return { status: 200 };
    });
    // like a worker with concurrency 16: a new attempt starts as soon as one finishes
    const queue = [...ids];
    const run = async () => {
      const outcomes: string[] = [];
      for (let id = queue.shift(); id; id = queue.shift()) outcomes.push((await attemptDelivery(rt(), id)).outcome);
      return outcomes;
    };
    const many = await counter
      .during(() => Promise.all(Array.from({ length: 16 }, run)))
      .finally(() => r.setHandler(() => ({ status: 200 })));
    expect(many.result.flat()).toEqual(Array(N).fill('succeeded'));
    console.info(
      `[measured] ${N} delivery attempts, 16 at a time: ${many.statements.length} statements\n  ${many.statements.map((q) => q.slice(0, 40)).join('\n  ')}`,
    );
    // two per attempt when alone; together they share: at most about one statement per four attempts
    expect(many.statements.length).toBeLessThanOrEqual(N / 4);
    const done = await t.tdb.db.one<{ n: string }>(
      `SELECT count(*) AS n FROM webhook_deliveries d WHERE endpoint_id = $1 AND status = 'succeeded' AND attempts = 1
          AND (SELECT count(*) FROM webhook_attempts WHERE delivery_id = d.id) = 1`,
      [endpointId],
    );
    expect(Number(done.n)).toBe(N);
  });

  it('deliveries their gate sends away after the claim give their leases back together, not one statement each', async () => {
    const N = 20;
    const { endpointId, ids } = await pendingDeliveries('refusing', N);
    // a new endpoint found slow once its deliveries were claimed: every one is sent away to wait
    const admit = async () => ({ ok: false as const, reason: 'busy' as const, waitMs: 0, latencyMs: 20_000 });
    const refused = await counter.during(() => Promise.all(ids.map((id) => attemptDelivery(rt(), id, { admit }))));
    expect(refused.result.map((x) => x.outcome)).toEqual(Array(N).fill('gated'));
    console.info(`[measured] ${N} claims sent away by the gate: ${refused.statements.length} statements`);
    // the claims share a statement, and so do the leases given back (they were one UPDATE per delivery)
    expect(refused.statements.length).toBeLessThanOrEqual(4);
    // nothing was sent and every lease is free: the line's next run of these deliveries is not taken for a duplicate
    const leased = await t.tdb.db.one<{ n: string }>(
      `SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1 AND (lease_token IS NOT NULL OR attempts > 0)`,
      [endpointId],
    );
    expect(Number(leased.n)).toBe(0);
  });

  it('a sweep fires a batch of due reminders in a fixed number of statements, not a few per reminder', async () => {
    const N = 20;
    for (let i = 0; i < N; i++) {
      const guid = `GUID:SWEEP-${i}`;
      await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [guid, `PC-${i}`, s.bob.id]);
      await t.ctx.requests.submit(s.actor(s.bob, 'api'), {
        applicationId: VISIO,
        requesterId: s.bob.id,
        clientGuid: guid,
        justification: 'sweep',
        answers: { usage: 'Other' },
      });
    }
    t.clock.advance(24 * 3600_000 + 60_000);
    const sweep = await counter.during(() => t.ctx.timers.sweep());
    expect(sweep.result.reminder).toBe(N);
    console.info(`[measured] sweep firing ${N} reminders: ${sweep.statements.length} statements`);
    // one claim per timer kind, and for the reminders one UPDATE, one audit INSERT and one outbox INSERT
    expect(sweep.statements.length).toBeLessThanOrEqual(40);
    const audited = await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM audit_events WHERE action = 'request.reminder'`);
    const events = await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE type = 'request.reminder'`);
    expect([Number(audited.n), Number(events.n)]).toEqual([N, N]);
  });

  it('a fan-out batch reads the device managers of its events once, not once per event', async () => {
    for (let i = 0; i < 10; i++)
      await t.ctx.requests.createApproved(
        { id: null, label: 'api:test', channel: 'api' },
        { applicationId: VISIO, clientGuid: BOB_LAPTOP },
      );
    const fan = await counter.during(() => fanOutBatch(t.ctx));
    expect(fan.result.events).toBeGreaterThanOrEqual(10);
    console.info(`[measured] fan-out (${fan.result.events} events): ${fan.statements.length} statements`);
    expect(fan.statements.filter((q) => q.includes('FROM applications'))).toHaveLength(1);
    expect(fan.statements.length).toBeLessThanOrEqual(7);
  });

  it('a connector order survives a second relay of its event as the same single order', async () => {
    await t.tdb.db.query(`UPDATE applications SET device_manager = '{"kind":"intune"}' WHERE id = $1`, [VISIO]);
    try {
      await t.ctx.requests.createApproved(
        { id: null, label: 'api:test', channel: 'api' },
        { applicationId: VISIO, clientGuid: BOB_LAPTOP },
      );
      const first = await fanOutBatch(t.ctx);
      expect(first.orders).toHaveLength(1);
      // as if the event had been claimed again after its order was written
      await t.tdb.db.query(`UPDATE outbox SET status = 'pending' WHERE id = (SELECT outbox_id FROM webhook_deliveries WHERE id = $1)`, [
        first.orders[0],
      ]);
      const again = await fanOutBatch(t.ctx);
      expect(again.orders).toEqual(first.orders);
      const rows = await t.tdb.db.query(
        `SELECT count(*)::int AS n FROM webhook_deliveries WHERE outbox_id = (SELECT outbox_id FROM webhook_deliveries WHERE id = $1)
            AND connector IS NOT NULL`,
        [first.orders[0]],
      );
      expect(rows[0]!.n).toBe(1);
    } finally {
      await t.tdb.db.query(`UPDATE applications SET device_manager = NULL WHERE id = $1`, [VISIO]);
    }
  });

  it('CreateApprovedRequest reads once, writes once, and returns the view a read would', async () => {
    const guid = 'GUID:WAVE-0001';
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, 'WAVE-0001')`, [guid]);
    const system = { id: null, label: 'api:cm', channel: 'api' as const };
    // each call's view is compared with a read right after it
    const call = async (actor: Actor, input: CreateApprovedInput) => {
      const x = await counter.during(() => t.ctx.requests.createApproved(actor, input));
      expect(x.result.request).toEqual(await getRequestView(t.tdb.db, x.result.request.id));
      return x;
    };
    const created = await call(system, { applicationId: VISIO, clientGuid: guid });
    const again = await call(system, { applicationId: VISIO, clientGuid: guid });
    const bound = await call(s.actor(s.ada, 'api'), { applicationId: VISIO, clientGuid: guid, username: s.bob.username });
    for (const [name, x] of [
      ['new, system key', created],
      ['again (the install ordered again)', again],
      ['new, key bound to an approver', bound],
    ] as const)
      show(`CreateApprovedRequest ${name}`, x.statements);
    expect([created.result.created, again.result.created, bound.result.created]).toEqual([true, false, true]);
    // the transaction, one read of the application, person and device, the subject's lock and its request, the
    // insert, one write of the approval with both audit rows and the event; no read of what it already holds
    expect(created.statements.length).toBeLessThanOrEqual(7);
    expect(again.statements.length).toBeLessThanOrEqual(6);
    // and the approver's groups, for a key bound to a person
    expect(bound.statements.length).toBeLessThanOrEqual(8);
    expect(again.result.request.version).toBe(created.result.request.version + 1);
    const actions = await t.tdb.db.query<{ action: string }>(`SELECT action FROM audit_events WHERE subject_id = $1 ORDER BY id`, [
      created.result.request.id,
    ]);
    expect(actions.map((a) => a.action)).toEqual(['request.created_approved', 'request.approved', 'request.install_ordered']);
    while ((await fanOutBatch(t.ctx)).events > 0);
  });

  it('revoke, reapprove, Install now and cancel return the view a read would, without reading it again', async () => {
    const guid = 'GUID:REVERSE-0001';
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, 'REVERSE-0001', $2)`, [guid, s.bob.id]);
    const submit = (clientGuid: string) =>
      t.ctx.requests.submit(s.actor(s.bob, 'api'), {
        applicationId: VISIO,
        requesterId: s.bob.id,
        clientGuid,
        justification: 'reversals',
        answers: { usage: 'Diagrams' },
      });
    const ada = s.actor(s.ada, 'api');
    const id = (await submit(guid)).id;
    await t.ctx.requests.decide(ada, id, 'approve');
    // each: the transaction, the row locked, its rights and context, the write(s); no read of the view after commit
    const steps = [
      ['Install now', 5, () => t.ctx.requests.installNow(s.actor(s.bob, 'api'), id)],
      ['revoke', 8, async () => (await t.ctx.requests.revoke(ada, id, 'no longer needed')).request],
      ['reapprove', 6, async () => (await t.ctx.requests.reapprove(ada, id, 'needed after all')).request],
    ] as const;
    for (const [name, budget, step] of steps) {
      const x = await counter.during(step);
      show(name, x.statements);
      expect(x.result).toEqual(await getRequestView(t.tdb.db, id));
      expect(x.statements.filter((q) => q.startsWith('SELECT r.*, a.name AS app_name'))).toEqual([]);
      expect(x.statements.length).toBeLessThanOrEqual(budget);
    }
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ('GUID:REVERSE-0002', 'REVERSE-0002', $1)`, [
      s.bob.id,
    ]);
    const pending = (await submit('GUID:REVERSE-0002')).id;
    const cancel = await counter.during(() => t.ctx.requests.cancel(s.actor(s.bob, 'api'), pending, 'not needed'));
    expect(cancel.result).toEqual(await getRequestView(t.tdb.db, pending));
    expect(cancel.result.status).toBe('cancelled');
    while ((await fanOutBatch(t.ctx)).events > 0);
  });
});

// What an approver's click or call costs end to end, the edge's own reads and writes included.
describe('SQL statements per decision over HTTP', () => {
  let h: SlackHarness;
  let hs: Seeded;
  beforeAll(async () => {
    h = await startSlackHarness();
    hs = await seedContoso(h.t.tdb.db);
  });
  afterAll(async () => {
    await h?.close();
  });

  const pending = async (guid: string) => {
    await h.t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [guid, guid, hs.bob.id]);
    const r = await h.t.ctx.requests.submit(hs.actor(hs.bob, 'api'), {
      applicationId: VISIO,
      requesterId: hs.bob.id,
      clientGuid: guid,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    return r.id;
  };
  // the test's own polling, tagged so it is not counted
  const POLL = '/* statement-counts poll */';
  const ours = (statements: string[]) => statements.filter((q) => !q.startsWith(POLL));
  it('a Slack approve click, a Slack deny up to its modal and a REST approve stay within their round-trip budgets', async () => {
    const viaSlack = await pending('GUID:COUNT-SLACK');
    const viaRest = await pending('GUID:COUNT-REST');
    const sentBefore = async () =>
      Number((await h.t.tdb.db.one<{ n: string }>(`${POLL} SELECT count(*) AS n FROM audit_events WHERE action = 'message.sent'`)).n);
    const before = await sentBefore();

    // the click, acknowledged at once; done once the approver's private reply is sent and audited
    const click = await counter.during(async () => {
      const res = await h.action('U0ADA', ACTION.approve, promptValue(viaSlack, 0));
      expect(res.status).toBe(200);
      await h.fake.waitFor('chat.postEphemeral');
      await waitFor(async () => (await sentBefore()) > before, 'the private reply audited');
    });
    expect(textOf(h.fake.last('chat.postEphemeral')!.args.blocks)).toMatch(/You approved \*Visio\* for \*Bob User\*/);
    const slack = ours(click.statements);

    // a denial asks why first: the checks and what the modal shows in one read, nothing decided yet
    const toDeny = await pending('GUID:COUNT-DENY');
    const deny = await counter.during(async () => {
      await h.action('U0ADA', ACTION.deny, promptValue(toDeny, 0));
      return (await h.fake.waitFor('views.open'))[0]!;
    });
    expect(textOf(deny.result.args.view.blocks)).toMatch(/\*Visio\* for \*Bob User\* on GUID:COUNT-DENY/);

    const key = (await createApiKey(h.t.tdb.db, 'count', ['requests:read', 'requests:write'], hs.ada.id)).key;
    const app = createHttpApp(h.t.ctx);
    const auth = { Authorization: `Bearer ${key}` };
    // a key's first use in a minute also stamps last_used_at; a busy key does not. The stamp is not awaited by the
    // request: under load the approval's key lookup ran before it had landed, and stamped (and was counted) again
    await request(app).get(`/api/v1/requests/${viaRest}`).set(auth).expect(200);
    await waitFor(
      async () =>
        (await h.t.tdb.db.one<{ used: boolean }>(`SELECT last_used_at IS NOT NULL AS used FROM api_keys WHERE name = 'count'`)).used,
      'the key’s first use stamped',
    );
    const call = await counter.during(() => request(app).post(`/api/v1/requests/${viaRest}/approve`).set(auth).send({}));
    expect(call.result.status).toBe(200);
    expect(call.result.body.outcome).toBe('approved');

    // a web process keeps the keys it read (api-key-cache.ts): its next approval is the decision's read and write
    const viaKept = await pending('GUID:COUNT-KEPT');
    const kept = new ApiKeyCache(h.t.tdb.db);
    kept.resume();
    h.t.ctx.apiKeys = kept;
    await request(app).get(`/api/v1/requests/${viaKept}`).set(auth).expect(200);
    const keptCall = await counter.during(() => request(app).post(`/api/v1/requests/${viaKept}/approve`).set(auth).send({}));
    h.t.ctx.apiKeys = undefined;
    expect(keptCall.result.body.outcome).toBe('approved');

    show('Slack approve click (decision read with the clicker, write, private reply audited)', slack);
    show('Slack deny click up to the reason modal', deny.statements);
    show('REST approve over HTTP (key, decision read and write)', call.statements);
    // Slack: the core's read, which looks up the clicker by Slack id with the request, its guarded write (it refuses
    // a stale click, a non-approver, the requester), and the private reply's audit row in one INSERT
    expect(slack.length).toBeLessThanOrEqual(3);
    expect(slack.filter((q) => q === 'START TRANSACTION')).toEqual([]);
    // the clicker, then one read for the refusals and the modal's summary
    expect(deny.statements.length).toBeLessThanOrEqual(2);
    // REST: the key, the decision's read and write
    expect(call.statements.length).toBeLessThanOrEqual(3);
    show('REST approve over HTTP with the key kept', keptCall.statements);
    expect(keptCall.statements.length).toBeLessThanOrEqual(2);
  });
});
