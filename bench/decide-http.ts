import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createSlackAdapter } from '../src/bots/slack/index.ts';
import { ACTION, promptValue } from '../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../src/bots/slack/slack-verify.ts';
import { buildContext } from '../src/build-context.ts';
import { loadConfig } from '../src/config.ts';
import { createApiKey } from '../src/core/api-keys.ts';
import { createHttpApp } from '../src/integrations/http/app.ts';
import { closeQueues } from '../src/integrations/queue/queues.ts';
import { createLogger } from '../src/logger.ts';
import { FakeSlackApi } from '../test/support/fake-slack-api.ts';
import { percentile, pgbenchTps, pool, round, scratchDatabase, seedPending, waitUntil } from './support.ts';

const SIGNING_SECRET = 'bench-signing-secret-0123456789';

/**
 * Decisions over HTTP: N pending requests, `clients` concurrent clients, half of them signed Slack approve clicks
 * to /slack/events (acknowledged at once, decided right after the ack), half REST approvals to
 * /api/v1/requests/{id}/approve with a key bound to the approver. Committed decisions per second (until the last
 * one is in Postgres) and ack latency, against pgbench's TPC-B-like rate at the same number of clients.
 */
export async function decideHttpScenario(opts: { requests: number; clients: number; pgbenchSeconds: number }) {
  const scratch = await scratchDatabase('decide-http', opts.clients + 4);
  const fake = await new FakeSlackApi().start();
  const { db } = scratch;
  let server: import('node:http').Server | undefined;
  const config = loadConfig({
    NODE_ENV: 'test', DATABASE_URL: scratch.url, LOG_LEVEL: 'silent', QUEUE_PREFIX: `signoff_bench_${Date.now()}`,
    SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-bench', SLACK_API_URL: fake.url,
  });
  const ctx = buildContext({ config, db, logger: createLogger('silent') });
  try {
    const { approverId, requestIds } = await seedPending(db, opts.requests, { approverSlackId: 'U0APPROVER' });
    const key = (await createApiKey(db, 'bench', ['requests:read', 'requests:write'], approverId)).key;
    const slack = createSlackAdapter(ctx);
    const app = createHttpApp(ctx, { mount: (a) => slack.mount(a) });
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;

    const slackClick = (id: string, n: number) => {
      const payload = {
        type: 'block_actions', user: { id: 'U0APPROVER' }, team: { id: 'T0BENCH' }, trigger_id: `trig-${n}`,
        channel: { id: 'C0APPROVE' }, container: { type: 'message', channel_id: 'C0APPROVE', message_ts: `${n}.0` },
        response_url: `${fake.origin}/response/act-${n}`,
        actions: [{ type: 'button', action_id: ACTION.approve, value: promptValue(id, 0), block_id: 'b', action_ts: '1' }],
      };
      const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
      const ts = Math.floor(Date.now() / 1000);
      return fetch(`${base}/slack/events`, {
        method: 'POST', body,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-slack-request-timestamp': String(ts), 'x-slack-signature': signSlackBody(SIGNING_SECRET, ts, body) },
      });
    };
    const restApprove = (id: string) =>
      fetch(`${base}/api/v1/requests/${id}/approve`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` } });

    const acks: number[] = [];
    let failures = 0;
    const items = requestIds.map((id, i) => ({ id, i }));
    const started = performance.now();
    await pool(items, opts.clients, async ({ id, i }) => {
      const t0 = performance.now();
      const res = await (i % 2 === 0 ? slackClick(id, i) : restApprove(id));
      await res.arrayBuffer();
      acks.push(performance.now() - t0);
      if (res.status !== 200) failures++;
    });
    const ackedIn = (performance.now() - started) / 1000;
    // Slack clicks are decided after their ack: the clock stops when the last decision is committed
    await waitUntil(async () => Number((await db.one<{ n: string }>(`SELECT count(*) AS n FROM requests WHERE status = 'approved'`)).n) >= opts.requests - failures, 'every decision', 300_000, 10);
    const seconds = (performance.now() - started) / 1000;
    acks.sort((a, b) => a - b);
    server!.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    const reference = await pgbenchTps(opts.clients, opts.pgbenchSeconds);
    const perSecond = (opts.requests - failures) / seconds;
    return {
      scenario: 'decide-http',
      decisions: opts.requests,
      clients: opts.clients,
      mix: 'half Slack approve clicks, half REST approvals',
      failures,
      decisionsPerSecond: round(perSecond),
      ackedPerSecond: round(opts.requests / ackedIn),
      ackP50Ms: round(percentile(acks, 50)),
      ackP99Ms: round(percentile(acks, 99)),
      reference: { tool: 'pgbench tpcb-like', clients: opts.clients, tps: round(reference) },
      ratioToPgbench: round(perSecond / reference, 3),
      targets: { ratioToPgbench: 0.5, ackP99Ms: 50 },
    };
  } finally {
    server?.closeAllConnections();
    server?.close();
    await closeQueues(ctx).catch(() => undefined);
    await fake.stop();
    await scratch.drop();
  }
}
