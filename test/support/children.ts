import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { onTestFinished } from 'vitest';
import { waitForOutput } from './wait.ts';

/**
 * Every process a test starts (workers, `signoff start`, CLI runs) goes through here, so none outlives a failure:
 * - spawned inside a test that fails or times out: killed as that test ends;
 * - otherwise killed after the file (test/support/kill-children.ts, a setup file) or when the test process exits;
 * - each carries SIGNOFF_TEST_CHILD=<run>, and the global teardown kills whatever still carries it.
 */
const live = new Set<ChildProcess>();

export const CHILD_MARKER = 'SIGNOFF_TEST_CHILD';

/** The environment for a process a library starts for us (Chromium): marked, so the global teardown can sweep it. */
export const markedEnv = (): NodeJS.ProcessEnv => ({ ...process.env, [CHILD_MARKER]: process.env.SIGNOFF_TEST_RUN ?? 'adhoc' });

export function spawnTracked(command: string, args: string[], opts: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildProcess {
  const proc = spawn(command, args, { ...opts, env: { ...opts.env, [CHILD_MARKER]: process.env.SIGNOFF_TEST_RUN ?? 'adhoc' } });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  proc.once('error', () => live.delete(proc));
  try {
    onTestFinished(({ task }) => {
      if (task.result?.state !== 'pass') return killChild(proc);
    });
  } catch {
    // started in a hook: lives until the file ends
  }
  return proc;
}

const gone = (proc: ChildProcess) => proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined;

/** SIGKILL and wait for the exit. */
export async function killChild(proc: ChildProcess): Promise<void> {
  if (gone(proc)) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGKILL');
  await exited;
}

export async function killAllChildren(): Promise<void> {
  await Promise.all([...live].map(killChild));
}

process.once('exit', () => {
  for (const proc of live) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Collects a started child's stdout and stderr and waits for `marker` in them; a child that exits first, or never
 * says it, is killed and the wait fails with what it printed. Returns the collected output.
 */
export async function awaitStarted(proc: ChildProcess, marker: string, what: string): Promise<() => string> {
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  try {
    await waitForOutput(
      () => out,
      marker,
      what,
      () =>
        proc.exitCode !== null || proc.signalCode !== null ? `exited with ${proc.exitCode ?? proc.signalCode} before it started` : null,
    );
  } catch (e) {
    await killChild(proc);
    throw e;
  }
  return () => out;
}
