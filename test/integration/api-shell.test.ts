import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.ts';
import { createHttpApp, startHttpServer } from '../../src/integrations/http/app.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness({ MAX_BODY_BYTES: '2048' });
});
afterAll(() => h.close());

describe('HTTP shell', () => {
  it('answers liveness and readiness, and tags every response with a request id', async () => {
    const live = await request(h.app).get('/healthz').set('X-Request-Id', 'trace-123');
    expect(live.status).toBe(200);
    expect(live.headers['x-request-id']).toBe('trace-123');
    const ready = await request(h.app).get('/readyz');
    expect(ready.status).toBe(200);
    const odd = await request(h.app).get('/healthz').set('X-Request-Id', 'bad id with spaces');
    expect(odd.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('gives mounted adapters the raw body, before any JSON parsing, and maps their errors', async () => {
    let seen: string | undefined;
    const app = createHttpApp(h.t.ctx, {
      mount: (a) => {
        a.post('/slack/events', express.raw({ type: '*/*' }), (req, res) => {
          seen = (req.body as Buffer).toString('utf8');
          res.status(200).send('ok');
        });
        a.post('/api/messages', () => {
          throw new AppError('unauthenticated', 'bad bot token');
        });
      },
    });
    const payload = '{"type":"url_verification",  "challenge":"abc"}';
    await request(app).post('/slack/events').set('Content-Type', 'application/json').send(payload).expect(200);
    expect(seen).toBe(payload);
    const teams = await request(app).post('/api/messages').send({});
    expect(teams.status).toBe(401);
    expect(teams.headers['content-type']).toMatch(/^application\/problem\+json/);
    const wrongMethod = await request(app).get('/slack/events');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });

  it('applies MAX_BODY_BYTES to API bodies only', async () => {
    const big = await h.as(h.keys.write).post('/api/v1/requests', { applicationId: 'x', username: 'y', justification: 'z'.repeat(3000) });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ code: 'payload_too_large', limit: 2048 });
  });

  it('hides unexpected errors behind a 500 problem', async () => {
    const original = h.t.ctx.requests.list;
    h.t.ctx.requests.list = async () => {
      throw new TypeError('secret internals at line 42');
    };
    try {
      const res = await h.as(h.keys.read).get('/api/v1/requests');
      expect(res.status).toBe(500);
      expect(res.body).toMatchObject({ code: 'internal', status: 500, type: 'https://signoff.dev/problems/internal' });
      expect(res.text).not.toMatch(/secret internals/);
    } finally {
      h.t.ctx.requests.list = original;
    }
  });

  it('serves on a real port and closes gracefully, letting a request in flight finish', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const app = createHttpApp(h.t.ctx, {
      mount: (a) => {
        a.get('/slow', async (_req, res) => {
          entered();
          await gate;
          res.json({ done: true });
        });
      },
    });
    const server = await startHttpServer(app, 0, { host: '127.0.0.1' });
    const inflight = fetch(`http://127.0.0.1:${server.port}/slow`);
    await inside;
    const closed = server.close();
    release();
    const res = await inflight;
    expect(await res.json()).toEqual({ done: true });
    await closed;
    await expect(fetch(`http://127.0.0.1:${server.port}/healthz`)).rejects.toThrow();
  });
});
