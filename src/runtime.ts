import type { Express } from 'express';
import { createSlackAdapter } from './bots/slack/index.ts';
import { createTeamsAdapter } from './bots/teams/index.ts';
import { buildContext } from './build-context.ts';
import { loadConfig, slackEnabled, teamsEnabled } from './config.ts';
import { openDatabase } from './db/database.ts';
import { createEmailNotifier } from './integrations/email/email-notifier.ts';
import { ApiKeyCache } from './integrations/http/api-key-cache.ts';
import { createHttpApp, startHttpServer } from './integrations/http/app.ts';
import { mountLinkRoutes } from './integrations/http/link-routes.ts';
import { mountWebApp, type WebApp } from './integrations/web/index.ts';
import { startWorkers } from './integrations/queue/workers.ts';
import { createUrlGuard } from './integrations/webhooks/url-safety.ts';
import { createLogger } from './logger.ts';

export type Role = 'web' | 'worker' | 'all';

/**
 * `signoff start`: migrate, then run the web server, the workers, or both. Several processes of each role may
 * run against one Postgres and Redis; SIGTERM lets in-flight jobs and requests finish before exiting.
 */
export async function runSignoff(opts: { role: Role }): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.LOG_LEVEL);
  const db = await openDatabase(config.DATABASE_URL, {
    migrate: true,
    poolSize: config.DATABASE_POOL_SIZE,
    connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS,
  });
  const ctx = buildContext({ config, db, logger, urlGuard: createUrlGuard(config) });

  const slack = slackEnabled(config) ? createSlackAdapter(ctx) : undefined;
  const teams = teamsEnabled(config) ? createTeamsAdapter(ctx) : undefined;
  const email = createEmailNotifier(ctx);
  for (const n of [slack?.notifier, teams?.notifier, email]) if (n) ctx.notifiers.push(n);

  const stops: (() => Promise<void>)[] = [];
  let listeningOn: number | undefined;
  if (opts.role !== 'worker') {
    let web: WebApp | undefined;
    const apiKeys = new ApiKeyCache(db);
    const listening = apiKeys.listen(config.DATABASE_URL, logger);
    ctx.apiKeys = apiKeys;
    stops.push(() => listening.stop());
    const app = createHttpApp(ctx, {
      mount: (a: Express) => {
        slack?.mount(a);
        teams?.mount(a);
        mountLinkRoutes(a, ctx);
        web = mountWebApp(a, ctx);
      },
    });
    const server = await startHttpServer(app, config.PORT);
    listeningOn = server.port;
    logger.info({ port: server.port }, `HTTP listening on port ${server.port}`);
    // open event streams end first, or closing the server would wait for them
    stops.unshift(async () => {
      await web?.stop();
      await server.close();
    });
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight work');
    for (const stop of stops) await stop().catch((e) => logger.error({ err: e }, 'error while stopping'));
    await db.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  // the web server first: while workers wait for an unreachable Redis, /readyz already says so
  if (opts.role !== 'web') {
    const workers = await startWorkers(ctx);
    if (stopping) return void (await workers.stop());
    stops.push(() => workers.stop());
  }
  logger.info(
    // the bound port, which differs from PORT when PORT=0 asks the system for a free one
    { role: opts.role, port: listeningOn, slack: Boolean(slack), teams: Boolean(teams), email: Boolean(email) },
    `Signoff started (${opts.role})${opts.role === 'worker' ? '' : ` on ${config.PUBLIC_URL}`}`,
  );
}
