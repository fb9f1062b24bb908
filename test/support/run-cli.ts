import { spawnTracked, killChild } from './children.ts';
import { HANG_LIMIT_MS } from './wait.ts';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real CLI entry point, as `npx signoff` would, against the given database. A run that outlasts the hang
 * limit is killed and fails the test with its output; a test that fails or times out kills it too.
 */
export function runCli(databaseUrl: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const proc = spawnTracked(process.execPath, ['bin/signoff.mjs', ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        DATABASE_URL: databaseUrl,
        DATABASE_CONNECT_TIMEOUT_MS: '60000',
        WEBHOOK_ALLOW_HOSTS: 'dm.example.com',
        LOG_LEVEL: 'silent',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (c) => (stdout += c));
    proc.stderr!.setEncoding('utf8').on('data', (c) => (stderr += c));
    const hung = setTimeout(() => {
      void killChild(proc);
      reject(
        new Error(
          `hung: \`signoff ${args.join(' ')}\` still running after ${HANG_LIMIT_MS / 1000} s\nstdout: ${stdout}\nstderr: ${stderr}`,
        ),
      );
    }, HANG_LIMIT_MS);
    hung.unref();
    proc.once('error', (e) => {
      clearTimeout(hung);
      reject(e);
    });
    proc.once('close', (code, signal) => {
      clearTimeout(hung);
      resolve({ code: code ?? (signal ? 1 : 0), stdout, stderr });
    });
  });
}
