import type { AppContext } from './app-context.ts';
import type { Config } from './config.ts';
import { CatalogService } from './core/catalog-service.ts';
import { ChangeService } from './core/change-service.ts';
import { systemClock, type Clock } from './core/clock.ts';
import type { UrlGuard } from './core/ports.ts';
import { RequestService } from './core/request-service.ts';
import { ReviewService } from './core/review-service.ts';
import { TimerService } from './core/timer-service.ts';
import type { Database } from './db/database.ts';
import { createLogger, type Logger } from './logger.ts';
import { deviceManagersFor } from './integrations/device-managers/connector-registry.ts';
import { createUrlGuard } from './integrations/webhooks/url-safety.ts';

/** Wires the core services; adapters and workers are attached by the runtime. */
export function buildContext(opts: { config: Config; db: Database; clock?: Clock; logger?: Logger; urlGuard?: UrlGuard }): AppContext {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? createLogger(opts.config.LOG_LEVEL);
  const requests = new RequestService(opts.db, clock);
  const timerLog = logger.child({ component: 'timers' });
  return {
    config: opts.config,
    db: opts.db,
    clock,
    logger,
    requests,
    timers: new TimerService(opts.db, clock, {
      onError: (kind, id, err) => timerLog.error({ err, kind, id }, 'timer action failed; it stays due and is retried on the next sweep'),
    }),
    reviews: new ReviewService(opts.db, clock),
    changes: new ChangeService(opts.db, clock),
    catalog: new CatalogService(opts.db, clock, opts.urlGuard ?? createUrlGuard(opts.config), deviceManagersFor(opts.config).check),
    notifiers: [],
  };
}
