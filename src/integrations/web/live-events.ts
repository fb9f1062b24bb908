import pg from 'pg';
import type { Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { latestAttemptAt } from '../../core/delivery-queries.ts';
import { OUTBOX_CHANNEL } from '../outbox-relay.ts';
import { outboxSubject } from './web-queries.ts';

/**
 * Server-sent events for the pages: every committed domain event (a submission, a vote, a decision on any channel,
 * a review, a change) is announced by Postgres on the outbox channel; each web process LISTENs once and tells its
 * open pages which request or change moved. Pages fetch themselves again; the event carries no content, so it
 * reveals nothing a person could not open anyway. Pages showing deliveries also hear when a delivery attempt was made.
 */
export function createLiveEvents(ctx: AppContext) {
  const clients = new Set<Response>();
  const log = ctx.logger.child({ component: 'web-live' });
  let client: pg.Client | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;

  const broadcast = (data: string) => {
    for (const res of clients) res.write(`event: change\ndata: ${data}\n\n`);
  };

  const connect = async () => {
    if (stopped || clients.size === 0 || client) return;
    const c = new pg.Client({ connectionString: ctx.config.DATABASE_URL, application_name: 'signoff-web-live' });
    client = c;
    const again = () => {
      if (client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      if (!stopped) retry = setTimeout(() => void connect(), 2000);
    };
    c.on('error', again);
    c.on('end', again);
    c.on('notification', (msg) => {
      if (msg.channel !== OUTBOX_CHANNEL || !msg.payload) return;
      outboxSubject(ctx.db, msg.payload)
        .then((row) => row && broadcast(JSON.stringify({ subjectType: row.subject_type, subjectId: row.subject_id })))
        .catch((e) => log.debug({ err: e }, 'could not read an outbox row'));
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (e) {
      log.warn({ err: e }, 'could not LISTEN for live page updates; retrying');
      again();
    }
  };

  // idle connections through proxies are cut; a comment line every 25 s keeps the stream open
  const heartbeat = setInterval(() => {
    for (const res of clients) res.write(': keep-alive\n\n');
  }, 25_000);
  heartbeat.unref();

  // delivery attempts raise no domain event: while pages are open, the newest attempt (an index lookup) is watched
  let lastAttempt: string | null | undefined;
  const attempts = setInterval(() => {
    if (clients.size === 0) return;
    latestAttemptAt(ctx.db)
      .then((at) => {
        if (lastAttempt !== undefined && at !== lastAttempt) broadcast(JSON.stringify({ subjectType: 'delivery', subjectId: 'delivery' }));
        lastAttempt = at;
      })
      .catch(() => undefined);
  }, 2000);
  attempts.unref();

  return {
    handler(req: Request, res: Response): void {
      res
        .status(200)
        .set({ 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      res.flushHeaders();
      res.write('retry: 3000\n\n');
      clients.add(res);
      void connect();
      req.on('close', () => {
        clients.delete(res);
      });
    },
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(heartbeat);
      clearInterval(attempts);
      if (retry) clearTimeout(retry);
      for (const res of clients) res.end();
      clients.clear();
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
