import type { AppContext } from './app-context.ts';
import type { Config } from './config.ts';
import { CatalogService, type UrlGuard } from './core/catalog-service.ts';
import { ChangeService } from './core/change-service.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { RequestService } from './core/request-service.ts';
import type { Database } from './db/database.ts';
import { createLogger, type Logger } from './logger.ts';
import { createUrlGuard } from './integrations/webhooks/url-safety.ts';

/** Wires the core services; adapters and workers are attached by the runtime. */
export function buildContext(opts: { config: Config; db: Database; clock?: Clock; logger?: Logger; urlGuard?: UrlGuard }): AppContext {
  const clock = opts.clock ?? systemClock;
  return {
    config: opts.config,
    db: opts.db,
    clock,
    logger: opts.logger ?? createLogger(opts.config.LOG_LEVEL),
    requests: new RequestService(opts.db, clock),
    changes: new ChangeService(opts.db, clock),
    catalog: new CatalogService(opts.db, clock, opts.urlGuard ?? createUrlGuard(opts.config)),
    notifiers: [],
  };
}
