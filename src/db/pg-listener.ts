import pg from 'pg';
import type { Logger } from '../logger.ts';

export interface ListenerHooks {
  /** LISTEN is in place: every notification from now on is heard (a rejection counts as a lost connection) */
  listening?: () => void | Promise<void>;
  /** the connection is gone: notifications may go unheard until `listening` is called again */
  lost?: () => void;
  notified: (payload: string | undefined) => void;
  /** whether a connection is wanted now; when not, none is opened (nor opened again after a loss) */
  wanted?: () => boolean;
}

const RETRY_MS = 2000;

/**
 * LISTENs on a connection of its own (a pooled one would hand the LISTEN to whoever borrows it next), opened again
 * 2 s after it is lost, for as long as it is wanted. What a listener may assume while the connection is down is
 * its own business: the hooks tell it when hearing stops and starts.
 */
export function listenForNotifications(
  opts: { databaseUrl: string; channel: string; applicationName: string; logger: Logger; failure: string },
  hooks: ListenerHooks,
): { ensure(): void; stop(): Promise<void> } {
  let client: pg.Client | null = null;
  let stopped = false;
  let retry: NodeJS.Timeout | null = null;
  const connect = async () => {
    retry = null;
    if (stopped || client || !(hooks.wanted?.() ?? true)) return;
    const c = new pg.Client({ connectionString: opts.databaseUrl, application_name: opts.applicationName });
    client = c;
    const lost = () => {
      if (client !== c) return;
      client = null;
      hooks.lost?.();
      c.end().catch(() => undefined);
      if (!stopped && !retry) retry = setTimeout(() => void connect(), RETRY_MS);
    };
    c.on('error', lost);
    c.on('end', lost);
    c.on('notification', (msg) => {
      if (msg.channel === opts.channel && client === c) hooks.notified(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${opts.channel}`);
      if (client === c) await hooks.listening?.();
    } catch (e) {
      if (!stopped) opts.logger.warn({ err: e }, opts.failure);
      lost();
    }
  };
  return {
    ensure: () => void connect(),
    stop: async () => {
      stopped = true;
      if (retry) clearTimeout(retry);
      const c = client;
      client = null;
      if (c) hooks.lost?.();
      await c?.end().catch(() => undefined);
    },
  };
}
