import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { startAllChannels, type AllChannels, type DecisionChannel } from '../support/all-channels.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

/**
 * People click at once: in the channel prompt in Slack and in Teams, in their email, while an external system and
 * an admin at a terminal decide too. Whatever arrives first decides; everyone else changes nothing.
 */
let a: AllChannels;
beforeAll(async () => {
  a = await startAllChannels({ poolSize: 30 });
});
afterAll(() => a?.close());

const channels: DecisionChannel[] = ['api', 'email', 'slack', 'teams', 'cli'];
const approvers = ['ada', 'cyd'] as const;

describe('one decision across every channel at once', () => {
  // RACE_ROUNDS=30 for a longer run; each round is 50 calls through five channels
  const rounds = Number(process.env.RACE_ROUNDS ?? 8);
  it(`50 approve/deny calls over REST, email links, Slack, Teams and the CLI, ${rounds} rounds: one decision, at most one install`, async () => {
    for (let round = 0; round < rounds; round++) {
      await a.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
      const id = (
        await a.t.ctx.requests.submit(a.s.actor(a.s.bob), {
          applicationId: VISIO,
          clientGuid: BOB_LAPTOP,
          justification: 'race',
          answers: { usage: 'Other' },
        })
      ).id;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => {
          const verb = (i + round) % 3 === 0 ? 'deny' : 'approve';
          // REST calls name no stage, as external systems do; prompts and links are bound to the stage they showed
          return a.decide(channels[i % channels.length]!, approvers[Math.floor(i / 5) % 2]!, verb, id, {
            reason: verb === 'deny' || i % 2 ? `call ${i}` : null,
          });
        }),
      );
      const winners = results.filter((r) => r.ok);
      expect(winners, `round ${round}: ${JSON.stringify(results.map((r) => [r.channel, r.ok, r.code]))}`).toHaveLength(1);
      const req = await a.t.ctx.requests.get(id);
      expect(['approved', 'denied']).toContain(req.status);
      expect(req.decisions, `round ${round}`).toHaveLength(1);
      expect(req.decisions[0]!.channel).toBe(winners[0]!.channel);
      for (const r of results.filter((x) => !x.ok && x.code)) expect(r.code, `round ${round}`).toBe('already_decided');
      const rows = (
        await a.t.tdb.db.query<{ type: string; payload: any }>(`SELECT type, payload FROM outbox WHERE subject_id = $1 ORDER BY seq`, [id])
      ).map((r) => ({ type: r.type, webhooks: webhooksOfRow(r) }));
      expect(rows.map((r) => r.type).filter((t) => t !== 'request.submitted')).toEqual([`request.${req.status}`]);
      const appHooks = rows.flatMap((r) => r.webhooks.map((w) => w.type)).filter((t) => t.startsWith('app.'));
      expect(appHooks).toEqual(req.status === 'approved' ? ['app.install'] : []);
    }
  }, 900_000);
});
