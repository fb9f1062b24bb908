import type { Request, Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { latestAttemptAt } from '../../core/delivery-queries.ts';
import { listenForNotifications } from '../../db/pg-listener.ts';
import { OUTBOX_CHANNEL } from '../outbox-relay.ts';
import { latestOutboxSeq, outboxSubjectsSince } from './web-queries.ts';

/**
 * Server-sent events for the pages: committed domain events (a submission, a vote, a decision on any channel, a
 * review, a change) are announced on the outbox channel, several commits to a notification; each web process
 * LISTENs once, reads the events that arrived since it last looked, and tells its open pages which request or change
 * moved. Pages fetch themselves again; the event carries no content, so it
 * reveals nothing a person could not open anyway. Pages showing deliveries also hear when a delivery attempt was made.
 */
export function createLiveEvents(ctx: AppContext) {
  const clients = new Set<Response>();
  const log = ctx.logger.child({ component: 'web-live' });
  let stopped = false;
  const broadcast = (data: string) => {
    for (const res of clients) res.write(`event: change\ndata: ${data}\n\n`);
  };

  // Events are read by position. A transaction that took its position earlier may commit after a later one was read,
  // so each read looks back LOOKBACK positions and skips the ones already told.
  const LOOKBACK = 256n;
  let high: bigint | undefined;
  const told = new Set<bigint>();
  let scanning: Promise<void> | null = null;
  let scanAgain = false;
  const scanOnce = async () => {
    if (high === undefined) return;
    const from = high > LOOKBACK ? high - LOOKBACK : 0n;
    const rows = await outboxSubjectsSince(ctx.db, from.toString(), 1000);
    const subjects = new Set<string>();
    for (const r of rows) {
      const seq = BigInt(r.seq);
      if (told.has(seq)) continue;
      told.add(seq);
      if (seq > high) high = seq;
      if (r.subject_type && r.subject_id) subjects.add(JSON.stringify({ subjectType: r.subject_type, subjectId: r.subject_id }));
    }
    for (const seq of told) if (seq <= high - LOOKBACK) told.delete(seq);
    for (const s of subjects) broadcast(s);
    // a burst larger than one read: read on without waiting for the next notification
    if (rows.length === 1000) scanAgain = true;
  };
  const scan = (): Promise<void> => {
    if (scanning) {
      scanAgain = true;
      return scanning;
    }
    scanning = (async () => {
      do {
        scanAgain = false;
        await scanOnce().catch((e) => log.debug({ err: e }, 'could not read new domain events'));
      } while (scanAgain && !stopped);
    })().finally(() => {
      scanning = null;
    });
    return scanning;
  };

  // connected for the first open page; once it listens, events are read from the head of the outbox on
  const listener = listenForNotifications(
    {
      databaseUrl: ctx.config.DATABASE_URL,
      channel: OUTBOX_CHANNEL,
      applicationName: 'signoff-web-live',
      logger: log,
      failure: 'could not LISTEN for live page updates; retrying',
    },
    {
      wanted: () => clients.size > 0,
      listening: async () => {
        high ??= BigInt(await latestOutboxSeq(ctx.db));
      },
      notified: () => void scan(),
    },
  );

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
      listener.ensure();
      req.on('close', () => {
        clients.delete(res);
      });
    },
    async stop(): Promise<void> {
      stopped = true;
      clearInterval(heartbeat);
      clearInterval(attempts);
      for (const res of clients) res.end();
      clients.clear();
      await listener.stop();
    },
  };
}
