import { decisionsScenario } from './decisions.ts';
import { webhooksScenario } from './webhooks.ts';

/** One JSON line per scenario, each carrying the reference figure measured in the same run. */
const scenarios: Record<string, () => Promise<Record<string, unknown>>> = {
  decisions: () => decisionsScenario({ requests: Number(process.env.BENCH_REQUESTS ?? 400), concurrency: 8 }),
  webhooks: () => webhooksScenario({ deliveries: Number(process.env.BENCH_DELIVERIES ?? 300), concurrency: 8, commitConcurrency: 8 }),
};

const only = process.argv.slice(2);
for (const [name, fn] of Object.entries(scenarios)) {
  if (only.length && !only.includes(name)) continue;
  try {
    console.log(JSON.stringify(await fn()));
  } catch (e) {
    console.log(JSON.stringify({ scenario: name, error: (e as Error).message }));
    process.exitCode = 1;
  }
}
process.exit();
