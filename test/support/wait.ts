/**
 * Waiting in tests: a limit here is a hang detector, not a speed assertion. On two cores shared with other test
 * runs a worker, a child process or a Postgres round trip may take minutes, so every wait polls its condition up to
 * one generous limit below vitest's 300 s testTimeout, and says on failure what it awaited and what it last saw.
 */

/** How long any wait in the tests may take before it counts as a hang (SIGNOFF_TEST_WAIT_MS overrides). */
export const HANG_LIMIT_MS = Number(process.env.SIGNOFF_TEST_WAIT_MS) || 240_000;

export interface WaitOptions {
  /** poll interval; defaults to 25 ms */
  intervalMs?: number;
  /** describes the state observed when the wait gives up (defaults to the last value the condition returned) */
  state?: () => unknown;
}

/** Thrown from a condition to stop waiting at once (the awaited thing can no longer happen, e.g. the process exited). */
export class GiveUp extends Error {}

const show = (v: unknown): string => {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
};

/** Polls until `fn` returns a truthy value; fails after HANG_LIMIT_MS naming `what` and the last observed state. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  what: string,
  options: WaitOptions | number = {},
  legacyIntervalMs?: number,
): Promise<NonNullable<T>> {
  // the old (fn, what, timeoutMs, intervalMs) form still compiles, but a number never shortens the hang limit
  const opts: WaitOptions = typeof options === 'number' ? { intervalMs: legacyIntervalMs } : options;
  const started = Date.now();
  const intervalMs = opts.intervalMs ?? 25;
  let lastValue: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      lastValue = v;
      lastError = undefined;
    } catch (e) {
      if (e instanceof GiveUp) throw e;
      lastError = e;
    }
    if (Date.now() - started > HANG_LIMIT_MS) {
      let state: string;
      try {
        state = opts.state ? show(await opts.state()) : show(lastValue);
      } catch (e) {
        state = `(state unavailable: ${(e as Error).message})`;
      }
      throw new Error(
        `hung: waited ${Math.round((Date.now() - started) / 1000)} s for ${what}; last observed: ${state}${lastError ? `; last error: ${(lastError as Error).message}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Resolves when `text()` contains `marker`; rejects at once if `exited()` says the process is gone. */
export function waitForOutput(text: () => string, marker: string, what: string, exited: () => string | null): Promise<true> {
  return waitFor(
    () => {
      const gone = exited();
      if (gone !== null) throw new GiveUp(`${what}: ${gone}:\n${text()}`);
      return text().includes(marker) || null;
    },
    what,
    { state: () => text().slice(-2000), intervalMs: 50 },
  ) as Promise<true>;
}
