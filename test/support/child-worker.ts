import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Config } from '../../src/config.ts';

export interface ChildWorker {
  proc: ChildProcess;
  output: () => string;
  kill(signal: NodeJS.Signals): Promise<number | null>;
}

/** Starts test/support/worker-entry.ts in its own process and resolves once it printed READY. */
export async function startChildWorker(config: Config, env: Record<string, string> = {}): Promise<ChildWorker> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/support/worker-entry.ts'], {
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
  let out = '';
  proc.stdout!.on('data', (c) => (out += c));
  proc.stderr!.on('data', (c) => (out += c));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in 30 s:\n${out}`)), 30_000);
    const check = () => {
      if (out.includes('READY')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code} before it was ready:\n${out}`));
    });
  });
  return {
    proc,
    output: () => out,
    async kill(signal) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const exited = once(proc, 'exit');
      proc.kill(signal);
      const [code] = await exited;
      return code as number | null;
    },
  };
}
