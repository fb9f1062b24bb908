import { spawn } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { ACTION, promptValue } from '../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../src/bots/slack/slack-verify.ts';
import { FakeSlackApi } from '../test/support/fake-slack-api.ts';
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
}

export interface ClientsProcess {
  /** the fake Slack Web API the clients' process serves (Slack is not in Signoff's process either) */
  slack: { url: string; origin: string };
  /** runs the load and returns every ack latency, sorted */
  run(job: ClientJob): Promise<ClientResults>;
  /** ends the process if it is still there (the scenario failed before or during the run) */
  stop(): void;
}

/**
 * Starts the decide-http clients in a process of their own (this file is its entry), with the fake Slack Web API
 * that response_url posts go to, so neither shares the measured server's event loop or memory.
 */
export function startClients(): Promise<ClientsProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, 'bin/run-ts.mjs', 'bench/decide-http-clients.ts'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, SIGNOFF_BENCH_CLIENTS: '1' },
    });
    let out = '';
    let run: { resolve: (r: ClientResults) => void; reject: (e: Error) => void } | null = null;
    let started = false;
    p.stdout.on('data', (c) => {
      out += c;
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
      const failed = (e: Error) => (run ? run.reject(e) : reject(e));
      if (code !== 0 || !run) return failed(new Error(`decide-http clients exited with ${code}`));
      try {
        run.resolve(JSON.parse(out) as ClientResults);
      } catch (e) {
        failed(new Error(`decide-http clients wrote no readable results: ${(e as Error).message}`));
      }
    });
  });
}

/**
 * One POST on a kept-alive connection. node:http rather than fetch: fetch's web streams cost the load generator about
 * half a core on this 2-core machine, taken from the server and Postgres it measures (pgbench's client is C).
 */
function post(agent: http.Agent, url: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function main(job: ClientJob, responseOrigin: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.clients });
  const bases = job.bases?.length ? job.bases : [job.base];
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
    return post(agent, `${baseOf(n)}/slack/events`, body, {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': signSlackBody(job.secret, ts, body),
    });
  };
  const restApprove = (id: string, i: number) =>
    post(agent, `${baseOf(i)}/api/v1/requests/${id}/approve`, '{}', {
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
  agent.destroy();
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const results: ClientResults = {
    acks: sorted([...slackAcks, ...restAcks]),
    slackAcks: sorted(slackAcks),
    restAcks: sorted(restAcks),
    failures,
  };
  // a pipe to the parent takes a large write in pieces: exit only once all of it is out (it truncated the acks)
  await new Promise<void>((resolve, reject) => process.stdout.write(JSON.stringify(results), (e) => (e ? reject(e) : resolve())));
}

if (process.env.SIGNOFF_BENCH_CLIENTS === '1') {
  const fake = await new FakeSlackApi().start();
  process.stdout.write(`${JSON.stringify({ url: fake.url, origin: fake.origin })}\n`);
  let input = '';
  process.stdin.on('data', (c) => (input += c));
  process.stdin.on('end', () => {
    main(JSON.parse(input), fake.origin).then(
      async () => {
        await fake.stop();
        process.exit(0);
      },
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  });
}
