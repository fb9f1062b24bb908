import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Config } from '../../src/config.ts';
import { awaitStarted, spawnTracked } from './children.ts';

export interface ChildWorker {
  proc: ChildProcess;
  output: () => string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts test/support/worker-entry.ts in its own process and resolves once it printed READY. */
export async function startChildWorker(config: Config, env: Record<string, string> = {}): Promise<ChildWorker> {
  const proc = spawnTracked(process.execPath, ['--import', 'tsx', 'test/support/worker-entry.ts'], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: config.DATABASE_URL,
      REDIS_URL: config.REDIS_URL,
      QUEUE_PREFIX: config.QUEUE_PREFIX,
      WEBHOOK_ALLOW_HOSTS: config.WEBHOOK_ALLOW_HOSTS.join(','),
      WEBHOOK_TIMEOUT_MS: String(config.WEBHOOK_TIMEOUT_MS),
      WEBHOOK_MAX_ATTEMPTS: String(config.WEBHOOK_MAX_ATTEMPTS),
      OUTBOX_RECONCILE_MS: String(config.OUTBOX_RECONCILE_MS),
      SWEEP_INTERVAL_MS: String(config.SWEEP_INTERVAL_MS),
      DATABASE_CONNECT_TIMEOUT_MS: String(config.DATABASE_CONNECT_TIMEOUT_MS),
      LOG_LEVEL: process.env.TEST_CHILD_LOG_LEVEL ?? 'silent',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = await awaitStarted(proc, 'READY', 'the worker process to start');
  return {
    proc,
    output,
    async kill(signal) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}
