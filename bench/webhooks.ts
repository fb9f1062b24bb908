import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { Webhook } from 'standardwebhooks';
import { buildContext } from '../src/build-context.ts';
import { loadConfig } from '../src/config.ts';
import { deleteKeysWithPrefix } from '../src/integrations/queue/connection.ts';
import { startWorkers, type RunningWorkers } from '../src/integrations/queue/workers.ts';
import { createLogger } from '../src/logger.ts';
import { percentile, pool, round, scratchDatabase } from './support.ts';

const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const APP_ID = 'App_webhook_bench';

interface Receipt {
  at: number;
  requestId: string;
}

/** A Standard Webhooks receiver on 127.0.0.1 that verifies every signature and records when each id arrived. */
async function startReceiver(secret: string, onReceipt: (r: Receipt) => void) {
  const wh = new Webhook(secret);
  let rejected = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const body = Buffer.concat(chunks).toString('utf8');
      try {
        const payload = wh.verify(body, {
          'webhook-id': String(req.headers['webhook-id']),
          'webhook-timestamp': String(req.headers['webhook-timestamp']),
          'webhook-signature': String(req.headers['webhook-signature']),
        }) as { data: { requestId: string } };
        onReceipt({ at, requestId: payload.data.requestId });
        res.writeHead(204).end();
      } catch {
        rejected++;
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    rejected: () => rejected,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function waitUntil(done: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      if (done()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, 2);
    };
    tick();
  });
}

/** Raw BullMQ on the same Redis: addBulk of N no-op jobs, one Worker at the same concurrency, until all completed. */
async function rawBullmq(prefix: string, jobs: number, concurrency: number): Promise<number> {
  const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  const queue = new Queue('bench-noop', { connection, prefix });
  let completed = 0;
  const worker = new Worker('bench-noop', async () => undefined, { connection: new Redis(REDIS_URL, { maxRetriesPerRequest: null }), prefix, concurrency, autorun: false });
  worker.on('completed', () => completed++);
  await worker.waitUntilReady();
  try {
    const started = performance.now();
    void worker.run();
    await queue.addBulk(Array.from({ length: jobs }, (_, i) => ({ name: 'noop', data: { i }, opts: { removeOnComplete: true } })));
    await waitUntil(() => completed >= jobs, 'the no-op jobs', 60_000);
    return jobs / ((performance.now() - started) / 1000);
  } finally {
    await worker.close();
    await queue.close();
    connection.disconnect();
  }
}

/**
 * End-to-end signed webhook delivery: N approvals committed through the core (CreateApprovedRequest for N
 * devices), each one's outbox row relayed by LISTEN/NOTIFY into BullMQ, fanned out to one endpoint and POSTed
 * signed to a local receiver by the in-process workers (startWorkers). Measured twice: while committing
 * (throughput and commit-to-receipt latency) and as a backlog drained from worker start (pipeline throughput). Reference: raw BullMQ no-op throughput at the same
 * worker concurrency, measured in the same run on the same Redis.
 */
export async function webhooksScenario(opts: { deliveries: number; concurrency: number; commitConcurrency: number }) {
  const scratch = await scratchDatabase('webhooks');
  const prefix = `signoff_bench_${randomBytes(3).toString('hex')}`;
  const { db } = scratch;
  const commits = new Map<string, number>();
  // receipts of the current phase, by request id (each phase orders one install per device)
  let receipts = new Map<string, number>();
  let duplicates = 0;
  let workers: RunningWorkers | undefined;
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const receiver = await startReceiver(secret, (r) => {
    if (receipts.has(r.requestId)) duplicates++;
    else receipts.set(r.requestId, r.at);
  });
  try {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: scratch.url,
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      LOG_LEVEL: 'silent',
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
    });
    const ctx = buildContext({ config, db, logger: createLogger('silent') });
    await db.query(`INSERT INTO applications (id, name, per_device) VALUES ($1, 'Webhook bench', true)`, [APP_ID]);
    const devices = await db.query<{ client_guid: string }>(
      `INSERT INTO devices (client_guid, name) SELECT 'GUID:' || md5('bench' || g), 'PC-' || g FROM generate_series(1, $1) g RETURNING client_guid`,
      [opts.deliveries],
    );
    await db.query(`INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('bench', $1, $2, '{app.install}')`, [receiver.url, secret]);
    const actor = { id: null, label: 'api:bench', channel: 'api' as const };
    const approveAll = (onCommit?: (requestId: string) => void) =>
      pool(devices, opts.commitConcurrency, async (d) => {
        const { request } = await ctx.requests.createApproved(actor, { applicationId: APP_ID, clientGuid: d.client_guid });
        onCommit?.(request.id);
      });

    // 1. streaming: approvals committed while the workers run; latency from each commit to its receipt
    workers = await startWorkers(ctx, { sweeper: false, webhookConcurrency: opts.concurrency });
    const started = performance.now();
    await approveAll((id) => commits.set(id, performance.now()));
    const committedIn = (performance.now() - started) / 1000;
    await waitUntil(() => receipts.size >= opts.deliveries, `${opts.deliveries} signed webhooks`, 120_000);
    const streamSeconds = (Math.max(...receipts.values()) - started) / 1000;
    const latencies = [...receipts].map(([id, at]) => Math.max(0, at - (commits.get(id) ?? at))).sort((a, b) => a - b);
    await workers.stop();
    workers = undefined;

    // 2. backlog: the same number of install orders committed with no worker running (CreateApprovedRequest
    // again orders the install again), then drained: the delivery pipeline alone, not bounded by commit speed
    receipts = new Map();
    await approveAll();
    const drainStart = performance.now();
    workers = await startWorkers(ctx, { sweeper: false, webhookConcurrency: opts.concurrency });
    await waitUntil(() => receipts.size >= opts.deliveries, `${opts.deliveries} backlog webhooks`, 120_000);
    const drainPerSecond = opts.deliveries / ((Math.max(...receipts.values()) - drainStart) / 1000);
    await workers.stop();
    workers = undefined;

    const reference = await rawBullmq(prefix, opts.deliveries, opts.concurrency);
    return {
      scenario: 'webhook-delivery',
      deliveries: opts.deliveries,
      workerConcurrency: opts.concurrency,
      commitConcurrency: opts.commitConcurrency,
      commitsPerSecond: round(opts.deliveries / committedIn),
      // end to end while committing: bounded by the commit rate when delivery keeps up
      deliveriesPerSecond: round(opts.deliveries / streamSeconds),
      p50Ms: round(percentile(latencies, 50)),
      p95Ms: round(percentile(latencies, 95)),
      // a backlog of committed install orders drained from worker start-up (relay + fan-out + signed POST)
      backlogDeliveriesPerSecond: round(drainPerSecond),
      duplicates,
      badSignatures: receiver.rejected(),
      reference: { tool: 'bullmq addBulk + Worker, no-op jobs', jobs: opts.deliveries, concurrency: opts.concurrency, jobsPerSecond: round(reference) },
      // each delivery is two jobs (relay, delivery) plus Postgres transactions and an HTTP POST; a no-op is one job
      ratioToRawBullmq: round(drainPerSecond / reference, 3),
    };
  } finally {
    await workers?.stop().catch(() => undefined);
    await receiver.close();
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await deleteKeysWithPrefix(redis, prefix).finally(() => redis.disconnect());
    await scratch.drop();
  }
}
