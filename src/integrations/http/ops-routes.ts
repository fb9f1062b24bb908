import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { AppContext } from '../../app-context.ts';
import { pingDatabase } from '../../db/database.ts';
import { resolveApiKey } from './api-auth.ts';
import { createRedis } from '../queue/connection.ts';
import { queuesFor } from '../queue/queues.ts';
import { metricsFor } from '../metrics.ts';

/** What /readyz needs from Redis; injectable so tests can present a misconfigured server. */
export interface RedisProbe {
  info(section: 'memory'): Promise<string>;
}

export interface OpsRouterOptions {
  redisProbe?: RedisProbe;
  timeoutMs?: number;
}

export const BULL_BOARD_PATH = '/admin/queues';

const withTimeout = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms).unref()),
  ]);

/**
 * /readyz, /metrics and Bull Board. Readiness demands `maxmemory-policy noeviction`: with eviction Redis may
 * silently drop queue keys, and although the reconciler would recover the work, an instance should not
 * report ready on a Redis that is set up to lose it.
 */
export function createOpsRouter(ctx: AppContext, opts: OpsRouterOptions = {}): Router & { close(): Promise<void> } {
  const router = express.Router();
  const timeoutMs = opts.timeoutMs ?? 2000;
  let probeClient: ReturnType<typeof createRedis> | undefined;
  const probe: RedisProbe = opts.redisProbe ?? {
    async info(section) {
      probeClient ??= createRedis(ctx.config.REDIS_URL, 'probe', `${ctx.config.QUEUE_PREFIX}:readyz`);
      if (probeClient.status === 'wait' || probeClient.status === 'end') await probeClient.connect();
      return probeClient.info(section);
    },
  };

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  router.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    const problems: string[] = [];
    await Promise.all([
      withTimeout(pingDatabase(ctx.db), timeoutMs, 'PostgreSQL')
        .then(() => (checks.postgres = 'ok'))
        .catch((e) => {
          checks.postgres = 'unreachable';
          problems.push(`PostgreSQL is unreachable: ${(e as Error).message}`);
        }),
      withTimeout(probe.info('memory'), timeoutMs, 'Redis')
        .then((info) => {
          const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
          if (policy === 'noeviction') checks.redis = 'ok';
          else {
            checks.redis = `maxmemory-policy is ${policy ?? 'unknown'}`;
            problems.push(
              `Redis maxmemory-policy is ${policy ?? 'unknown'}; BullMQ needs noeviction (CONFIG SET maxmemory-policy noeviction)`,
            );
          }
        })
        .catch((e) => {
          probeClient?.disconnect();
          probeClient = undefined;
          checks.redis = 'unreachable';
          problems.push(`Redis is unreachable: ${(e as Error).message}`);
        }),
    ]);
    res.setHeader('Cache-Control', 'no-store');
    if (problems.length) res.status(503).json({ status: 'not_ready', checks, problems });
    else res.json({ status: 'ready', checks });
  });

  router.get('/metrics', async (_req, res) => {
    const { registry } = metricsFor(ctx);
    res.setHeader('Content-Type', registry.contentType);
    res.end(await registry.metrics());
  });

  // built on first use so a web process that never opens the board does not touch Redis for it
  let board: Router | undefined;
  const buildBoard = (): Router => {
    const serverAdapter = new ExpressAdapter();
    serverAdapter.setBasePath(BULL_BOARD_PATH);
    // @bull-board/express pins its own copy of @bull-board/api, so the adapter types differ by a patch version
    createBullBoard({
      queues: queuesFor(ctx)
        .all()
        .map((q) => new BullMQAdapter(q)),
      serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    });
    return serverAdapter.getRouter() as Router;
  };
  router.use(BULL_BOARD_PATH, adminAuth(ctx), (req, res, next) => (board ??= buildBoard())(req, res, next));

  return Object.assign(router, {
    async close() {
      probeClient?.disconnect();
    },
  });
}

/** Admin API key as `Bearer <key>`, or as the password of HTTP Basic so a browser can open the board. */
function adminAuth(ctx: AppContext) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    let key: string | undefined;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    if (bearer) key = bearer[1];
    else if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      key = decoded.slice(decoded.indexOf(':') + 1);
    }
    const deny = (status: number, detail: string) => {
      if (status === 401) res.setHeader('WWW-Authenticate', 'Basic realm="Signoff admin", charset="UTF-8"');
      res
        .status(status)
        .type('application/problem+json')
        .json({
          type: `https://signoff.dev/problems/${status === 401 ? 'unauthenticated' : 'forbidden'}`,
          title: status === 401 ? 'Authentication is required' : 'Not allowed',
          status,
          detail,
          code: status === 401 ? 'unauthenticated' : 'forbidden',
          instance: req.originalUrl,
        });
    };
    if (!key) return deny(401, 'Sign in with an admin API key (as the password, any user name) or send it as a Bearer token.');
    try {
      const principal = await resolveApiKey(ctx, key);
      if (!principal.scopes.includes('admin')) return deny(403, 'The queue dashboard needs an API key with the "admin" scope.');
      res.locals.principal = principal;
      next();
    } catch {
      deny(401, 'The API key is not valid.');
    }
  };
}
