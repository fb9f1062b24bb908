import type { AppContext } from '../../app-context.ts';
import { TimerService, type SweepResult } from '../../core/timer-service.ts';
import { startPeriodicTask, type PeriodicTask } from '../periodic-task.ts';

/** `runOnce()` sweeps now and resolves when done (tests drive it with a manual clock). */
export type Sweeper = PeriodicTask<SweepResult>;

/** A TimerService of its own (the context already holds one, `ctx.timers`, which the sweeper uses by default). */
export function createTimerService(ctx: AppContext): TimerService {
  const log = ctx.logger.child({ component: 'timers' });
  return new TimerService(ctx.db, ctx.clock, {
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
  return startPeriodicTask(
    async () => {
      const r = await timers.sweep();
      if (Object.values(r).some((n) => n > 0)) log.info(r, 'timers fired');
      return r;
    },
    {
      intervalMs,
      firstDelayMs: Math.min(intervalMs, 1000),
      onError: (e) => log.warn({ err: e }, 'sweep failed; trying again next interval'),
    },
  );
}
