import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { awaitStarted, killAllChildren, spawnTracked } from '../support/children.ts';
import { startReceiver, type Receiver } from '../support/webhook-receiver.ts';
import { waitFor } from '../support/wait.ts';

/**
 * `signoff start --role web` and `--role worker` as two real processes (bin/signoff.mjs, as an operator runs
 * them) against one Postgres and Redis.
 */
let t: TestContext;
let r: Receiver;

async function start(role: 'web' | 'worker', env: Record<string, string>) {
  const proc = spawnTracked(process.execPath, ['bin/signoff.mjs', 'start', '--role', role], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: t.ctx.config.DATABASE_URL,
      QUEUE_PREFIX: t.ctx.config.QUEUE_PREFIX,
      WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
      OUTBOX_RECONCILE_MS: '60000',
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = await awaitStarted(proc, `Signoff started (${role})`, `the ${role} process to start`);
  return { proc, out };
}

async function terminate(p: { proc: ChildProcess }): Promise<number | null> {
  if (p.proc.exitCode !== null) return p.proc.exitCode;
  const exited = once(p.proc, 'exit');
  p.proc.kill('SIGTERM');
  return ((await exited) as [number | null])[0];
}

beforeAll(async () => {
  t = await createTestContext();
  await seedContoso(t.tdb.db);
  r = await startReceiver();
});
afterAll(async () => {
  await killAllChildren();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('signoff start --role web + --role worker', () => {
  it('an approval made through the web process is delivered by the worker process; SIGTERM lets the delivery finish, both exit 0', async () => {
    const endpointId = await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
    const key = (await createApiKey(t.tdb.db, 'dm', ['requests:write', 'requests:read'])).key;
    // the receiver holds the first delivery until told to answer: the worker is mid-delivery when SIGTERM comes
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    r.setHandler(async () => {
      await released;
      return { status: 200 };
    });

    // PORT=0: the web process binds a free port and logs it (no window for another test to take it first)
    const web = await start('web', { PORT: '0' });
    const port = Number(/"port":(\d+)/.exec(web.out())?.[1]);
    expect(port).toBeGreaterThan(0);
    // the worker gets the same PORT: it would die with EADDRINUSE if it tried to listen
    const worker = await start('worker', { PORT: String(port) });
    expect(web.out()).not.toMatch(/workers started/);
    expect(worker.out()).toMatch(/workers started/);

    const res = await fetch(`http://127.0.0.1:${port}/api/v1/approved-requests`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ applicationId: VISIO, clientGuid: BOB_LAPTOP }),
    });
    expect(res.status).toBeLessThan(300);
    const request = (await res.json()) as { id: string; status: string };
    expect(request.status).toBe('approved');

    await waitFor(() => r.received.length === 1, 'the worker to start the delivery');
    // the web process serves HTTP; the worker, given the same PORT, never bound it
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    const workerExit = terminate(worker);
    await waitFor(() => worker.out().includes('shutting down'), 'the worker to begin shutting down');
    expect(worker.proc.exitCode).toBeNull();
    release();
    expect(await workerExit).toBe(0);
    expect(worker.out()).toMatch(/workers stopped/);

    const d = await t.tdb.db.one<{ status: string; attempts: number }>(
      `SELECT status, attempts FROM webhook_deliveries WHERE endpoint_id = $1`,
      [endpointId],
    );
    expect(d).toEqual({ status: 'succeeded', attempts: 1 });
    expect(new Set(r.received.map((m) => m.id)).size).toBe(1); // one webhook (a same-id redelivery would be allowed)
    expect(r.received[0]!.verified).toBe(true);
    expect(r.received[0]!.payload).toMatchObject({ type: 'app.install', data: { requestId: request.id, clientGuid: BOB_LAPTOP } });

    expect(await terminate(web)).toBe(0);
  });
});

describe('signoff start (web and workers in one process) with Redis unreachable', () => {
  it('serves HTTP meanwhile, /readyz saying what is missing, logs the outage once, and stops on SIGTERM', async () => {
    const proc = spawnTracked(process.execPath, ['bin/signoff.mjs', 'start'], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        PORT: '0',
        DATABASE_URL: t.ctx.config.DATABASE_URL,
        QUEUE_PREFIX: t.ctx.config.QUEUE_PREFIX,
        REDIS_URL: 'redis://127.0.0.1:1',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out = await awaitStarted(proc, 'Redis cannot be reached', 'the server to report Redis unreachable');
    // the web server listens before the workers wait for Redis, and says on which port
    const port = await waitFor(async () => {
      const m = /"port":(\d+)[^\n]*HTTP listening/.exec(out());
      return m ? Number(m[1]) : undefined;
    }, 'the listening port in the log');
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { postgres: 'ok', redis: 'unreachable' } });
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(out().match(/Redis cannot be reached/g)).toHaveLength(1);
    expect(out()).not.toMatch(/ECONNREFUSED[\s\S]*\n\s+at /);
    expect(await terminate({ proc })).toBe(0);
  });
});
