import request from 'supertest';
import type { Express } from 'express';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { seedContoso, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

export interface ApiHarness {
  t: TestContext;
  s: Seeded;
  app: Express;
  keys: { write: string; read: string; changes: string; admin: string; changes2: string };
  /** supertest against the app, with the key as Bearer */
  as(key: string): {
    get(path: string): request.Test;
    post(path: string, body?: unknown, headers?: Record<string, string>): request.Test;
  };
  counts(): Promise<Record<string, number>>;
  outbox(subjectId: string): Promise<{ type: string; payload: any }[]>;
  close(): Promise<void>;
}

export async function createApiHarness(env: Record<string, string> = {}, opts: { poolSize?: number } = {}): Promise<ApiHarness> {
  const t = await createTestContext(env, opts);
  const s = await seedContoso(t.tdb.db);
  const db = t.tdb.db;
  const keys = {
    write: (await createApiKey(db, 'cm-connector', ['requests:read', 'requests:write'])).key,
    read: (await createApiKey(db, 'reporting', ['requests:read'])).key,
    changes: (await createApiKey(db, 'maa-portal', ['changes:write'])).key,
    changes2: (await createApiKey(db, 'maa-portal-2', ['changes:write'])).key,
    admin: (await createApiKey(db, 'ops', ['admin'])).key,
  };
  const app = createHttpApp(t.ctx);
  return {
    t,
    s,
    app,
    keys,
    as: (key) => ({
      get: (path) => request(app).get(path).set('Authorization', `Bearer ${key}`),
      post: (path, body, headers = {}) => {
        const r = request(app).post(path).set('Authorization', `Bearer ${key}`).set(headers);
        return body === undefined ? r : r.send(body as object);
      },
    }),
    counts: async () => {
      const row = await db.one<Record<string, string>>(
        `SELECT (SELECT count(*) FROM requests) AS requests, (SELECT count(*) FROM request_decisions) AS decisions,
                (SELECT count(*) FROM changes) AS changes, (SELECT count(*) FROM outbox) AS outbox,
                (SELECT count(*) FROM audit_events) AS audit_events`,
      );
      return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)]));
    },
    outbox: (subjectId) =>
      db.query<{ type: string; payload: any }>('SELECT type, payload FROM outbox WHERE subject_id = $1 ORDER BY seq', [subjectId]),
    close: () => t.close(),
  };
}

export const webhookTypes = (rows: { payload: any }[]) => rows.flatMap((r) => webhooksOfRow(r).map((w) => w.type));
