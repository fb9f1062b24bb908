export interface PeriodicTask<T> {
  /** one run now, or the one already under way; resolves with its result, null once stopped or when it failed */
  runOnce(): Promise<T | null>;
  /** no further runs; waits for the one under way */
  stop(): Promise<void>;
}

/**
 * Runs `work` every `intervalMs` (measured from the end of one run to the start of the next, so runs never
 * overlap), the first after `firstDelayMs`. A failed run is reported and the loop goes on.
 */
export function startPeriodicTask<T>(
  work: () => Promise<T>,
  opts: { intervalMs: number; firstDelayMs: number; onError: (e: unknown) => void; enabled?: boolean },
): PeriodicTask<T> {
  let stopped = opts.enabled === false;
  let current: Promise<T | null> | null = null;
  let timer: NodeJS.Timeout | null = null;

  const runOnce = (): Promise<T | null> => {
    if (stopped) return Promise.resolve(null);
    current ??= work()
      .catch((e: unknown) => {
        opts.onError(e);
        return null;
      })
      .finally(() => {
        current = null;
      });
    return current;
  };

  const loop = async () => {
    await runOnce();
    if (!stopped) timer = setTimeout(() => void loop(), opts.intervalMs);
  };
  if (!stopped) timer = setTimeout(() => void loop(), opts.firstDelayMs);

  return {
    runOnce,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await current;
    },
  };
}
