import type { Config } from './config.ts';
import type { ApiKeyVerifier } from './core/api-keys.ts';
import type { Clock } from './core/clock.ts';
import type { ChatNotifier, Mailer } from './core/ports.ts';
import type { RequestService } from './core/request-service.ts';
import type { ChangeService } from './core/change-service.ts';
import type { CatalogService } from './core/catalog-service.ts';
import type { ReviewService } from './core/review-service.ts';
import type { TimerService } from './core/timer-service.ts';
import type { Database } from './db/database.ts';
import type { Logger } from './logger.ts';

/** Everything a process shares: built once by the runtime, handed to every adapter and worker. */
export interface AppContext {
  config: Config;
  db: Database;
  clock: Clock;
  logger: Logger;
  requests: RequestService;
  changes: ChangeService;
  catalog: CatalogService;
  /** timed work: the sweeper runs it */
  timers: TimerService;
  /** periodic access reviews: list, read and decide them here */
  reviews: ReviewService;
  /** chat platforms register here when enabled; the outbox relay hands them every domain event */
  notifiers: ChatNotifier[];
  mailer?: Mailer;
  /** the REST API's keys as a web process keeps them; without it every call reads its key */
  apiKeys?: ApiKeyVerifier;
}
