import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort } from '../test/support/ports.ts';
import { SERVER_NODE_OPTIONS } from '../src/process-tuning.ts';
import { waitUntil } from './support.ts';

export interface WebProcesses {
  /** each process's base URL */
  bases: string[];
  /** CPU seconds the processes have used so far, together (Linux: /proc) */
  cpuSeconds(): number;
  /** the largest peak RSS among them, in MB */
  peakRssMb(): number;
  stop(): Promise<void>;
}

const TICKS_PER_SECOND = 100;
function cpuOf(pid: number): number {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat (after the parenthesised command name)
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}
function peakRssOf(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

/**
 * `n` processes of `signoff start --role web`, as a deployment runs several behind a load balancer, on ports of their
 * own, with `env` on top of this process's environment. Resolves once each answers /readyz.
 */
export async function startWebProcesses(n: number, env: Record<string, string>): Promise<WebProcesses> {
  const children: ChildProcess[] = [];
  const bases: string[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
            // a process that does not finish its shutdown in time is ended
            setTimeout(() => c.kill('SIGKILL'), 15_000).unref();
          }),
      ),
    );
  };
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      // as `npm start` runs it
      const child = spawn(process.execPath, [...SERVER_NODE_OPTIONS, 'bin/signoff.mjs', 'start', '--role', 'web'], {
        env: { ...process.env, ...env, PORT: String(port) },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(child);
      bases.push(`http://127.0.0.1:${port}`);
    }
    for (const [i, base] of bases.entries()) {
      await waitUntil(
        async () => {
          if (children[i]!.exitCode !== null) throw new Error(`web process ${i} exited with ${children[i]!.exitCode}`);
          return (
            (await fetch(`${base}/readyz`).then(
              (r) => r.status,
              () => 0,
            )) === 200
          );
        },
        `web process ${i} ready`,
        120_000,
        100,
      );
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    bases,
    cpuSeconds: () => children.reduce((sum, c) => sum + cpuOf(c.pid!), 0),
    peakRssMb: () => Math.max(...children.map((c) => peakRssOf(c.pid!))),
    stop,
  };
}
