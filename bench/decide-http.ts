import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createSlackAdapter } from '../src/bots/slack/index.ts';
import { buildContext } from '../src/build-context.ts';
import { loadConfig } from '../src/config.ts';
import { createApiKey } from '../src/core/api-keys.ts';
import { ApiKeyCache } from '../src/integrations/http/api-key-cache.ts';
import { createHttpApp } from '../src/integrations/http/app.ts';
import { closeQueues } from '../src/integrations/queue/queues.ts';
import { createLogger } from '../src/logger.ts';
import { startClients, type ClientResults } from './decide-http-clients.ts';
import { percentile, pgbenchReference, round, scratchDatabase, seedPending, waitUntil } from './support.ts';
import { startWebProcesses, type WebProcesses } from './web-processes.ts';

const SIGNING_SECRET = 'bench-signing-secret-0123456789';

/**
 * Decisions over HTTP: N pending requests, `clients` concurrent clients, half of them signed Slack approve clicks
 * to /slack/events (acknowledged at once, decided right after the ack), half REST approvals to
 * /api/v1/requests/{id}/approve with a key bound to the approver. Committed decisions per second (until the last
 * one is in Postgres) and ack latency, against pgbench's TPC-B-like rate at the same number of clients. Then a paced
 * phase, one client deciding one request at a time: the ack latency when the server is not saturated (with 32
 * closed-loop clients at saturation, the ack mostly measures the queue: 32 / rate). The server of these phases is
 * the HTTP app and the Slack adapter in this process; then, with `webProcesses`, the same saturated load on that many
 * `signoff start --role web` processes (`webProcesses` in the output).
 */
