import type { AppContext } from '../../app-context.ts';
import { TimerService, type SweepResult } from '../../core/timer-service.ts';

export interface Sweeper {
  /** one sweep now; resolves when it is done (tests drive it with a manual clock) */
  runOnce(): Promise<SweepResult | null>;
  stop(): Promise<void>;
}

/** A TimerService of its own (the context already holds one, `ctx.timers`, which the sweeper uses by default). */
export function createTimerService(ctx: AppContext): TimerService {
  const log = ctx.logger.child({ component: 'timers' });
  return new TimerService(ctx.db, ctx.clock, ctx.requests, {
    onError: (kind, id, err) => log.error({ err, kind, id }, 'timer action failed; it stays due and is retried on the next sweep'),
  });
}

/**
 * A plain loop rather than a BullMQ repeatable job: timers live in Postgres, so they keep firing while Redis
 * is down (their effects wait in the outbox). Every worker runs one; SKIP LOCKED keeps them from doubling up.
 */
export function startSweeper(ctx: AppContext, opts: { intervalMs?: number; timers?: TimerService } = {}): Sweeper {
  const log = ctx.logger.child({ component: 'sweeper' });
  const timers = opts.timers ?? ctx.timers;
  const intervalMs = opts.intervalMs ?? ctx.config.SWEEP_INTERVAL_MS;
  let stopped = false;
  let current: Promise<SweepResult | null> | null = null;
  let timer: NodeJS.Timeout | null = null;

  const runOnce = (): Promise<SweepResult | null> => {
    if (stopped) return Promise.resolve(null);
    current ??= timers
      .sweep()
      .then((r) => {
        if (Object.values(r).some((n) => n > 0)) log.info(r, 'timers fired');
        return r;
      })
      .catch((e) => {
        log.warn({ err: e }, 'sweep failed; trying again next interval');
        return null;
      })
      .finally(() => {
        current = null;
      });
    return current;
  };

  const loop = async () => {
    await runOnce();
    if (!stopped) timer = setTimeout(() => void loop(), intervalMs);
  };
  timer = setTimeout(() => void loop(), Math.min(intervalMs, 1000));

  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
    },
  };
}
