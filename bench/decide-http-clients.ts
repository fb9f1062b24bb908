import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ACTION, promptValue } from '../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../src/bots/slack/slack-verify.ts';
import { SERVER_NODE_OPTIONS } from '../src/process-tuning.ts';
import { RawConnection, startSlackStandIn } from './raw-http.ts';
import { pool } from './support.ts';

interface ClientJob {
  base: string;
  /** several servers (web processes behind a load balancer): requests go to them in turn */
  bases?: string[];
  key: string;
  secret: string;
  ids: string[];
  clients: number;
}

/** Ack latencies in ms, sorted: all of them, and each channel's */
export interface ClientResults {
  acks: number[];
  slackAcks: number[];
  restAcks: number[];
  failures: number;
  /** the clients' own CPU (with the Slack stand-in's) per request sent, in ms */
  cpuMsPerRequest: number;
}

export interface ClientsProcess {
  /** the fake Slack Web API the clients' process serves (Slack is not in Signoff's process either) */
  slack: { url: string; origin: string };
  /** runs the load and returns every ack latency, sorted */
  run(job: ClientJob): Promise<ClientResults>;
  /** ends the process and its Slack stand-in (which outlives the run: replies to decisions made after their ack go there) */
  stop(): void;
}

/**
 * Starts the decide-http clients in a process of their own (this file is its entry), with the fake Slack Web API
 * that response_url posts go to, so neither shares the measured server's event loop or memory.
 */
export function startClients(): Promise<ClientsProcess> {
  return new Promise((resolve, reject) => {
    // the load generator runs as Node's defaults have it, whatever options the server's process was given
    const clientArgv = process.execArgv.filter((a) => !SERVER_NODE_OPTIONS.includes(a));
    const p = spawn(process.execPath, [...clientArgv, 'bin/run-ts.mjs', 'bench/decide-http-clients.ts'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, SIGNOFF_BENCH_CLIENTS: '1' },
    });
    let out = '';
    let run: { resolve: (r: ClientResults) => void; reject: (e: Error) => void } | null = null;
    let started = false;
    let answered = false;
    p.stdout.on('data', (c) => {
      out += c;
      if (started && run && !answered && out.endsWith('\n')) {
        answered = true;
        try {
          run.resolve(JSON.parse(out) as ClientResults);
        } catch (e) {
          run.reject(new Error(`decide-http clients wrote no readable results: ${(e as Error).message}`));
        }
        return;
      }
      const nl = out.indexOf('\n');
      if (!started && nl >= 0) {
        started = true;
        const slack = JSON.parse(out.slice(0, nl)) as { url: string; origin: string };
        out = out.slice(nl + 1);
        resolve({
          slack,
          run: (job) =>
            new Promise((res, rej) => {
              run = { resolve: res, reject: rej };
              p.stdin.end(JSON.stringify(job));
            }),
          stop: () => {
            if (p.exitCode === null) p.kill();
          },
        });
      }
    });
    // 'close', not 'exit': the process can exit before its stdout has all been read
    // a failure rejects the run waiting on it (or the start), so the scenario's clean-up still drops its database
    p.on('close', (code) => {
      if (answered) return;
      const e = new Error(`decide-http clients exited with ${code} before their results`);
      if (run) run.reject(e);
      else reject(e);
    });
  });
}

async function main(job: ClientJob, responseOrigin: string) {
  const cpu0 = process.cpuUsage();
  const bases = job.bases?.length ? job.bases : [job.base];
  // per server, the connections free now: each client sends one request at a time, as with node:http's agent
  const idle = new Map(bases.map((b) => [b, [] as RawConnection[]]));
  const open = new Set<RawConnection>();
  const post = async (base: string, path: string, body: string, headers: Record<string, string>) => {
    const conn = idle.get(base)!.pop() ?? new RawConnection(new URL(base));
    open.add(conn);
    const status = await conn.post(path, headers, body);
    idle.get(base)!.push(conn);
    return status;
  };
  // requests i and i+1 (a click and a REST approval in the mixed run) go to the same server, the next pair to the next
  const baseOf = (i: number) => bases[(i >> 1) % bases.length]!;
  const slackClick = (id: string, n: number) => {
    const payload = {
      type: 'block_actions',
      user: { id: 'U0APPROVER' },
      team: { id: 'T0BENCH' },
      trigger_id: `trig-${n}`,
      channel: { id: 'C0APPROVE' },
      container: { type: 'message', channel_id: 'C0APPROVE', message_ts: `${n}.0` },
      response_url: `${responseOrigin}/response/act-${n}`,
      actions: [{ type: 'button', action_id: ACTION.approve, value: promptValue(id, 0), block_id: 'b', action_ts: '1' }],
    };
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const ts = Math.floor(Date.now() / 1000);
    return post(baseOf(n), '/slack/events', body, {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': signSlackBody(job.secret, ts, body),
    });
  };
  const restApprove = (id: string, i: number) =>
    post(baseOf(i), `/api/v1/requests/${id}/approve`, '{}', {
      'content-type': 'application/json',
      authorization: `Bearer ${job.key}`,
    });
  const slackAcks: number[] = [];
  const restAcks: number[] = [];
  let failures = 0;
  await pool(
    job.ids.map((id, i) => ({ id, i })),
    job.clients,
    async ({ id, i }) => {
      const t0 = performance.now();
      const slack = process.env.BENCH_DECIDE_MIX === 'rest' ? false : process.env.BENCH_DECIDE_MIX === 'slack' ? true : i % 2 === 0;
      const status = await (slack ? slackClick(id, i) : restApprove(id, i));
      (slack ? slackAcks : restAcks).push(performance.now() - t0);
      if (status !== 200) failures++;
    },
  );
  for (const c of open) c.close();
  const cpu = process.cpuUsage(cpu0);
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const results: ClientResults = {
    acks: sorted([...slackAcks, ...restAcks]),
    slackAcks: sorted(slackAcks),
    restAcks: sorted(restAcks),
    failures,
    cpuMsPerRequest: (cpu.user + cpu.system) / 1000 / Math.max(1, job.ids.length),
  };
  // a pipe to the parent takes a large write in pieces: exit only once all of it is out (it truncated the acks)
  await new Promise<void>((resolve, reject) => process.stdout.write(`${JSON.stringify(results)}\n`, (e) => (e ? reject(e) : resolve())));
}

if (process.env.SIGNOFF_BENCH_CLIENTS === '1') {
  const fake = await startSlackStandIn();
  process.stdout.write(`${JSON.stringify({ url: fake.url, origin: fake.origin })}\n`);
  let input = '';
  process.stdin.on('data', (c) => (input += c));
  process.stdin.on('end', () => {
    // the stand-in stays up after the results: decisions acknowledged before they were decided, and the next phase's
    // (its server posts to this stand-in), still send their replies here; the scenario stops the process at its end,
    // and a scenario that died without stopping it leaves it an orphan, which ends itself
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && process.exit(0), 1000).unref();
    main(JSON.parse(input), fake.origin).then(
      () => undefined,
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  });
}
