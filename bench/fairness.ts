import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { RunningWorkers } from '../src/integrations/queue/workers.ts';
import { startWorkers } from '../src/integrations/queue/workers.ts';
import { approveAll, benchContext, startReceiver } from './dispatch.ts';
import { round, waitUntil } from './support.ts';

/**
 * Fairness: the fast endpoint's delivery rate from a backlog of N app.install orders, alone and then with a second
 * endpoint subscribed to the same events that answers only after `slowMs`. Each endpoint may have
 * WEBHOOK_ENDPOINT_CONCURRENCY attempts in flight, so the slow one holds its own slots and no more.
 */
export async function fairnessScenario(opts: { deliveries: number; slowMs: number; concurrency: number }) {
  const b = await benchContext('fairness', {
    WEBHOOK_TIMEOUT_MS: String(opts.slowMs + 10_000),
    WEBHOOK_ENDPOINT_CONCURRENCY: String(opts.concurrency / 2),
  });
  const secret = `whsec_${randomBytes(24).toString('base64')}`;
  const fast = await startReceiver(secret);
  const slow = await startReceiver(secret, { delayMs: opts.slowMs });
  let workers: RunningWorkers | undefined;
  try {
    const { ctx } = b;
    const devices = await b.devices(opts.deliveries);
    await b.db.query(`INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('fast', $1, $2, '{app.install}')`, [
      fast.url,
      secret,
    ]);

    const drainRate = async () => {
      fast.reset();
      await approveAll(ctx, devices, 8);
      const started = performance.now();
      workers = await startWorkers(ctx, { sweeper: false, webhookConcurrency: opts.concurrency });
      await waitUntil(() => fast.receipts.size >= opts.deliveries, 'the fast endpoint', 600_000);
      const rate = opts.deliveries / ((Math.max(...fast.receipts.values()) - started) / 1000);
      return rate;
    };
    const alone = await drainRate();
    await workers!.stop();
    workers = undefined;

    await b.db.query(`INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('slow', $1, $2, '{app.install}')`, [
      slow.url,
      secret,
    ]);
    const withSlow = await drainRate();
    const slowReceived = slow.receipts.size;
    // the slow endpoint's attempts in flight end with its connections
    await slow.close();
    await workers!.stop();
    workers = undefined;
    return {
      scenario: 'fairness',
      deliveries: opts.deliveries,
      slowEndpointAnswersAfterMs: opts.slowMs,
      workerConcurrency: opts.concurrency,
      endpointConcurrency: ctx.config.WEBHOOK_ENDPOINT_CONCURRENCY,
      fastAlonePerSecond: round(alone),
      fastWithSlowPerSecond: round(withSlow),
      slowReceivedMeanwhile: slowReceived,
      reference: { what: 'the fast endpoint alone, same run', perSecond: round(alone) },
      ratioToAlone: round(withSlow / alone, 3),
      targets: { ratioToAlone: 0.9 },
    };
  } finally {
    await workers?.stop().catch(() => undefined);
    await fast.close();
    await slow.close().catch(() => undefined);
    await b.drop();
  }
}
