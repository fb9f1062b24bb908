import { performance } from 'node:perf_hooks';
import { policyDefinitionSchema } from '../src/core/policy-schema.ts';
import { RequestService } from '../src/core/request-service.ts';
import { systemClock } from '../src/core/clock.ts';
import { percentile, pgbenchReference, pool, round, scratchDatabase } from './support.ts';

/**
 * Submit + approve through the core (two commands, each committing once, with audit and outbox rows),
 * compared with pgbench's TPC-B-like rate at the same concurrency on the same server.
 */
export async function decisionsScenario(opts: { requests: number; concurrency: number; pgbenchSeconds?: number }) {
  const scratch = await scratchDatabase('decisions');
  const { db } = scratch;
  try {
    const approver = await db.one<{ id: string }>(
      `INSERT INTO identities (username, display_name) VALUES ('B\\approver', 'Approver') RETURNING id`,
    );
    const group = await db.one<{ id: string }>(`INSERT INTO approver_groups (name) VALUES ('approvers') RETURNING id`);
    await db.query('INSERT INTO approver_group_members VALUES ($1,$2)', [group.id, approver.id]);
    const policy = await db.one<{ id: string }>(`INSERT INTO policies (name, definition) VALUES ('p', $1) RETURNING id`, [
      JSON.stringify(policyDefinitionSchema.parse({ justification: 'required', stages: [{ approvers: ['approvers'] }] })),
    ]);
    await db.query(`INSERT INTO applications (id, name, per_device, policy_id) VALUES ('App_bench', 'Bench', true, $1)`, [policy.id]);
    const users = await db.query<{ id: string; device: string }>(
      `WITH u AS (INSERT INTO identities (username, display_name) SELECT 'B\\u' || g, 'User ' || g FROM generate_series(1, $1) g RETURNING id, username)
       INSERT INTO devices (client_guid, name, primary_user_id) SELECT 'GUID:' || md5(u.username), 'PC-' || u.username, u.id FROM u RETURNING primary_user_id AS id, client_guid AS device`,
      [opts.requests],
    );
    const service = new RequestService(db, systemClock);
    const approverActor = { id: approver.id, label: 'Approver', channel: 'api' as const };
    const latencies: number[] = [];
    const started = performance.now();
    await pool(users, opts.concurrency, async (u) => {
      const t0 = performance.now();
      const r = await service.submit(
        { id: u.id, label: 'user', channel: 'api' },
        { applicationId: 'App_bench', requesterId: u.id, clientGuid: u.device, justification: 'bench' },
      );
      await service.decide(approverActor, r.id, 'approve');
      latencies.push(performance.now() - t0);
    });
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const reference = await pgbenchReference(opts.concurrency, opts.pgbenchSeconds ?? 5);
    const perSecond = opts.requests / seconds;
    return {
      scenario: 'submit-and-approve',
      requests: opts.requests,
      concurrency: opts.concurrency,
      requestsPerSecond: round(perSecond),
      p50Ms: round(percentile(latencies, 50)),
      p95Ms: round(percentile(latencies, 95)),
      reference: { tool: 'pgbench tpcb-like', clients: opts.concurrency, ...reference },
      // each request is two of our commits; pgbench's is one five-statement transaction
      ratioToPgbench: round((perSecond * 2) / reference.tps, 3),
      targets: { ratioToPgbench: 0.5 },
    };
  } finally {
    await scratch.drop();
  }
}