export async function decideHttpScenario(opts: {
  requests: number;
  /** decisions sent before each saturated phase and not counted: a server just started runs its JIT's first code */
  warmup: number;
  paced: number;
  clients: number;
  pgbenchSeconds: number;
  /** then the same load on this many `signoff start --role web` processes (0: none) */
  webProcesses?: number;
}) {
  const poolSize = loadConfig({ DATABASE_POOL_SIZE: process.env.DATABASE_POOL_SIZE }).DATABASE_POOL_SIZE;
  const webProcesses = opts.webProcesses ?? 0;
  // the pool `signoff start` opens (DATABASE_POOL_SIZE), as the product runs, rather than one connection per client
  const scratch = await scratchDatabase('decide-http', poolSize);
  const clients = await startClients();
  const warmClients = await startClients();
  // the paced phase's clients: one decision at a time, after the saturated run
  const pacedClients = await startClients();
  const webClients = webProcesses >= 1 ? await startClients() : undefined;
  const webWarmClients = webProcesses >= 1 ? await startClients() : undefined;
  const { db } = scratch;
  let server: import('node:http').Server | undefined;
  let web: WebProcesses | undefined;
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: scratch.url,
    LOG_LEVEL: 'silent',
    QUEUE_PREFIX: `signoff_bench_${Date.now()}`,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_BOT_TOKEN: 'xoxb-bench',
    SLACK_API_URL: clients.slack.url,
  });
  const ctx = buildContext({ config, db, logger: createLogger('silent') });
  // as `signoff start` does: the keys this process resolved are kept while it hears their changes
  const apiKeys = new ApiKeyCache(db);
  const keyChanges = apiKeys.listen(scratch.url, ctx.logger);
  ctx.apiKeys = apiKeys;
  // Slack clicks are decided after their ack: a phase ends when its last decision is committed
  const approved = async () => Number((await db.one<{ n: string }>(`SELECT count(*) AS n FROM requests WHERE status = 'approved'`)).n);
  const approvedReach = (n: number, what: string) =>
    waitUntil(async () => (await approved()) >= n, what, 300_000, 10).catch(async (e: Error) => {
      // a click acknowledged and then not decided (its clicker was told why in Slack) is not an HTTP failure
      throw new Error(`${e.message}: ${await approved()} of ${n} approved`);
    });
  // approvals the phases so far have committed, or will once their acknowledged clicks are decided
  let expected = 0;
  try {
    const perServer = opts.warmup + opts.requests;
    const seeded = await seedPending(db, perServer * (webClients ? 2 : 1) + opts.paced, { approverSlackId: 'U0APPROVER' });
    const { approverId } = seeded;
    const ids = seeded.requestIds;
    // each server's share: its warm-up, then its measured decisions
    const warmAndMeasured = (share: string[]) => [share.slice(0, opts.warmup), share.slice(opts.warmup)] as const;
    const [warmIds, requestIds] = warmAndMeasured(ids.slice(0, perServer));
    const pacedIds = ids.slice(perServer, perServer + opts.paced);
    const [webWarmIds, webIds] = warmAndMeasured(ids.slice(perServer + opts.paced));
    const decided = (sent: number, r: ClientResults) => {
      expected += sent - r.failures;
      return expected;
    };
    const key = (await createApiKey(db, 'bench', ['requests:read', 'requests:write'], approverId)).key;
    const slack = createSlackAdapter(ctx);
    const app = createHttpApp(ctx, { mount: (a) => slack.mount(a) });
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const base = `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;

    // the clients run in a process of their own, as pgbench's do, with the fake Slack API their clicks' replies go to
    const warm = await warmClients.run({ base, key, secret: SIGNING_SECRET, ids: warmIds, clients: opts.clients });
    await approvedReach(decided(warmIds.length, warm), 'the warm-up');
    const started = performance.now();
    const cpu0 = process.cpuUsage();
    const saturated = await clients.run({
      base,
      key,
      secret: SIGNING_SECRET,
      ids: requestIds,
      clients: opts.clients,
    });
    const { failures } = saturated;
    const ackedIn = (performance.now() - started) / 1000;
    await approvedReach(decided(requestIds.length, saturated), 'every decision');
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // not saturated: one client, the next decision sent when the last one is acknowledged
    const paced = await pacedClients.run({ base, key, secret: SIGNING_SECRET, ids: pacedIds, clients: 1 });
    await approvedReach(decided(pacedIds.length, paced), 'the paced decisions');
    server!.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;

    // the same load on the product as it runs (`signoff start --role web`, with everything it mounts), or on several
    // such processes as a deployment behind a load balancer runs them, each with its share of the Postgres connections
    let onWeb: ({ webProcesses: number; failures: number; peakRssMbPerProcess: number } & ReturnType<typeof phaseFigures>) | undefined;
    if (webClients) {
      web = await startWebProcesses(webProcesses, {
        DATABASE_URL: scratch.url,
        DATABASE_POOL_SIZE: String(Math.max(1, Math.round(poolSize / webProcesses))),
        QUEUE_PREFIX: config.QUEUE_PREFIX,
        LOG_LEVEL: 'silent',
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_BOT_TOKEN: 'xoxb-bench',
        SLACK_API_URL: webClients.slack.url,
      });
      const webWarm = await webWarmClients!.run({
        base: web.bases[0]!,
        bases: web.bases,
        key,
        secret: SIGNING_SECRET,
        ids: webWarmIds,
        clients: opts.clients,
      });
      await approvedReach(decided(webWarmIds.length, webWarm), 'the warm-up on the web processes');
      const t0 = performance.now();
      const cpuBefore = web.cpuSeconds();
      const r = await webClients.run({
        base: web.bases[0]!,
        bases: web.bases,
        key,
        secret: SIGNING_SECRET,
        ids: webIds,
        clients: opts.clients,
      });
      await approvedReach(decided(webIds.length, r), 'every decision on the web processes');
      const figures = phaseFigures(r, opts.requests, (performance.now() - t0) / 1000, web.cpuSeconds() - cpuBefore);
      onWeb = { webProcesses, failures: r.failures, ...figures, peakRssMbPerProcess: web.peakRssMb() };
      await web.stop();
      web = undefined;
    }
    const reference = await pgbenchReference(opts.clients, opts.pgbenchSeconds);
    const figures = phaseFigures(saturated, opts.requests, seconds, (cpu.user + cpu.system) / 1e6);
    return {
      scenario: 'decide-http',
      decisions: opts.requests,
      warmupDecisions: opts.warmup,
      clients: opts.clients,
      mix:
        process.env.BENCH_DECIDE_MIX === 'rest'
          ? 'REST approvals only'
          : process.env.BENCH_DECIDE_MIX === 'slack'
            ? 'Slack approve clicks only'
            : 'half Slack approve clicks, half REST approvals',
      failures,
      ...figures,
      ackedPerSecond: round(opts.requests / ackedIn),
      pacedDecisions: pacedIds.length,
      pacedFailures: paced.failures,
      pacedAckP50Ms: round(percentile(paced.acks, 50)),
      pacedAckP99Ms: round(percentile(paced.acks, 99)),
      reference: { tool: 'pgbench tpcb-like', clients: opts.clients, ...reference },
      ratioToPgbench: round(figures.decisionsPerSecond / reference.tps, 3),
      // at the same 32 closed-loop clients, an ack's p99 beside a bare Postgres transaction's (below 1: ours is quicker)
      ackP99ToPgbenchP99: round(figures.ackP99Ms / reference.latencyP99Ms, 3),
      ...(onWeb
        ? {
            webProcesses: {
              ...onWeb,
              ratioToPgbench: round(onWeb.decisionsPerSecond / reference.tps, 3),
              ackP99ToPgbenchP99: round(onWeb.ackP99Ms / reference.latencyP99Ms, 3),
            },
          }
        : {}),
      targets: { ratioToPgbench: 0.5, ackP99Ms: 50 },
    };
  } finally {
    server?.closeAllConnections();
    server?.close();
    clients.stop();
    pacedClients.stop();
    warmClients.stop();
    webWarmClients?.stop();
    webClients?.stop();
    await web?.stop();
    await keyChanges.stop();
    await closeQueues(ctx).catch(() => undefined);
    await scratch.drop();
  }
}

/**
 * One saturated phase's figures: its committed decisions per second, its acks (a click is acknowledged before it is
 * decided, a REST approval after its commit) and the server's CPU per decision (steadier than the rate on a shared,
 * noisy machine, and what bounds it there).
 */
function phaseFigures(r: ClientResults, decisions: number, seconds: number, cpuSeconds: number) {
  return {
    decisionsPerSecond: round((decisions - r.failures) / seconds),
    ackP50Ms: round(percentile(r.acks, 50)),
    ackP99Ms: round(percentile(r.acks, 99)),
    slackAckP50Ms: round(percentile(r.slackAcks, 50)),
    slackAckP99Ms: round(percentile(r.slackAcks, 99)),
    restAckP50Ms: round(percentile(r.restAcks, 50)),
    restAckP99Ms: round(percentile(r.restAcks, 99)),
    serverCpuMsPerDecision: round((cpuSeconds * 1000) / decisions, 3),
    serverCoresBusy: round(cpuSeconds / seconds),
    // the load generator's own share of the machine (it runs beside the server, as pgbench's clients do)
    clientCpuMsPerDecision: round(r.cpuMsPerRequest, 3),
  };
}
