import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';

// Approve clicks are acknowledged before they are decided. A burst larger than the pool serves in its connection
// wait (here: one connection, each decision held 40 ms, so 100 clicks need 4 s of it against a 2 s wait) used to
// be acknowledged at once and then half of it told "Signoff cannot reach its database".
const CLICKS = 100;
const HELD_MS = 40;

let h: SlackHarness;
let s: Seeded;
let ids: string[];
beforeAll(async () => {
  h = await startSlackHarness({ pool: { poolSize: 1, connectTimeoutMs: 2000 } });
  s = await seedContoso(h.t.tdb.db, {
    justification: 'optional',
    stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false }],
    decisionDeadline: 'P14D',
  });
  const devices = await h.t.tdb.db.query<{ client_guid: string }>(
    `INSERT INTO devices (client_guid, name, primary_user_id)
     SELECT 'GUID:burst-' || g, 'PC-' || g, $2 FROM generate_series(1, $1) g RETURNING client_guid`,
    [CLICKS, s.bob.id],
  );
  ids = [];
  for (const d of devices)
    ids.push((await h.t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: d.client_guid })).id);
  // every decision holds the only connection a while, as a busy database would
  await h.t.tdb.db.query(`
    CREATE FUNCTION slow_decision() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(${HELD_MS / 1000}); RETURN NEW; END $$;
    CREATE TRIGGER slow_decision BEFORE UPDATE ON requests FOR EACH ROW
      WHEN (OLD.status = 'pending' AND NEW.status <> 'pending') EXECUTE FUNCTION slow_decision();`);
  h.fake.reset();
});
afterAll(() => h?.close());

describe('a burst of approve clicks beyond what the database pool serves at once', () => {
  it('acknowledges every click and decides every one of them; nobody is told the database is away', async () => {
    const acks = await Promise.all(ids.map((id) => h.action('U0CYD', ACTION.approve, id)));
    expect(acks.map((a) => a.status)).toEqual(ids.map(() => 200));
    // each click ends in one private reply to the clicker: the outcome, or the error
    const replies = await h.fake.waitFor('chat.postEphemeral', CLICKS);
    const texts = replies.map((r) => textOf(r.args.blocks));
    expect(texts.filter((t) => /cannot reach its database/.test(t))).toEqual([]);
    expect(texts.every((t) => /Approved/i.test(t))).toBe(true);
    const rows = await h.t.tdb.db.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM requests WHERE id = ANY($1) GROUP BY status',
      [ids],
    );
    expect(rows).toEqual([{ status: 'approved', n: String(CLICKS) }]);
  });
});
