import { spawn } from 'node:child_process';
import { SERVER_NODE_OPTIONS, tuneServerHeap } from '../src/process-tuning.ts';

/**
 * One JSON line per scenario, each carrying the reference figure measured in the same run. Every scenario runs in
 * a child process of its own, which loads only that scenario's modules, so its peak RSS is its own. `--quick` runs
 * CI-sized versions; naming scenarios (`npm run bench -- dispatch fairness`) runs only those.
 */
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const n = (full: number, small: number, env?: string) => Number((env && process.env[env]) || (quick ? small : full));

const scenarios: Record<string, () => Promise<Record<string, unknown>>> = {
  'decide-http': async () =>
    (await import('./decide-http.ts')).decideHttpScenario({
      requests: n(6000, 600, 'BENCH_DECIDE_REQUESTS'),
      warmup: n(1500, 100, 'BENCH_DECIDE_WARMUP'),
      paced: n(300, 50),
      clients: 32,
      pgbenchSeconds: quick ? 3 : 10,
      // then the same load on `signoff start --role web` as it runs (BENCH_WEB_PROCESSES: how many; 0: none)
      webProcesses: Number(process.env.BENCH_WEB_PROCESSES ?? 1),
    }),
  'submit-and-approve': async () =>
    (await import('./decisions.ts')).decisionsScenario({
      // about as long as pgbench's 10 s: a 4-second run was mostly the JIT warming up (its first second ran at 3/4 speed)
      requests: n(6000, 300, 'BENCH_REQUESTS'),
      concurrency: 8,
      pgbenchSeconds: quick ? 3 : 10,
    }),
  dispatch: async () =>
    (await import('./dispatch.ts')).dispatchScenario({
      approvals: n(20_000, 1000, 'BENCH_DISPATCH'),
      concurrency: 16,
      commitConcurrency: 16,
    }),
  fairness: async () =>
    (await import('./fairness.ts')).fairnessScenario({
      deliveries: n(3000, 400, 'BENCH_FAIRNESS'),
      slowMs: 20_000,
      concurrency: 16,
      rounds: n(3, 1),
    }),
  sweep: async () =>
    (await import('./sweep.ts')).sweepScenario({
      sizes: quick ? [10_000, 100_000] : [100_000, 1_000_000],
      due: n(10_000, 2000, 'BENCH_SWEEP_DUE'),
    }),
};

const child = args.indexOf('--child');
if (child >= 0) {
  const name = args[child + 1]!;
  // the scenario's process stands in for `signoff start`, which sets this too
  tuneServerHeap();
  try {
    const out = await scenarios[name]!();
    const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
    console.log(JSON.stringify({ ...out, peakRssMb, quick }));
  } catch (e) {
    console.log(JSON.stringify({ scenario: name, error: (e as Error).stack ?? String(e) }));
    process.exitCode = 1;
  }
  process.exit();
}

const only = args.filter((a) => !a.startsWith('--'));
for (const name of Object.keys(scenarios)) {
  if (only.length && !only.includes(name)) continue;
  const code = await new Promise<number>((resolve) => {
    const p = spawn(
      process.execPath,
      // the scenario's process stands in for `npm start`: the same Node options
      [...process.execArgv, ...SERVER_NODE_OPTIONS, 'bin/run-ts.mjs', 'bench/run.ts', '--child', name, ...(quick ? ['--quick'] : [])],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    p.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) process.exitCode = 1;
}
