import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ACTION, promptValue } from '../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../src/bots/slack/slack-verify.ts';
import { pool } from './support.ts';

interface ClientJob {
  base: string;
  key: string;
  secret: string;
  responseOrigin: string;
  ids: string[];
  clients: number;
}

/** Runs the decide-http load in a child process (this file is its entry) and returns every ack latency, sorted. */
export function runClients(job: ClientJob): Promise<{ acks: number[]; failures: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, 'bin/run-ts.mjs', 'bench/decide-http-clients.ts'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, SIGNOFF_BENCH_CLIENTS: '1' },
    });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`decide-http clients exited with ${code}`))));
    p.stdin.end(JSON.stringify(job));
  });
}

async function main(job: ClientJob) {
  const slackClick = (id: string, n: number) => {
    const payload = {
      type: 'block_actions',
      user: { id: 'U0APPROVER' },
      team: { id: 'T0BENCH' },
      trigger_id: `trig-${n}`,
      channel: { id: 'C0APPROVE' },
      container: { type: 'message', channel_id: 'C0APPROVE', message_ts: `${n}.0` },
      response_url: `${job.responseOrigin}/response/act-${n}`,
      actions: [{ type: 'button', action_id: ACTION.approve, value: promptValue(id, 0), block_id: 'b', action_ts: '1' }],
    };
    const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
    const ts = Math.floor(Date.now() / 1000);
    return fetch(`${job.base}/slack/events`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-slack-request-timestamp': String(ts),
        'x-slack-signature': signSlackBody(job.secret, ts, body),
      },
    });
  };
  const restApprove = (id: string) =>
    fetch(`${job.base}/api/v1/requests/${id}/approve`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${job.key}` },
    });
  const acks: number[] = [];
  let failures = 0;
  await pool(
    job.ids.map((id, i) => ({ id, i })),
    job.clients,
    async ({ id, i }) => {
      const t0 = performance.now();
      const slack = process.env.BENCH_DECIDE_MIX === 'rest' ? false : process.env.BENCH_DECIDE_MIX === 'slack' ? true : i % 2 === 0;
      const res = await (slack ? slackClick(id, i) : restApprove(id));
      await res.arrayBuffer();
      acks.push(performance.now() - t0);
      if (res.status !== 200) failures++;
    },
  );
  acks.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ acks, failures }));
}

if (process.env.SIGNOFF_BENCH_CLIENTS === '1') {
  let input = '';
  process.stdin.on('data', (c) => (input += c));
  process.stdin.on(
    'end',
    () =>
      void main(JSON.parse(input)).then(
        () => process.exit(0),
        (e) => {
          console.error(e);
          process.exit(1);
        },
      ),
  );
}
