import { execFile } from 'node:child_process';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI entry point, as `npx signoff` would, against the given database; killed if it hangs. */
export function runCli(databaseUrl: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['bin/signoff.mjs', ...args],
      {
        cwd: ROOT,
        env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: databaseUrl, DATABASE_CONNECT_TIMEOUT_MS: '60000', WEBHOOK_ALLOW_HOSTS: 'dm.example.com', LOG_LEVEL: 'silent', ...env },
        timeout: 120_000,
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
