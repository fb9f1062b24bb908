import express, { type Router } from 'express';
import type { AppContext } from '../../app-context.ts';

/** Stub until the queue work lands: /readyz checks Postgres only; Redis and /metrics come with the workers. */
export function createOpsRouter(ctx: AppContext): Router {
  const router = express.Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    try {
      await ctx.db.query('SELECT 1');
      res.json({ status: 'ready', checks: { postgres: 'ok' } });
    } catch {
      res.status(503).json({ status: 'not_ready', checks: { postgres: 'unreachable' } });
    }
  });
  return router;
}
